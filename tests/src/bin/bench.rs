//! `cargo xtask bench`: Levee's per-packet cost as ratios to a floor measured in the same run.
//!
//! Part 1 runs each path through BPF_PROG_TEST_RUN (`repeat` runs of one frame, the kernel's
//! own timer), against a program that only returns XDP_DROP.
//!
//! Part 2 compares a random-source flood with the same traffic from one source. TEST_RUN
//! repeats one frame, so it cannot show what a new source per packet costs (LRU misses, sketch
//! cells all over its 16 KiB). Instead real frames go through a veth into the program attached
//! in native mode, and the kernel's BPF run-time statistics (BPF_ENABLE_STATS) give the
//! program's own time per packet, excluding the sender and the stack.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use clap::Parser;
use filter_common::{
    abi::{Class, Config, Mode, flags},
    config::Rate,
    frames::l3_offset,
    parse::TCP_SYN,
};
use levee::dataplane::{AttachMode, Dataplane, LoadOptions};
use levee_tests::{
    XDP_DROP, XDP_PASS,
    netns::{CLIENT_V4, Lab},
    sender::send_frames,
    tcp, udp,
};

#[derive(Parser)]
struct Args {
    /// Repeats per BPF_PROG_TEST_RUN call.
    #[arg(long, default_value_t = 10_000_000)]
    repeat: u32,
    /// Runs per figure; the median is printed.
    #[arg(long, default_value_t = 5)]
    runs: u32,
    /// Only the big-list figures.
    #[arg(long)]
    lists_only: bool,
    /// Only the per-packet paths (the floor, (a)-(e) and strict's).
    #[arg(long)]
    paths_only: bool,
    /// Only the spoofed floods with strict off and on.
    #[arg(long)]
    floods_only: bool,
    /// Frames per run in the spoofed-flood comparison.
    #[arg(long, default_value_t = 1_000_000)]
    frames: usize,
}

const DST4: &str = "198.18.0.1";
const DST6: &str = "2001:db8:18::1";
const LEGIT4: &str = "198.18.7.7";
const LEGIT6: &str = "2001:db8:7::7";
const BLOCKED4: &str = "198.18.66.6";
const OVER4: &str = "198.18.99.9";

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if args.lists_only {
        return big_lists(args);
    }
    if args.floods_only {
        return strict_floods(args);
    }
    if args.repeat < 10_000_000 {
        eprintln!("note: --repeat below 10 million; figures are less stable");
    }
    println!(
        "Per-packet cost through BPF_PROG_TEST_RUN, repeat {}, median of {} runs",
        args.repeat, args.runs
    );
    let frame64 = udp(LEGIT4, DST4, 40000, 443);
    assert_eq!(frame64.len(), 64);

    let floor = Dataplane::load_floor()?;
    let floor_prog: &Xdp = floor
        .program("floor")
        .context("floor program")?
        .try_into()?;

    let dp = bench_dataplane(LoadOptions::default(), None)?;
    // Prime the tracked sources: enough packets to pass the sketch gate.
    for f in [
        &frame64,
        &udp(LEGIT6, DST6, 40000, 443),
        &tcp(LEGIT4, DST4, TCP_SYN),
    ] {
        dp.test_run(f, 64)?;
    }
    for (src, name) in [(LEGIT4, "IPv4"), (LEGIT6, "IPv6")] {
        dp.source(src.parse()?)?
            .with_context(|| format!("the {name} legit source is not tracked"))?;
    }
    // Path (c) needs a source over its limit: the same set-up with UDP at 1 packet a second.
    let strict = Rate {
        pps: 1,
        burst_packets: 1,
        ..Rate::default()
    };
    let dp_strict = bench_dataplane(LoadOptions::default(), Some(strict))?;
    let over = udp(OVER4, DST4, 40000, 443);
    dp_strict.test_run(&over, 64)?;
    let state = dp_strict
        .source(OVER4.parse()?)?
        .context("over-limit source not tracked")?;
    if state.blocked_until[Class::Udp as usize] == 0 {
        bail!("over-limit source is not serving a penalty");
    }

    let paths: [(&str, &Xdp, Vec<u8>, u32); 6] = [
        (
            "floor: XDP_DROP and nothing else",
            floor_prog,
            frame64.clone(),
            XDP_DROP,
        ),
        (
            "(a) legit 64 B UDP, tracked, under limit",
            dp.program()?,
            frame64.clone(),
            XDP_PASS,
        ),
        (
            "(b) blocklisted source",
            dp.program()?,
            udp(BLOCKED4, DST4, 40000, 443),
            XDP_DROP,
        ),
        (
            "(c) source over its limit (penalty)",
            dp_strict.program()?,
            over,
            XDP_DROP,
        ),
        (
            "(d) TCP SYN, tracked, under limit",
            dp.program()?,
            tcp(LEGIT4, DST4, TCP_SYN),
            XDP_PASS,
        ),
        (
            "(e) IPv6 UDP, tracked, under limit",
            dp.program()?,
            udp(LEGIT6, DST6, 40000, 443),
            XDP_PASS,
        ),
    ];
    // One discarded warm-up round, then rounds that visit every path in turn, so a slow
    // moment of the machine spreads over all paths instead of skewing one.
    let mut samples = vec![Vec::new(); paths.len()];
    for round in 0..=args.runs.max(1) {
        for (i, (_, prog, frame, expect)) in paths.iter().enumerate() {
            let ns = time_test_run(prog, frame, args.repeat, *expect)?;
            if round > 0 {
                samples[i].push(ns);
            }
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
    println!("{:<44} {:>9} {:>9}", "path", "ns/pkt", "x floor");
    for ((name, ..), ns) in paths.iter().zip(&medians) {
        println!("{name:<44} {ns:>9.1} {:>9.2}", ns / medians[0]);
    }

    println!();
    strict_paths(args, medians[0])?;
    if args.paths_only {
        return Ok(());
    }
    println!();
    strict_floods(args)?;
    println!();
    spoofed_flood(args)?;
    println!();
    detection(args)?;
    println!();
    big_lists(args)
}

/// The paths strict mode adds, in a namespace of their own where a real listener and a
/// bound UDP socket serve 198.18.0.1 (the cookie helpers look sockets up in the caller's
/// namespace): a flow hit, UDP to no service, an ACK without flow or cookie, and a SYN
/// answered with a cookie. The last rewrites its frame, which BPF_PROG_TEST_RUN would feed
/// back to the next repetition: it is timed one run at a time from the kernel's own clock,
/// beside the floor timed the same way.
fn strict_paths(args: &Args, floor_ns: f64) -> Result<()> {
    use levee::dataplane::ServiceRule;
    use levee_tests::netns::Netns;
    let ns = Netns::new("bench-strict");
    ns.ip(&["addr", "add", "198.18.0.1/32", "dev", "lo"]);
    ns.run(|| -> Result<()> {
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "2")?;
        let _listener = std::net::TcpListener::bind((DST4, 443))?;
        let _udp = std::net::UdpSocket::bind((DST4, 5000))?;
        let mut dp = bench_dataplane(LoadOptions::default(), None)?;
        let mut cfg = dp.config();
        cfg.set_flag(flags::STRICT, true);
        cfg.set_flag(flags::TRACK_FLOWS, true);
        dp.set_config(cfg)?;
        let any: ipnet::IpNet = "0.0.0.0/0".parse()?;
        dp.set_services(&[
            ServiceRule {
                proto: 6,
                port: 443,
                dst: any,
            },
            ServiceRule {
                proto: 17,
                port: 5000,
                dst: any,
            },
        ])?;
        // The host answered LEGIT4 once: a UDP flow.
        dp.test_run_egress(&udp(DST4, LEGIT4, 5000, 40000))?;
        let prog = dp.program()?;
        let flow_hit = udp(LEGIT4, DST4, 40000, 5000);
        let no_service = udp(LEGIT4, DST4, 40000, 9999);
        let mut ack = tcp(LEGIT4, DST4, filter_common::parse::TCP_ACK);
        ack[36..38].copy_from_slice(&443u16.to_be_bytes());
        let mut syn = tcp(LEGIT4, DST4, TCP_SYN);
        syn[36..38].copy_from_slice(&443u16.to_be_bytes());
        let timed: [(&str, &Vec<u8>, u32); 3] = [
            ("(s1) strict: flow hit (UDP)", &flow_hit, XDP_PASS),
            ("(s2) strict: UDP to no service", &no_service, XDP_DROP),
            ("(s3) strict: ACK, no flow, no cookie", &ack, XDP_DROP),
        ];
        println!("Strict mode's paths (program as above with strict engaged), same floor");
        println!("{:<44} {:>9} {:>9}", "path", "ns/pkt", "x floor");
        for (name, frame, expect) in timed {
            let mut v: Vec<f64> = (0..args.runs.max(1))
                .map(|_| time_test_run(prog, frame, args.repeat, expect))
                .collect::<Result<_>>()?;
            let ns = median(&mut v);
            println!("{name:<44} {ns:>9.1} {:>9.2}", ns / floor_ns);
        }
        // One run at a time: the kernel's clock around a single run carries its own
        // overhead, so the floor is timed the same way for the ratio.
        let floor = Dataplane::load_floor()?;
        let floor_prog: &Xdp = floor.program("floor").context("floor")?.try_into()?;
        let singles = 20_000;
        let one_by_one = |p: &Xdp, frame: &[u8], expect: u32| -> Result<f64> {
            let mut v = Vec::with_capacity(singles);
            for _ in 0..singles {
                v.push(time_test_run(p, frame, 1, expect)?);
            }
            Ok(median(&mut v))
        };
        let floor1 = one_by_one(floor_prog, &syn, XDP_DROP)?;
        let cookie = one_by_one(prog, &syn, 3)?;
        println!(
            "{:<44} {:>9.1} {:>9.2}   (one run at a time; floor so timed: {floor1:.1} ns)",
            "(s4) strict: SYN answered with a cookie",
            cookie,
            cookie / floor1
        );
        Ok(())
    })
}

/// Softirq time of every CPU so far (where the receive path and XDP run), from /proc/stat.
fn softirq_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu = stat.lines().next().context("empty /proc/stat")?;
    // cpu user nice system idle iowait irq softirq ...
    let ticks: u64 = cpu
        .split_whitespace()
        .nth(7)
        .context("no softirq field")?
        .parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// Spoofed floods against the real daemon with strict off (the baseline) and always on: the
/// share the program drops, what the host's stack did with the rest (its own counters), and
/// the softirq time per flood frame (all CPUs; both namespaces share them).
fn strict_floods(args: &Args) -> Result<()> {
    use filter_common::{frames::L4, parse::TCP_ACK};
    use levee_tests::{
        daemon::DaemonLab,
        traffic::{flood_until, kernel_stat, spoofed_frames},
    };
    use std::sync::atomic::{AtomicBool, Ordering};
    println!("Spoofed floods against levee run, strict off and on, 3 s each, one run");
    println!(
        "{:<8} {:<24} {:>10} {:>12} {:>26} {:>12}",
        "strict", "flood", "frames", "XDP dropped", "host stack", "softirq/fr"
    );
    for strict in ["off", "always"] {
        let mut d = DaemonLab::new();
        d.write_config(&format!(
            "mode = \"enforce\"\n[strict]\nmode = \"{strict}\""
        ));
        d.start();
        let _client_xdp = d.lab.pass_all_on_client_end();
        let _listener = d
            .lab
            .protected
            .run(|| std::net::TcpListener::bind((DST4, 8080)))?;
        std::thread::sleep(Duration::from_millis(1500));
        let shapes: [(&str, Vec<u8>, &str, &str, &str); 3] = [
            (
                "SYN to a served port",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Tcp {
                        sport: 1024 + (i % 60000) as u16,
                        dport: 8080,
                        flags: TCP_SYN,
                    },
                    20_000,
                ),
                // SYNs the listener took and dropped (here at the route lookup of its SYN-ACK:
                // the lab has no route back to the spoofed sources).
                "netstat",
                "TcpExt:",
                "ListenDrops",
            ),
            (
                "ACK, no connection",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Tcp {
                        sport: 1024 + (i % 60000) as u16,
                        dport: 8080,
                        flags: TCP_ACK,
                    },
                    20_000,
                ),
                "snmp",
                "Tcp:",
                "OutRsts",
            ),
            (
                "UDP to closed ports",
                spoofed_frames(
                    &d.lab,
                    |i| L4::Udp {
                        sport: 40000,
                        dport: 20_000 + (i % 10_000) as u16,
                    },
                    20_000,
                ),
                "snmp",
                "Udp:",
                "NoPorts",
            ),
        ];
        for (name, frames, file, group, counter) in shapes {
            let stats = |d: &DaemonLab| -> u64 {
                d.stats()
                    .iter()
                    .filter(|c| c.action == "drop")
                    .map(|c| c.packets)
                    .sum()
            };
            let seen = |d: &DaemonLab| -> u64 { d.stats().iter().map(|c| c.packets).sum() };
            let (drop0, seen0) = (stats(&d), seen(&d));
            let k0 = kernel_stat(&d.lab.protected, file, group, counter);
            let soft0 = softirq_time()?;
            let stop = AtomicBool::new(false);
            let sent = std::thread::scope(|s| {
                let flood = s.spawn(|| flood_until(&d.lab, &frames, &stop));
                std::thread::sleep(Duration::from_secs(3));
                stop.store(true, Ordering::SeqCst);
                flood.join().expect("flood thread")
            });
            std::thread::sleep(Duration::from_millis(300));
            let soft = softirq_time()? - soft0;
            let k = kernel_stat(&d.lab.protected, file, group, counter) - k0;
            let (dropped, arrived) = (stats(&d) - drop0, seen(&d) - seen0);
            println!(
                "{strict:<8} {name:<24} {sent:>10} {:>11.1}% {:>26} {:>9.0} ns",
                dropped as f64 * 100.0 / arrived.max(1) as f64,
                format!("{counter} +{k}"),
                soft.as_nanos() as f64 / sent.max(1) as f64
            );
        }
        if !d.stop() {
            bail!("levee run did not stop cleanly: {}", d.log());
        }
    }
    let _ = args;
    Ok(())
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// The daemon as users run it, under the heaviest flood this lab can send: how long until
/// the attack is declared and the offender blocklisted, and the controller's CPU use.
fn detection(args: &Args) -> Result<()> {
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
        // The threshold path (strict off): with strict engaged a UDP offence stays a penalty
        // in its class and never becomes a block.
        d.write_config(
            "mode = \"monitor\"\n[strict]\nmode = \"off\"\n[detection.floor_pps]\nudp = 5000",
        );
        d.start();
        let pid = d.pid().context("daemon pid")?;
        let rx = udp_receiver(&d.lab.protected, levee_tests::netns::PROTECTED_V4, 9000);
        warm_up(&d.lab.client, CLIENT_V4[0], &rx);
        std::thread::sleep(Duration::from_millis(2500));
        let flooder = CLIENT_V4[3];
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

/// Levee in enforce mode with every stage busy: non-empty allow- and blocklists, signatures,
/// per-source limits (high enough for the legitimate paths, or `strict_udp` for UDP), aggregate
/// ceilings, and a long penalty for offenders.
fn bench_dataplane(options: LoadOptions, strict_udp: Option<Rate>) -> Result<Dataplane> {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.penalty_ns = 3_600_000_000_000;
    let generous = Rate {
        pps: 1_000_000_000,
        burst_packets: 1_000_000_000,
        bits_per_sec: 1_000_000_000_000,
        burst_bytes: 1 << 40,
    };
    for class in Class::ALL {
        cfg.source[class as usize] = generous.encode();
        cfg.aggregate[class as usize] = generous.encode();
    }
    if let Some(rate) = strict_udp {
        cfg.source[Class::Udp as usize] = rate.encode();
    }
    let mut dp = Dataplane::load(&options, cfg)?;
    dp.allow("203.0.113.0/24".parse()?)?;
    dp.allow("2001:db8:aaaa::/48".parse()?)?;
    dp.block(format!("{BLOCKED4}/32").parse()?, None)?;
    dp.block("2001:db8:bbbb::/48".parse()?, None)?;
    dp.block("192.0.2.0/24".parse()?, None)?;
    Ok(dp)
}

/// Mean ns per run of one TEST_RUN call, checking the verdict.
fn time_test_run(prog: &Xdp, frame: &[u8], repeat: u32, expect: u32) -> Result<f64> {
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::default()
    })?;
    if r.return_value != expect {
        bail!("expected XDP action {expect}, got {}", r.return_value);
    }
    Ok(r.duration.as_nanos() as f64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (f) vs (a'): real frames through a veth, program time from the kernel's BPF statistics.
fn spoofed_flood(args: &Args) -> Result<()> {
    println!(
        "Random-source flood vs one source: {} real 64 B frames a run through veth (native XDP),",
        args.frames
    );
    println!(
        "program run time from kernel BPF statistics, median of {} runs",
        args.runs
    );
    let lab = Lab::new();
    let mut dp = bench_dataplane(LoadOptions::default(), None)?;
    lab.protected
        .run(|| dp.attach(&lab.iface, AttachMode::Native))?;
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("failed to enable BPF run-time statistics")?;

    let one = udp(CLIENT_V4[0], DST4, 40000, 443);
    let len = one.len();
    let single: Vec<u8> = one.repeat(args.frames);
    let mut spoofed = single.clone();
    let src = l3_offset(0) + 12;
    for i in 0..args.frames {
        // Distinct sources spread over the address space (an odd multiplier is a bijection).
        let a = (i as u32)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(0x0a00_0001);
        spoofed[i * len + src..i * len + src + 4].copy_from_slice(&a.to_be_bytes());
    }

    let measure = |frames: &[u8]| -> Result<(f64, u64)> {
        let before = dp.program()?.info()?;
        let sent = lab.client.run(|| send_frames("lv1", frames, len))?;
        std::thread::sleep(Duration::from_millis(100));
        let after = dp.program()?.info()?;
        let runs = after.run_count() - before.run_count();
        let ns = (after.run_time() - before.run_time()).as_nanos() as f64;
        if runs < sent / 2 {
            bail!("the program saw {runs} of {sent} frames sent");
        }
        Ok((ns / runs as f64, runs))
    };
    // Warm up: ARP-free raw frames need no neighbour; this warms caches and the LRU.
    measure(&single)?;
    let mut one_source = Vec::new();
    let mut random = Vec::new();
    for _ in 0..args.runs.max(1) {
        one_source.push(measure(&single)?);
        random.push(measure(&spoofed)?);
    }
    let med = |v: &mut Vec<(f64, u64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (a_ns, a_runs) = med(&mut one_source);
    let (f_ns, f_runs) = med(&mut random);
    let tracked = dp.tracked_sources()?;
    println!("{:<44} {:>9} {:>9}", "path", "ns/pkt", "x (a')");
    println!("{:<44} {a_ns:>9.1} {:>9.2}", "(a') one source", 1.0);
    println!(
        "{:<44} {f_ns:>9.1} {:>9.2}",
        "(f) every frame a new random source",
        f_ns / a_ns
    );
    println!(
        "program runs per measurement: {a_runs} and {f_runs}; sources tracked after the flood: {tracked}"
    );
    Ok(())
}

/// Big lists with the real daemon: a million-prefix block file, from `levee run` to the first
/// answer, then how long `levee block add` and `levee status` take at that size (each through
/// the CLI, as an operator runs them).
fn big_lists(args: &Args) -> Result<()> {
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
