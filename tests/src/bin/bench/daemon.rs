//! The daemon as users run it: detection's latency under a flood, and a million-prefix
//! blocklist.

use super::*;

/// The daemon as users run it, under the heaviest flood this lab can send: how long until
/// the attack is declared and the offender blocklisted, and the controller's CPU use.
pub(super) fn detection(args: &Args) -> Result<()> {
    use levee_tests::{
        daemon::DaemonLab,
        traffic::{flood_until, udp_flood_frames, udp_receiver, warm_up},
    };
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        time::Instant,
    };
    println!(
        "Detection with the real daemon (levee run), a single-source UDP flood through veth, median of {} runs",
        args.runs
    );
    let mut latencies = Vec::new();
    let mut blocks = Vec::new();
    let mut cpu_pct = Vec::new();
    let mut rates = Vec::new();
    for _ in 0..args.runs.max(1) {
        let mut d = DaemonLab::new();
        // The threshold path (strict off). Detection blocks verified offenders only, so the
        // flooder first holds a TCP conversation with the host, as a real client would.
        d.write_config(
            "mode = \"monitor\"\n[strict]\nmode = \"off\"\n[detection.floor_pps]\nudp = 5000",
        );
        d.start();
        let pid = d.pid().context("daemon pid")?;
        let rx = udp_receiver(&d.lab.protected, levee_tests::netns::PROTECTED_V4, 9000);
        warm_up(&d.lab.client, CLIENT_V4[0], &rx);
        let flooder = CLIENT_V4[3];
        levee_tests::flood::converse(&d, flooder);
        std::thread::sleep(Duration::from_millis(2500));
        let frames = udp_flood_frames(&d.lab, flooder, 9000, 20_000);
        let stop = AtomicBool::new(false);
        let (attack, blocked, cpu, sent, secs) = std::thread::scope(|s| -> Result<_> {
            let flood = s.spawn(|| flood_until(&d.lab, &frames, &stop));
            let start = Instant::now();
            let cpu0 = cpu_time(pid)?;
            let (mut attack, mut blocked) = (None, None);
            while start.elapsed() < Duration::from_secs(6) {
                if attack.is_none() && d.status().attack["udp"] == "under_attack" {
                    attack = Some(start.elapsed());
                }
                if blocked.is_none()
                    && d.block_list()
                        .iter()
                        .any(|b| b.cidr.0.to_string() == format!("{flooder}/32"))
                {
                    blocked = Some(start.elapsed());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let cpu = cpu_time(pid)? - cpu0;
            let secs = start.elapsed().as_secs_f64();
            stop.store(true, Ordering::SeqCst);
            let sent = flood.join().expect("flood thread");
            Ok((attack, blocked, cpu, sent, secs))
        })?;
        latencies.push(attack.context("no attack declared")?.as_secs_f64() * 1000.0);
        blocks.push(blocked.context("offender not blocklisted")?.as_secs_f64() * 1000.0);
        // The CLI polling above is part of the daemon's load; it is included on purpose.
        cpu_pct.push(cpu.as_secs_f64() / secs * 100.0);
        rates.push(sent as f64 / secs);
        d.stop();
    }
    println!(
        "{:<52} {:>9.0} ms",
        "flood start to attack declared",
        median(&mut latencies)
    );
    println!(
        "{:<52} {:>9.0} ms",
        "flood start to offender blocklisted",
        median(&mut blocks)
    );
    println!(
        "{:<52} {:>9.1} %",
        "controller CPU, % of one core, during the flood",
        median(&mut cpu_pct)
    );
    println!(
        "{:<52} {:>9.0} pps",
        "flood rate the lab sent",
        median(&mut rates)
    );
    println!(
        "(the daemon answered `levee status` and `levee block list` 20 times a second meanwhile)"
    );
    Ok(())
}

/// Big lists with the real daemon: a million-prefix block file, from `levee run` to the first
/// answer, then how long `levee block add` and `levee status` take at that size (each through
/// the CLI, as an operator runs them).
pub(super) fn big_lists(args: &Args) -> Result<()> {
    use levee_tests::daemon::DaemonLab;
    use std::time::Instant;
    const PREFIXES: u32 = 1_000_000;
    println!(
        "Big lists with the real daemon: a block file of {PREFIXES} prefixes, median of {} runs",
        args.runs
    );
    let (mut start, mut add, mut status) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs.max(1) {
        let mut d = DaemonLab::new();
        let file = d.dir.join("block.txt");
        let list: String = (0..PREFIXES)
            .map(|i| {
                let [_, a, b, c] = (0x0a00_0000 + i).to_be_bytes();
                format!("10.{a}.{b}.{c}\n")
            })
            .collect();
        std::fs::write(&file, list)?;
        d.write_config(&format!(
            "mode = \"enforce\"\n[lists]\nblock_files = [\"{}\"]",
            file.display()
        ));
        let t = Instant::now();
        d.start();
        start.push(t.elapsed().as_secs_f64() * 1000.0);
        for i in 0..20u32 {
            let t = Instant::now();
            d.cli_ok(&["block", "add", &format!("192.0.2.{i}")]);
            add.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            d.cli_ok(&["status"]);
            status.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        d.stop();
    }
    println!(
        "{:<52} {:>9.0} ms",
        "levee run to its first answer",
        median(&mut start)
    );
    println!(
        "{:<52} {:>9.1} ms",
        "levee block add (CLI, round trip)",
        median(&mut add)
    );
    println!(
        "{:<52} {:>9.1} ms",
        "levee status (CLI, round trip)",
        median(&mut status)
    );
    Ok(())
}
