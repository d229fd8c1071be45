//! Issue 9, item 7: the per-source state holds through a random-source flood of 10 Mpps per
//! CPU. Live frames (BPF_PROG_RUN, `trafficgen`) go through a veth into the program attached
//! in native mode, the program on one CPU (where the kernel refuses live frames, a packet
//! socket on the other CPU sends them: `levee_tests::livegen`).
//!
//! The sketch only sees packets per window, so "10 Mpps per CPU" is a density: the packets
//! 10 Mpps puts in one window of the gate the controller picks for that rate. This machine's
//! generator and program together do one or two Mpps on one CPU, so the test stretches the
//! windows 2^k times and keeps the threshold, and the generator sends a random source on only
//! the share of its frames that makes 10 Mpps / 2^k (the rest from a blocklisted source, which
//! the program drops before the sketch): each window then holds as many flood packets as at
//! 10 Mpps.

use std::{net::Ipv4Addr, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    config::Rate,
};
use levee::dataplane::{
    AttachMode, Dataplane,
    gate::{Gate, min_window_shift, next_gate},
};
use levee_tests::{
    Harness, ip,
    livegen::{Generator, Sources},
    netns::{CLIENT_V4, Lab, PROTECTED_V4},
    udp,
};

const TEN_MPPS: f64 = 10e6;
const FLOOD_FRAMES: u32 = 4_000_000;
/// The source of the frames that are not the flood's, blocklisted.
const BLOCKED: &str = CLIENT_V4[2];
/// The default gate (`[sources]` defaults): 16.8 ms windows, 8 packets.
const DEFAULT_GATE: Gate = Gate {
    window_shift: 24,
    threshold: 8,
};

/// A source over its limit serves a long penalty; the test checks it is still served after
/// each flood.
fn config(gate: Gate, new_sources_per_sec: u64) -> Config {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.penalty_ns = Duration::from_secs(600).as_nanos() as u64;
    cfg.source[Class::Udp as usize] = Rate {
        pps: 1000,
        burst_packets: 100,
        ..Rate::default()
    }
    .encode();
    cfg.sketch_window_shift = gate.window_shift;
    cfg.sketch_threshold = gate.threshold;
    if let Some(cost) = 1_000_000_000u64.checked_div(new_sources_per_sec) {
        cfg.new_source_cost_ns = cost;
        cfg.new_source_burst_ns = cost * 1000;
    }
    cfg
}

struct Flood {
    frames: u32,
    added: u64,
    refused: u64,
    mpps: f64,
}

/// Sends `frames` frames into the program on one CPU.
fn send(
    lab: &Lab,
    generator: &mut Generator,
    sources: Sources,
    src: &str,
    frames: u32,
) -> Duration {
    let frame = udp(src, PROTECTED_V4, 40000, 9000);
    generator
        .send(lab, sources, &frame, frames)
        .unwrap_or_else(|e| panic!("{}: {e:#}", generator.method))
}

/// A random-source flood on `share` of the frames; `mpps` is the random sources' rate.
fn flood(lab: &Lab, generator: &mut Generator, dp: &Dataplane, share: f64, frames: u32) -> Flood {
    let (added, refused) = (dp.sources_added().unwrap(), dp.sources_refused().unwrap());
    let blocked: Ipv4Addr = BLOCKED.parse().unwrap();
    let sources = Sources::RandomV4Share(share, blocked);
    let took = send(lab, generator, sources, CLIENT_V4[1], frames);
    Flood {
        frames: (f64::from(frames) * share) as u32,
        added: dp.sources_added().unwrap() - added,
        refused: dp.sources_refused().unwrap() - refused,
        mpps: f64::from(frames) * share / took.as_secs_f64() / 1e6,
    }
}

/// The heavy source goes over its limit and serves its penalty: it is tracked.
fn penalize_heavy_source(lab: &Lab, generator: &mut Generator, h: &Harness) {
    send(lab, generator, Sources::Fixed, CLIENT_V4[0], 5000);
    assert_heavy_source_penalized(lab, generator, h, "before the flood");
}

/// The heavy source still has its entry with its penalty, and its next packets (on the CPU of
/// the flood; the gate is per CPU) are dropped for it, all but the few that warm the gate.
fn assert_heavy_source_penalized(lab: &Lab, generator: &mut Generator, h: &Harness, when: &str) {
    let state = h.dp.source(ip(CLIENT_V4[0])).unwrap();
    let state = state.unwrap_or_else(|| panic!("{when}: the heavy source lost its entry"));
    assert!(
        state.blocked_until[Class::Udp as usize] != 0,
        "{when}: the heavy source's penalty is gone"
    );
    let penalty = |h: &Harness| {
        h.counters()
            .get(Action::Drop, Reason::SourcePenalty, Class::Udp)
            .packets
    };
    let before = penalty(h);
    send(lab, generator, Sources::Fixed, CLIENT_V4[0], 1000);
    let dropped = penalty(h) - before;
    assert!(
        dropped >= 1000 - 15,
        "{when}: {dropped} of the heavy source's next 1000 packets dropped for its penalty"
    );
}

#[test]
fn the_gate_and_the_source_table_hold_at_10_mpps_per_cpu() {
    let lab = Lab::new();
    let mut generator = Generator::load().unwrap_or_else(|e| panic!("{e:#}"));
    let mut h = Harness::with_sources(config(DEFAULT_GATE, 0), 1 << 18);
    lab.protected
        .run(|| h.dp.attach(&lab.iface, AttachMode::Native))
        .unwrap_or_else(|e| panic!("attach: {e:#}"));
    let blocked: ipnet::IpNet = format!("{BLOCKED}/32").parse().unwrap();
    h.dp.block(blocked, None).unwrap();
    let min_shift = min_window_shift(h.dp.config().clock_ns_per_jiffy);

    // This machine's rate on one CPU, through the gate the controller sets when one CPU sees
    // 10 Mpps; then the stretch and the share of random sources that make 10 Mpps of it.
    let at_10_mpps = next_gate(DEFAULT_GATE, TEN_MPPS, DEFAULT_GATE, min_shift);
    h.dp.set_config(config(at_10_mpps, 0)).unwrap();
    let warm = flood(&lab, &mut generator, &h.dp, 1.0, FLOOD_FRAMES / 2);
    let stretch = (1.3 * TEN_MPPS / (warm.mpps * 1e6)).log2().ceil().max(0.0) as u32;
    let target_pps = TEN_MPPS / f64::from(1u32 << stretch);
    // Blocklisted frames cost less than the flood's, so the rate moves with the share: a
    // few rounds find the share that gives the target rate of random sources.
    let mut share: f64 = 1.0;
    for _ in 0..3 {
        let f = flood(&lab, &mut generator, &h.dp, share, FLOOD_FRAMES / 2);
        share = (share * target_pps / (f.mpps * 1e6)).min(1.0);
    }
    let stretched = |g: Gate| Gate {
        window_shift: g.window_shift + stretch,
        ..g
    };
    let as_10_mpps = |f: &Flood| f.mpps * f64::from(1u32 << stretch);
    println!(
        "generator: {}; one CPU: {:.2} Mpps; gate at 10 Mpps: {at_10_mpps:?} (sources above {:.0} pps tracked); \
         windows stretched 2^{stretch}, {:.0}% of the frames from random sources",
        generator.method,
        warm.mpps,
        at_10_mpps.tracked_above_pps(),
        share * 100.0
    );

    // 1. The gate the controller picks for 10 Mpps: the flood stays out of the table and the
    //    heavy source keeps its penalty.
    h.dp.set_config(config(stretched(at_10_mpps), 0)).unwrap();
    penalize_heavy_source(&lab, &mut generator, &h);
    let f = flood(&lab, &mut generator, &h.dp, share, FLOOD_FRAMES);
    println!(
        "adapted gate: {} of {} spoofed sources tracked, at the density of {:.1} Mpps",
        f.added,
        f.frames,
        as_10_mpps(&f)
    );
    assert!(
        f.added <= u64::from(f.frames) / 10_000,
        "{} of {} spoofed sources got an entry",
        f.added,
        f.frames
    );
    assert_heavy_source_penalized(
        &lab,
        &mut generator,
        &h,
        "after a flood through the adapted gate",
    );

    // 2. Without adapting, the default gate at that density lets the flood in: what the
    //    test would see if the gate did not hold.
    h.dp.set_config(config(stretched(DEFAULT_GATE), 0)).unwrap();
    let f = flood(&lab, &mut generator, &h.dp, share, FLOOD_FRAMES);
    println!(
        "default gate: {} of {} spoofed sources tracked, at the density of {:.1} Mpps",
        f.added,
        f.frames,
        as_10_mpps(&f)
    );
    assert!(
        f.added >= u64::from(f.frames) / 5,
        "the default gate held too ({} of {}): the flood is not dense enough to show anything",
        f.added,
        f.frames
    );

    // 3. The default gate with the budget of new entries (the seconds before the controller
    //    narrows the gate): the table turns over no faster than the budget.
    let budget = 20_000;
    h.dp.set_config(config(stretched(DEFAULT_GATE), budget))
        .unwrap();
    penalize_heavy_source(&lab, &mut generator, &h);
    let started = std::time::Instant::now();
    let f = flood(&lab, &mut generator, &h.dp, share, FLOOD_FRAMES);
    let bound = budget as f64 * (started.elapsed().as_secs_f64() + 0.1) + 1000.0;
    println!(
        "default gate with a budget of {budget}/s: {} added, {} refused",
        f.added, f.refused
    );
    assert!(
        (f.added as f64) <= bound,
        "{} entries added, over the budget ({bound:.0})",
        f.added
    );
    assert!(f.refused > 0, "the budget refused nothing");
    assert_heavy_source_penalized(&lab, &mut generator, &h, "after a flood held by the budget");
}
