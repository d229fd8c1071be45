//! The control socket under a storm of clients: real CLI processes (block add and del,
//! status, mode, block list) against `levee run`, one client alone and then 200 at once. The
//! ratio of their latencies is the figure; one client's latency is mostly the CLI's own
//! process start, which the machine sets.

use std::time::Duration;

use anyhow::{Result, bail};
use levee_tests::{daemon::DaemonLab, storm::storm};

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
    let (alone, _) = storm(&d, 1, ALONE_FOR);
    let (crowd, _) = storm(&d, CLIENTS, STORM_FOR);
    d.stop();
    println!(
        "{:<24} {:>9} {:>8} {:>7} {:>11} {:>11} {:>9}",
        "clients", "commands", "per s", "errors", "median ms", "p99 ms", "x alone"
    );
    let ms = |t: Duration| t.as_secs_f64() * 1000.0;
    let base = ms(alone.at(50));
    for (name, t, secs) in [
        ("1 (alone)", &alone, ALONE_FOR),
        ("200 at once", &crowd, STORM_FOR),
    ] {
        println!(
            "{:<24} {:>9} {:>8.0} {:>7} {:>11.1} {:>11.1} {:>9.1}",
            name,
            t.commands,
            t.commands as f64 / secs.as_secs_f64(),
            t.errors.len() + t.silent.len(),
            ms(t.at(50)),
            ms(t.at(99)),
            ms(t.at(50)) / base
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
