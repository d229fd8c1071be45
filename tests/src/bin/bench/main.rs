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
mod daemon;
mod line_rate;
mod paths;
mod peers;
mod report;
mod strict;

use daemon::{big_lists, detection};
use line_rate::{line_rate, spoofed_flood};
use paths::{PEER_COLUMN, Peer, paths, stages};
use peers::{XdpFilter, peers};
use report::Report;
use strict::{strict_floods, strict_paths};

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
use levee::dataplane::{Dataplane, LoadOptions};
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
    /// Only the random-source flood against one source ((f) and (a')).
    #[arg(long)]
    spread_only: bool,
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
    if args.spread_only {
        return spoofed_flood(args);
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
    let (floor_ns, peer) = paths(args, &mut report)?;
    report.line("");
    strict_paths(args, floor_ns, peer, &mut report)?;
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

/// Softirq time of every CPU so far (where the receive path and XDP run), from /proc/stat.
fn softirq_time() -> Result<Duration> {
    softirq_of("cpu")
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
