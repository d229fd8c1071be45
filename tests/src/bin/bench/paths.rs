//! Per-packet cost through BPF_PROG_TEST_RUN: the floor and paths (a)-(e) on the program
//! `levee run` attached, and the stages turned on one by one.

use super::*;

/// xdp-filter with one source rule, timed in the same rounds as Levee's paths: its legit
/// (passed) and listed (dropped) path, each as a ratio to the floor of those rounds. The
/// peer ratio of a Levee path is its floor ratio over xdp-filter's of the same fate, so
/// both ratios come from the same rounds, whatever the machine's floor costs.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer {
    pub passed: f64,
    pub dropped: f64,
}

impl Peer {
    /// The peer ratio of a path whose ratio to the floor is `x_floor` and whose packet
    /// meets XDP action `action`.
    pub(super) fn ratio(&self, x_floor: f64, action: u32) -> f64 {
        if action == XDP_DROP {
            x_floor / self.dropped
        } else {
            x_floor / self.passed
        }
    }
}

/// The column header of the peer ratio, and what it means.
pub(super) const PEER_COLUMN: &str = "x peer";
pub(super) const PEER_NOTE: &str = "x peer: the path's ratio to the floor over xdp-filter's \
     (1 source rule, timed in the same rounds) for a packet of the same fate: passed (its \
     legit UDP) or dropped (its listed source)";

/// The floor and paths (a)-(e) on the program of a running `levee run`, xdp-filter's two
/// paths in the same rounds; returns the floor and the peer.
pub(super) fn paths(args: &Args, report: &mut Report) -> Result<(f64, Peer)> {
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
    // The peer, on a lab of its own.
    let peer_lab = Lab::new();
    let filter = XdpFilter::load(&peer_lab)?;
    filter.run(&["ip", BLOCKED4, "--mode", "src"])?;
    let peer_prog = attached_xdp(&peer_lab, "xdpfilt")?;
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
    let paths: [(&str, &Xdp, Vec<u8>, u32); 9] = [
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
        (
            "xdp-filter, 1 source rule: (a) legit UDP",
            &peer_prog,
            frame64.clone(),
            XDP_PASS,
        ),
        (
            "xdp-filter, 1 source rule: listed source",
            &peer_prog,
            udp(BLOCKED4, DST4, 40000, 443),
            XDP_DROP,
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
    drop(filter);
    let medians: Vec<f64> = samples.iter_mut().map(|v| median(v)).collect();
    let floor = medians[0];
    let peer = Peer {
        passed: medians[7] / floor,
        dropped: medians[8] / floor,
    };
    report.line(PEER_NOTE);
    report.line(&format!(
        "{:<50} {:>9} {:>9} {:>9}",
        "path", "ns/pkt", "x floor", PEER_COLUMN
    ));
    for (i, ((name, _, _, action), ns)) in paths.iter().zip(&medians).enumerate() {
        let x = ns / floor;
        let vs = match i {
            0 | 7 | 8 => String::new(),
            _ => format!("{:.2}", peer.ratio(x, *action)),
        };
        report.line(&format!("{name:<50} {ns:>9.1} {x:>9.2} {vs:>9}"));
    }
    Ok((floor, peer))
}

/// Where the nanoseconds go: path (a) (and (b) once the blocklist is on) on the bench's own
/// loader, turning the stages on one by one; each row's difference to the one before is
/// that stage's cost. Same TEST_RUN timing as the paths.
pub(super) fn stages(args: &Args, report: &mut Report) -> Result<()> {
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
