//! The control socket under a storm of clients: real CLI processes (block add and del,
//! status, mode, block list) against `levee run`, one client alone and then 200 at once. The
//! ratio of their latencies is the figure; one client's latency is mostly the CLI's own
//! process start, which the machine sets. With 200 clients on a small machine the clients'
//! own process starts take most of the CPU: the daemon's share is printed beside.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use levee_tests::{
    daemon::DaemonLab,
    storm::{Tally, storm},
};

/// The storm of the test (issue 23), for the bench: this many clients at once.
const CLIENTS: usize = 200;
const ALONE_FOR: Duration = Duration::from_secs(10);
const STORM_FOR: Duration = Duration::from_secs(20);

pub fn control_socket() -> Result<()> {
    println!(
        "Control socket: real CLI processes against levee run (block add/del, status, mode, list), {}s alone, then {CLIENTS} at once for {}s",
        ALONE_FOR.as_secs(),
        STORM_FOR.as_secs()
    );
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let pid = d.pid().context("daemon pid")?;
    // The daemon's share of one core while the clients ran.
    let busy = |f: &dyn Fn() -> Tally, secs: Duration| -> Result<(Tally, f64)> {
        let before = crate::cpu_time(pid)?;
        let t = f();
        let used = crate::cpu_time(pid)? - before;
        Ok((t, used.as_secs_f64() / secs.as_secs_f64() * 100.0))
    };
    let (alone, alone_cpu) = busy(&|| storm(&d, 1, ALONE_FOR).0, ALONE_FOR)?;
    let (crowd, crowd_cpu) = busy(&|| storm(&d, CLIENTS, STORM_FOR).0, STORM_FOR)?;
    d.stop();
    println!(
        "{:<16} {:>9} {:>8} {:>7} {:>10} {:>9} {:>8} {:>11}",
        "clients", "commands", "per s", "errors", "median ms", "p99 ms", "x alone", "daemon CPU"
    );
    let ms = |t: Duration| t.as_secs_f64() * 1000.0;
    let base = ms(alone.at(50));
    for (name, t, secs, cpu) in [
        ("1 (alone)", &alone, ALONE_FOR, alone_cpu),
        ("200 at once", &crowd, STORM_FOR, crowd_cpu),
    ] {
        println!(
            "{:<16} {:>9} {:>8.0} {:>7} {:>10.1} {:>9.1} {:>8.1} {:>10.0}%",
            name,
            t.commands,
            t.commands as f64 / secs.as_secs_f64(),
            t.errors.len() + t.silent.len(),
            ms(t.at(50)),
            ms(t.at(99)),
            ms(t.at(50)) / base,
            cpu
        );
    }
    println!(
        "(the socket serves {} connections at once; the rest wait in its listen backlog, never reset)",
        levee::server::MAX_CONNECTIONS
    );
    if !crowd.errors.is_empty() || !crowd.silent.is_empty() {
        bail!(
            "the storm saw {} errors and {} silent exits: {:?}",
            crowd.errors.len(),
            crowd.silent.len(),
            crowd.errors.first().or(crowd.silent.first())
        );
    }
    Ok(())
}
