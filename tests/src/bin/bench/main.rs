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

mod control;

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
    XDP_DROP, XDP_PASS, icmp,
    livegen::{Method, RECEIVER_CPU},
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
    /// Only the per-packet paths (the floor, (a)-(e) and strict's) and the stages.
    #[arg(long)]
    paths_only: bool,
    /// Only the spoofed floods with strict off and on.
    #[arg(long)]
    floods_only: bool,
    /// Only the line rate with live frames.
    #[arg(long)]
    line_rate_only: bool,
    /// Only the peers (xdp-filter, nftables).
    #[arg(long)]
    peers_only: bool,
    /// Only the control socket under 200 clients.
    #[arg(long)]
    control_only: bool,
    /// Frames per run in the spoofed-flood comparison.
    #[arg(long, default_value_t = 1_000_000)]
    frames: usize,
}

const DST4: &str = "198.18.0.1";
const DST6: &str = "2001:db8:18::1";
const LEGIT4: &str = "198.18.7.7";
const LEGIT6: &str = "2001:db8:7::7";
/// In a /16 of its own: a blocked source does not put the legitimate ones' /16 in the list
/// summary (`filter_common::abi::summary`).
const BLOCKED4: &str = "198.19.66.6";
/// A legitimate source whose /16 holds an entry of each list (192.0.2.0/24 is blocked,
/// 192.0.4.0/24 allowed): the summary sends it to both tries.
const NEIGHBOUR4: &str = "192.0.3.7";
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
    if args.line_rate_only {
        return line_rate(args);
    }
    if args.control_only {
        println!("{}", Report::provenance(args)?.join("\n"));
        return control::control_socket();
    }
    if args.peers_only {
        let mut report = Report::new(args)?;
        return peers(args, &mut report);
    }
    if args.repeat < 10_000_000 {
        eprintln!("note: --repeat below 10 million; figures are less stable");
    }
    let mut report = Report::new(args)?;
    let floor_ns = paths(args, &mut report)?;
    report.line("");
    strict_paths(args, floor_ns, &mut report)?;
    report.line("");
    stages(args, &mut report)?;
    report.line("");
    peers(args, &mut report)?;
    report.save()?;
    if args.paths_only {
        return Ok(());
    }
    println!();
    strict_floods(args)?;
    println!();
    spoofed_flood(args)?;
    println!();
    line_rate(args)?;
    println!();
    detection(args)?;
    println!();
    control::control_socket()?;
    println!();
    big_lists(args)
}

/// The features the bench's daemon runs with: the defaults, plus what an operator turns on.
const BENCH_CONFIG: &str = r#"mode = "enforce"
penalty = "1h"
[lists]
allow = ["203.0.113.0/24", "192.0.4.0/24", "2001:db8:aaaa::/48"]
block = ["198.19.66.6/32", "2001:db8:bbbb::/48", "192.0.2.0/24"]
[limits.udp]
pps = 1000000000
burst = 1000000000
[limits.tcp_syn]
pps = 1000000000
burst = 1000000000
[detection.floor_pps]
tcp_syn = 1000000000000
tcp_other = 1000000000000
udp = 1000000000000
icmp = 1000000000000
other = 1000000000000
"#;

/// What the features mean for the figures, printed with them.
const BENCH_FEATURES: &str = "levee run with its defaults (per-source limits, signatures, \
sampling 1 in 1000, strict auto: flows recorded, not engaged) plus: mode enforce, an \
allowlist and a blocklist (IPv4 and IPv6), UDP and SYN limits raised above the bench's own \
rate so a repeated source stays under them, a 1 h penalty, detection's floors far above any \
rate (the bench's runs would be an attack and engage strict; its checks, strict's trigger among \
them, run as in levee run)";

/// The program `levee run` attached to the lab's interface, for BPF_PROG_TEST_RUN.
fn attached_program(d: &levee_tests::daemon::DaemonLab) -> Result<Xdp> {
    attached_xdp(&d.lab, "levee")
}

/// The XDP program attached to the lab's protected interface, whoever attached it.
fn attached_xdp(lab: &Lab, name: &'static str) -> Result<Xdp> {
    use aya::programs::loaded_programs;
    use aya_obj::programs::XdpAttachType;
    let out = lab.protected.ip(&["-j", "-d", "link", "show", &lab.iface]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let id = links[0]["xdp"]["prog"]["id"]
        .as_u64()
        .with_context(|| format!("no XDP program on {}: {links}", lab.iface))? as u32;
    let info = loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .with_context(|| format!("program {id} not loaded"))?;
    Ok(Xdp::from_program_info(
        info,
        name.into(),
        XdpAttachType::Interface,
    )?)
}

/// The floor and paths (a)-(e) on the program of a running `levee run`; returns the floor.
fn paths(args: &Args, report: &mut Report) -> Result<f64> {
    use levee_tests::daemon::DaemonLab;
    report.line(&format!(
        "Per-packet cost through BPF_PROG_TEST_RUN, repeat {}, median of {} runs, on the \
         program levee run attached",
        args.repeat, args.runs
    ));
    report.line(&format!("features: {BENCH_FEATURES}"));
    let frame64 = udp(LEGIT4, DST4, 40000, 443);
    assert_eq!(frame64.len(), 64);
    let floor = Dataplane::load_floor()?;
    let floor_prog: &Xdp = floor
        .program("floor")
        .context("floor program")?
        .try_into()?;
    let mut d = DaemonLab::new();
    d.write_config(BENCH_CONFIG);
    d.start();
    let prog = attached_program(&d)?;
    let run = |frame: &[u8], repeat: u32| -> Result<u32> {
        Ok(prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat,
                ..TestRunOptions::default()
            })?
            .return_value)
    };
    // Prime the tracked sources (enough packets to pass the sketch gate), and the ICMP
    // source over its limit (the default, 1000/s), which then serves its penalty.
    let over = icmp(OVER4, DST4);
    let neighbour = udp(NEIGHBOUR4, DST4, 40000, 443);
    for f in [
        &frame64,
        &neighbour,
        &udp(LEGIT6, DST6, 40000, 443),
        &tcp(LEGIT4, DST4, TCP_SYN),
        &over,
    ] {
        run(f, 1000)?;
    }
    let paths: [(&str, &Xdp, Vec<u8>, u32); 7] = [
        (
            "floor: XDP_DROP and nothing else",
            floor_prog,
            frame64.clone(),
            XDP_DROP,
        ),
        (
            "(a) legit 64 B UDP, tracked, under limit",
            &prog,
            frame64.clone(),
            XDP_PASS,
        ),
        (
            "(a2) as (a), its /16 holds entries of both lists",
            &prog,
            neighbour.clone(),
            XDP_PASS,
        ),
        (
            "(b) blocklisted source",
            &prog,
            udp(BLOCKED4, DST4, 40000, 443),
            XDP_DROP,
        ),
        (
            "(c) source over its limit (penalty, ICMP)",
            &prog,
            over.clone(),
            XDP_DROP,
        ),
        (
            "(d) TCP SYN, tracked, under limit",
            &prog,
            tcp(LEGIT4, DST4, TCP_SYN),
            XDP_PASS,
        ),
        (
            "(e) IPv6 UDP, tracked, under limit",
            &prog,
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
    // The limiter really ran: the legit sources have entries, the ICMP one its penalty.
    let tracked = d
        .cli_ok(&["stats"])
        .lines()
        .any(|l| l.contains("source_penalty"));
    if !tracked {
        bail!("path (c) did not serve a penalty: {}", d.cli_ok(&["stats"]));
    }
    d.stop();
    let medians: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
    report.line(&format!("{:<50} {:>9} {:>9}", "path", "ns/pkt", "x floor"));
    for ((name, ..), ns) in paths.iter().zip(&medians) {
        report.line(&format!("{name:<50} {ns:>9.1} {:>9.2}", ns / medians[0]));
    }
    Ok(medians[0])
}

/// Where the nanoseconds go: path (a) (and (b) once the blocklist is on) on the bench's own
/// loader, turning the stages on one by one; each row's difference to the one before is
/// that stage's cost. Same TEST_RUN timing as the paths.
fn stages(args: &Args, report: &mut Report) -> Result<()> {
    // A source whose /16 holds a list entry, so the list steps show the tries' cost.
    let legit = udp(NEIGHBOUR4, DST4, 40000, 443);
    let far = udp(LEGIT4, DST4, 40000, 443);
    let blocked = udp(BLOCKED4, DST4, 40000, 443);
    let floor = Dataplane::load_floor()?;
    let floor_prog: &Xdp = floor.program("floor").context("floor")?.try_into()?;
    let full = bench_config(None);
    // (what is on, its flags, sampling, aggregate ceilings); the list steps fill their list.
    let steps: [(&str, u32, u32, bool); 7] = [
        (
            "parse, decide, count (enforce, nothing else on)",
            0,
            0,
            false,
        ),
        (
            "+ allowlist lookup (IPv4 LPM trie)",
            flags::HAS_ALLOW_V4,
            0,
            false,
        ),
        (
            "+ blocklist lookup (IPv4 LPM trie)",
            flags::HAS_BLOCK_V4,
            0,
            false,
        ),
        (
            "+ signatures (TCP flags, amplification ports)",
            flags::SIG_TCP_FLAGS | flags::SIG_AMP_PORTS,
            0,
            false,
        ),
        (
            "+ per-source limit (sketch, LRU, buckets)",
            flags::SOURCE_LIMITS,
            0,
            false,
        ),
        ("+ aggregate ceiling (per-CPU bucket)", 0, 0, true),
        ("+ sampling 1 in 1000", 0, 1000, true),
    ];
    // One program per step, so the rounds can visit every step in turn (as the paths do).
    let mut programs = Vec::new();
    let mut on = 0u32;
    for (_, bits, sample, aggregate) in steps {
        on |= bits;
        let mut cfg = full;
        cfg.set_flag(flags::SETTINGS, false);
        cfg.set_flag(on & flags::SETTINGS, true);
        cfg.sample_every = sample;
        if !aggregate {
            cfg.aggregate = Default::default();
        }
        let mut dp = Dataplane::load(&LoadOptions::default(), cfg)?;
        // A list stage costs nothing while its list is empty (a flag skips it): fill it.
        if on & flags::HAS_ALLOW_V4 != 0 {
            add_allows(&mut dp)?;
        }
        if on & flags::HAS_BLOCK_V4 != 0 {
            add_blocks(&mut dp)?;
        }
        for _ in 0..64 {
            dp.test_run(&legit, 1)?;
        }
        programs.push(dp);
    }
    let call_prog: &Xdp = floor
        .program("floor_call")
        .context("floor_call")?
        .try_into()?;
    let helper_prog: &Xdp = floor
        .program("floor_helper")
        .context("floor_helper")?
        .try_into()?;
    let all = programs.last().context("steps")?;
    for _ in 0..64 {
        all.test_run(&far, 1)?;
    }
    let mut samples = vec![Vec::new(); steps.len() + 5];
    for round in 0..=args.runs.max(1) {
        let mut timed = vec![time_test_run(floor_prog, &legit, args.repeat, XDP_DROP)?];
        for dp in &programs {
            timed.push(time_test_run(dp.program()?, &legit, args.repeat, XDP_PASS)?);
        }
        timed.push(time_test_run(all.program()?, &far, args.repeat, XDP_PASS)?);
        timed.push(time_test_run(
            all.program()?,
            &blocked,
            args.repeat,
            XDP_DROP,
        )?);
        timed.push(time_test_run(call_prog, &legit, args.repeat, XDP_DROP)?);
        timed.push(time_test_run(helper_prog, &legit, args.repeat, XDP_DROP)?);
        if round > 0 {
            for (v, ns) in samples.iter_mut().zip(timed) {
                v.push(ns);
            }
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
    report.line(
        "Where the time goes: path (a2) with the stages turned on one by one (the bench's loader)",
    );
    report.line(&format!("{:<52} {:>8} {:>8}", "stages on", "ns/pkt", "+ns"));
    report.line(&format!("{:<52} {:>8.1}", "floor", medians[0]));
    for (i, (name, ..)) in steps.iter().enumerate() {
        report.line(&format!(
            "{name:<52} {:>8.1} {:>+8.1}",
            medians[i + 1],
            medians[i + 1] - medians[i]
        ));
    }
    report.line(&format!(
        "{:<52} {:>8.1}",
        "(a) all of them, no list entry in the source's /16",
        medians[steps.len() + 1]
    ));
    report.line(&format!(
        "{:<52} {:>8.1}",
        "(b) all of them, blocklisted: stops at the blocklist",
        medians[steps.len() + 2]
    ));
    // What any call costs on this machine, before it does any work: the unit of the profile.
    report.line(&format!(
        "{:<52} {:>8.1} {:>+8.1}",
        "floor + one BPF-to-BPF call",
        medians[steps.len() + 3],
        medians[steps.len() + 3] - medians[0]
    ));
    report.line(&format!(
        "{:<52} {:>8.1} {:>+8.1}",
        "floor + one kernel helper call (a random number)",
        medians[steps.len() + 4],
        medians[steps.len() + 4] - medians[0]
    ));
    Ok(())
}

/// The figures of a run, printed as they come and written with the run's provenance (date,
/// commit, machine, command) to `target/bench/latest.md`, whose content the README shows.
struct Report {
    lines: Vec<String>,
}

impl Report {
    /// Where the figures come from: commit, date, machine, generator, command.
    fn provenance(args: &Args) -> Result<Vec<String>> {
        let sh = |cmd: &str, argv: &[&str]| -> String {
            std::process::Command::new(cmd)
                .args(argv)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let commit = sh("git", &["rev-parse", "--short=12", "HEAD"]);
        let dirty = !sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        let cpu = std::fs::read_to_string("/proc/cpuinfo")?
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut r = Vec::new();
        r.push(format!(
            "commit: {commit}{}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ));
        r.push(format!(
            "date: {}",
            sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
        ));
        r.push(format!(
            "machine: {cpu}, {cpus} CPUs, Linux {}",
            sh("uname", &["-r"])
        ));
        // The floods' generator: figures made with different ones are not comparable.
        let (method, why) = Method::chosen();
        r.push(format!("generator: {method} ({why})"));
        r.push(format!(
            "command: cargo xtask bench{only} (bench --repeat {} --runs {}{only})",
            args.repeat,
            args.runs,
            only = if args.control_only {
                " --control-only"
            } else {
                ""
            }
        ));
        Ok(r)
    }

    fn new(args: &Args) -> Result<Report> {
        let mut r = Report { lines: Vec::new() };
        for l in Report::provenance(args)? {
            r.line(&l);
        }
        r.line("");
        Ok(r)
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
        self.lines.push(text.to_string());
    }

    fn save(&self) -> Result<()> {
        let dir = std::path::Path::new("target/bench");
        std::fs::create_dir_all(dir)?;
        let path = dir.join("latest.md");
        std::fs::write(&path, self.lines.join("\n") + "\n")?;
        println!("(written to {})", path.display());
        Ok(())
    }
}

/// The paths strict mode adds, in a namespace of their own where a real listener and a
/// bound UDP socket serve 198.18.0.1 (the cookie helpers look sockets up in the caller's
/// namespace): a flow hit, UDP to no service, an ACK without flow or cookie, and a SYN
/// answered with a cookie. The last rewrites its frame, which BPF_PROG_TEST_RUN would feed
/// back to the next repetition: it is timed one run at a time from the kernel's own clock,
/// beside the floor timed the same way.
fn strict_paths(args: &Args, floor_ns: f64, report: &mut Report) -> Result<()> {
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
        report.line("Strict mode's paths (the bench's own loader, strict engaged), same floor");
        report.line(&format!("{:<50} {:>9} {:>9}", "path", "ns/pkt", "x floor"));
        for (name, frame, expect) in timed {
            let mut v: Vec<f64> = (0..args.runs.max(1))
                .map(|_| time_test_run(prog, frame, args.repeat, expect))
                .collect::<Result<_>>()?;
            let ns = median(&mut v);
            report.line(&format!("{name:<50} {ns:>9.1} {:>9.2}", ns / floor_ns));
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
        report.line(&format!(
            "{:<50} {:>9.1} {:>9.2}   (one run at a time; floor so timed: {floor1:.1} ns)",
            "(s4) strict: SYN answered with a cookie",
            cookie,
            cookie / floor1
        ));
        signature_paths(args, &mut dp, floor_ns, report)
    })
}

/// A flood signature's drops (issue 22), strict engaged with the UDP budget: an unknown
/// source's datagram and a SYN, each matching a signature of its service (port and the 8
/// bytes the miner looks at), handed to the signature program by tail call and dropped.
fn signature_paths(
    args: &Args,
    dp: &mut Dataplane,
    floor_ns: f64,
    report: &mut Report,
) -> Result<()> {
    use filter_common::signature::{Facts, FloodSignature, field};
    let datagram = udp(OVER4, DST4, 40001, 5000);
    let mut syn = tcp(OVER4, DST4, TCP_SYN);
    syn[36..38].copy_from_slice(&443u16.to_be_bytes());
    let signature = |id: u32, proto: u8, port: u16, frame: &[u8]| FloodSignature {
        fields: field::DST_PORT | field::PAYLOAD,
        id,
        facts: Facts {
            dst_port: port,
            proto,
            payload: frame[42..50].try_into().expect("8 bytes"),
            ..Facts::default()
        },
        payload_mask: [0xff; 8],
    };
    dp.set_signatures(
        &[
            signature(1, 17, 5000, &datagram),
            signature(2, 6, 443, &syn),
        ],
        &[],
    )?;
    let mut cfg = dp.config();
    cfg.set_flag(flags::UDP_BUDGET, true);
    dp.set_config(cfg)?;
    let prog = dp.program()?;
    for (name, frame) in [
        ("(s5) strict: UDP matching a flood signature", &datagram),
        ("(s6) strict: SYN matching a flood signature", &syn),
    ] {
        let mut v: Vec<f64> = (0..args.runs.max(1))
            .map(|_| time_test_run(prog, frame, args.repeat, XDP_DROP))
            .collect::<Result<_>>()?;
        let ns = median(&mut v);
        report.line(&format!("{name:<50} {ns:>9.1} {:>9.2}", ns / floor_ns));
    }
    Ok(())
}

/// Softirq time of every CPU so far (where the receive path and XDP run), from /proc/stat.
fn softirq_time() -> Result<Duration> {
    softirq_of("cpu")
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

/// Levee in enforce mode with every stage busy: non-empty allow- and blocklists, signatures,
/// per-source limits (high enough for the legitimate paths, or `strict_udp` for UDP), aggregate
/// ceilings, and a long penalty for offenders.
fn bench_dataplane(options: LoadOptions, strict_udp: Option<Rate>) -> Result<Dataplane> {
    let mut dp = Dataplane::load(&options, bench_config(strict_udp))?;
    add_allows(&mut dp)?;
    add_blocks(&mut dp)?;
    Ok(dp)
}

fn bench_config(strict_udp: Option<Rate>) -> Config {
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
    cfg
}

fn add_allows(dp: &mut Dataplane) -> Result<()> {
    dp.allow("203.0.113.0/24".parse()?)?;
    dp.allow("192.0.4.0/24".parse()?)?;
    dp.allow("2001:db8:aaaa::/48".parse()?)
}

fn add_blocks(dp: &mut Dataplane) -> Result<()> {
    dp.block(format!("{BLOCKED4}/32").parse()?, None)?;
    dp.block("2001:db8:bbbb::/48".parse()?, None)?;
    dp.block("192.0.2.0/24".parse()?, None)
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

/// Line rate on one CPU: frames from the lab generator (`levee_tests::livegen`: live frames,
/// or a packet socket where the kernel refuses them) sent out of the client's veth into the
/// program attached in native mode on the other end, the program on one CPU. The floor's rate
/// is the harness's own ceiling; a passed frame also pays for the host's stack.
fn line_rate(args: &Args) -> Result<()> {
    use levee_tests::{
        daemon::DaemonLab,
        livegen::{Generator, Sources},
    };
    const FRAMES: u32 = 2_000_000;
    let mut generator = Generator::load()?;
    println!(
        "Line rate on one CPU: {FRAMES} frames a run through veth into native XDP, median of {} runs",
        args.runs
    );
    println!("generator: {}", generator.describe());
    let mut rate = |lab: &Lab, sources: Sources, frame: &[u8]| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..args.runs.max(1) {
            let took = generator.send(lab, sources, frame, FRAMES)?;
            v.push(f64::from(FRAMES) / took.as_secs_f64() / 1e6);
        }
        Ok(median(&mut v))
    };
    let legit = udp(LEGIT4, DST4, 40000, 443);
    let floor_mpps = {
        let lab = Lab::new();
        let mut floor = Dataplane::load_floor()?;
        let prog: &mut Xdp = floor.program_mut("floor").context("floor")?.try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        rate(&lab, Sources::Fixed, &legit)?
    };
    let mut d = DaemonLab::new();
    d.write_config(BENCH_CONFIG);
    d.start();
    let rows = [
        (
            "(a) legit UDP, tracked (passed to the stack)",
            Sources::Fixed,
            legit.clone(),
        ),
        (
            "(b) blocklisted source (dropped)",
            Sources::Fixed,
            udp(BLOCKED4, DST4, 40000, 443),
        ),
        (
            "(f) a new random source every frame (passed)",
            Sources::RandomV4,
            legit.clone(),
        ),
    ];
    let mut measured = Vec::new();
    for (name, sources, frame) in rows {
        measured.push((name, rate(&d.lab, sources, &frame)?));
    }
    d.stop();
    println!("{:<48} {:>8} {:>9}", "path", "Mpps", "x floor");
    println!("{:<48} {floor_mpps:>8.2} {:>9.2}", "floor: XDP_DROP", 1.0);
    for (name, mpps) in measured {
        println!("{name:<48} {mpps:>8.2} {:>9.2}", mpps / floor_mpps);
    }
    if generator.method == Method::PacketSocket {
        println!(
            "(the packet socket's sender, alone on the other CPU, is slower than every path: \
             these are its rates, and say only that the program kept up with it)"
        );
    }
    Ok(())
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
    println!("{:<50} {:>9} {:>9}", "path", "ns/pkt", "x (a')");
    println!("{:<50} {a_ns:>9.1} {:>9.2}", "(a') one source", 1.0);
    println!(
        "{:<50} {f_ns:>9.1} {:>9.2}",
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

/// xdp-filter (xdp-tools) on the lab's interface, its state pinned in a bpffs of its own so
/// nothing is left in the host's /sys/fs/bpf; unloaded when dropped.
struct XdpFilter<'a> {
    lab: &'a Lab,
    bpffs: std::path::PathBuf,
}

impl<'a> XdpFilter<'a> {
    fn load(lab: &'a Lab) -> Result<XdpFilter<'a>> {
        let bpffs = std::path::PathBuf::from(format!("/run/levee-bench-{}", std::process::id()));
        std::fs::create_dir_all(&bpffs)?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&bpffs)
            .status()?;
        if !mounted.success() {
            bail!("cannot mount a bpffs at {}", bpffs.display());
        }
        let filter = XdpFilter { lab, bpffs };
        filter.run(&["load", &lab.iface, "--mode", "native"])?;
        Ok(filter)
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let out = self
            .lab
            .protected
            .command("xdp-filter")
            .args(args)
            .env("LIBXDP_BPFFS", &self.bpffs)
            .output()
            .context("cannot run xdp-filter (cargo xtask setup installs xdp-tools)")?;
        if !out.status.success() {
            bail!(
                "xdp-filter {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for XdpFilter<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["unload", &self.lab.iface]);
        let _ = std::process::Command::new("umount")
            .arg(&self.bpffs)
            .status();
        let _ = std::fs::remove_dir(&self.bpffs);
    }
}

/// Peers in the same run. xdp-filter per packet through TEST_RUN, as the paths; then end to
/// end, the receiving CPU's softirq time per frame of a live-frame flood from one source
/// that each filter drops: XDP_DROP alone, levee run, xdp-filter, and an nftables
/// netdev-ingress set (the frames reach it through an XDP program that passes them: a veth
/// takes live frames only when its peer has one).
fn peers(args: &Args, report: &mut Report) -> Result<()> {
    use levee_tests::{
        daemon::DaemonLab,
        livegen::{Generator, Sources},
    };
    let legit = udp(LEGIT4, DST4, 40000, 443);
    let blocked = udp(BLOCKED4, DST4, 40000, 443);
    let floor = Dataplane::load_floor()?;
    let floor_prog: &Xdp = floor.program("floor").context("floor")?.try_into()?;
    let mut rows: Vec<(String, f64)> = Vec::new();
    {
        let lab = Lab::new();
        let filter = XdpFilter::load(&lab)?;
        filter.run(&["ip", BLOCKED4, "--mode", "src"])?;
        let prog = attached_xdp(&lab, "xdpfilt")?;
        let timed = |rules: &str, rows: &mut Vec<(String, f64)>| -> Result<()> {
            let mut samples = vec![Vec::new(); 3];
            for round in 0..=args.runs.max(1) {
                let ns = [
                    time_test_run(floor_prog, &legit, args.repeat, XDP_DROP)?,
                    time_test_run(&prog, &legit, args.repeat, XDP_PASS)?,
                    time_test_run(&prog, &blocked, args.repeat, XDP_DROP)?,
                ];
                if round > 0 {
                    samples.iter_mut().zip(ns).for_each(|(v, ns)| v.push(ns));
                }
            }
            let m: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
            rows.push((format!("xdp-filter, {rules}: (a) legit UDP"), m[1] / m[0]));
            rows.push((
                format!("xdp-filter, {rules}: (b) listed source"),
                m[2] / m[0],
            ));
            Ok(())
        };
        timed("1 source rule", &mut rows)?;
        for i in 0..999u32 {
            filter.run(&[
                "ip",
                &format!("10.{}.{}.{}", i >> 8, i & 255, 7),
                "--mode",
                "src",
            ])?;
        }
        timed("1,000 source rules", &mut rows)?;
    }
    report.line(
        "Peers, through BPF_PROG_TEST_RUN as the paths, each ratio to a floor timed in the \
         same rounds",
    );
    report.line(&format!("{:<48} {:>9}", "peer and path", "x floor"));
    for (name, ratio) in &rows {
        report.line(&format!("{name:<48} {ratio:>9.2}"));
    }

    // End to end: time of the receiving CPU per frame, every filter dropping the same flood
    // from one listed source.
    const FRAMES: u32 = 10_000_000;
    let mut generator = Generator::load()?;
    // The packet socket sends from the receiver's CPU here: each frame is then received in a
    // softirq of that CPU, as with live frames, and its softirq time is the receiving cost.
    generator.split_cpus = false;
    let mut softirq_per_frame = |lab: &Lab| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..args.runs.max(1) {
            let before = softirq_of(&format!("cpu{RECEIVER_CPU}"))?;
            generator.send(lab, Sources::Fixed, &blocked, FRAMES)?;
            let after = softirq_of(&format!("cpu{RECEIVER_CPU}"))?;
            v.push((after - before).as_nanos() as f64 / f64::from(FRAMES));
        }
        Ok(median(&mut v))
    };
    let mut e2e: Vec<(&str, f64)> = Vec::new();
    let nft_dropped: (u64, u64);
    {
        let lab = Lab::new();
        let mut floor = Dataplane::load_floor()?;
        let prog: &mut Xdp = floor.program_mut("floor").context("floor")?.try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        e2e.push(("XDP_DROP and nothing else", softirq_per_frame(&lab)?));
    }
    {
        let mut d = DaemonLab::new();
        d.write_config(BENCH_CONFIG);
        d.start();
        e2e.push(("levee run, blocklisted source", softirq_per_frame(&d.lab)?));
        d.stop();
    }
    {
        let lab = Lab::new();
        let filter = XdpFilter::load(&lab)?;
        filter.run(&["ip", BLOCKED4, "--mode", "src"])?;
        e2e.push(("xdp-filter, source rule", softirq_per_frame(&lab)?));
    }
    {
        let lab = Lab::new();
        let mut pass = Dataplane::load_floor()?;
        let prog: &mut Xdp = pass
            .program_mut("floor_pass")
            .context("floor_pass")?
            .try_into()?;
        lab.protected
            .run(|| prog.attach(&lab.iface, aya::programs::XdpMode::Driver))?;
        let rules = format!(
            "table netdev levee_bench {{\n\
               set blocked {{ type ipv4_addr; elements = {{ {BLOCKED4} }}; }}\n\
               chain ingress {{\n\
                 type filter hook ingress device {} priority -500;\n\
                 ip saddr @blocked counter drop\n\
               }}\n\
             }}\n",
            lab.iface
        );
        let out = lab
            .protected
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin.take().expect("stdin").write_all(rules.as_bytes())?;
                c.wait_with_output()
            })
            .context("cannot run nft (cargo xtask setup installs nftables)")?;
        if !out.status.success() {
            bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        e2e.push(("nftables netdev ingress set", softirq_per_frame(&lab)?));
        // The frames reached the set and were dropped there.
        let listed = lab
            .protected
            .command("nft")
            .args(["list", "chain", "netdev", "levee_bench", "ingress"])
            .output()?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        let dropped: u64 = listed
            .split("counter packets ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no counter in the nftables chain: {listed}"))?;
        let sent = u64::from(FRAMES) * u64::from(args.runs.max(1));
        if dropped * 2 < sent {
            bail!("nftables dropped {dropped} of the {sent} frames sent: is the rule in place?");
        }
        nft_dropped = (dropped, sent);
    }
    report.line("");
    report.line(&format!(
        "End to end: {FRAMES} frames a run from one listed source through veth, dropped; \
         softirq time of the receiving CPU per frame ({} on that CPU), median of {} runs",
        generator.method, args.runs
    ));
    report.line(&format!(
        "{:<50} {:>9} {:>12}",
        "dropped by", "ns/frame", "+ns on XDP_DROP"
    ));
    let base = e2e[0].1;
    for (name, ns) in &e2e {
        report.line(&format!("{name:<50} {ns:>9.0} {:>+12.0}", ns - base));
    }
    let (dropped, sent) = nft_dropped;
    report.line(&format!(
        "(nftables: {dropped} of {sent} frames reached the set and were dropped there; \
         the rest were lost before it, at the veth, and cost less)"
    ));
    Ok(())
}

/// Softirq time of the /proc/stat line `name` ("cpu" for all CPUs, "cpuN" for one), in
/// clock ticks.
fn softirq_of(name: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .with_context(|| format!("no {name} in /proc/stat"))?;
    // name user nice system idle iowait irq softirq ...
    let ticks: u64 = line
        .split_whitespace()
        .nth(7)
        .context("no softirq field")?
        .parse()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_nanos(ticks * 1_000_000_000 / hz))
}
