//! Issue 22: strict engages in the program, on one CPU, within milliseconds of a spread
//! flood's onset: packets of sources the per-source stage has no state for fill a bucket at
//! the class's onset rate, and past its depth strict holds (with `auto_enforce`, monitor
//! enforces). A flood with a few faces never fills it. What strict refuses renews the hold.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, TriggerState, flags},
    frames::{FrameSpec, L4},
};
use levee_tests::{Harness, XDP_DROP, ip, udp};

use crate::DST4;

const MS: u64 = 1_000_000;
/// Nothing serves this port: strict drops it as `no_service` once engaged.
const CLOSED: u16 = 7777;

/// Monitor mode, strict not engaged by the controller, the trigger armed for UDP at a cost of
/// `cost_ns` a packet and a depth of 10 ms, holding `hold_ns`.
fn armed(cost_ns: u64, hold_ns: u64) -> Harness {
    let mut cfg = Config::new(Mode::Monitor);
    for flag in [
        flags::TRACK_FLOWS,
        flags::SOURCE_LIMITS,
        flags::TRIGGER,
        flags::AUTO_ENFORCE,
    ] {
        cfg.set_flag(flag, true);
    }
    cfg.trigger_cost_ns[Class::Udp as usize] = cost_ns;
    cfg.trigger_burst_ns[Class::Udp as usize] = 10 * MS;
    cfg.trigger_hold_ns = hold_ns;
    Harness::new(cfg)
}

/// A source of its own for every `i`, in 10.0.0.0/8.
fn spread(i: u32) -> String {
    let a = 0x0a00_0000 | (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff);
    std::net::Ipv4Addr::from(a).to_string()
}

fn triggers(h: &Harness) -> Vec<TriggerState> {
    h.dp.triggers().expect("trigger map")
}

fn engagements(h: &Harness, class: Class) -> u64 {
    triggers(h)
        .iter()
        .map(|t| t.engagements[class as usize])
        .sum()
}

/// Runs `n` frames and returns how many passed as clean and how many were dropped as
/// `no_service`, checking that nothing else happened to them.
fn run(h: &Harness, n: u32, frame: impl Fn(u32) -> Vec<u8>) -> (u64, u64) {
    let before = h.counters();
    for i in 0..n {
        h.run(&frame(i));
    }
    let after = h.counters();
    let delta = |a: Action, r: Reason| {
        after.get(a, r, Class::Udp).packets - before.get(a, r, Class::Udp).packets
    };
    let clean = delta(Action::Pass, Reason::Clean);
    let refused = delta(Action::Drop, Reason::NoService);
    assert_eq!(
        clean + refused,
        u64::from(n),
        "every frame clean or no_service: {:?}",
        after.non_zero()
    );
    (clean, refused)
}

#[test]
fn a_spread_flood_engages_strict_in_the_program_within_its_depth() {
    // One packet a millisecond is the line; the depth, 10 ms, is about ten packets at once.
    let h = armed(MS, 10_000 * MS);
    let (clean, refused) = run(&h, 1000, |i| udp(&spread(i), DST4, 40_000, CLOSED));
    eprintln!("spread flood of 1000: {clean} passed before strict engaged, {refused} refused");
    assert!(
        (10..=40).contains(&clean),
        "strict engaged after the bucket's depth: {clean} passed"
    );
    assert_eq!(engagements(&h, Class::Udp), 1, "one engagement");
    assert!(
        triggers(&h).iter().any(|t| t.held_until > 0),
        "the hold is recorded"
    );
    // Engaged, monitor enforces (auto_enforce) and strict drops what no service accounts for,
    // whoever sends it.
    let (clean, _) = run(&h, 10, |i| udp(&spread(5000 + i), DST4, 40_000, CLOSED));
    assert_eq!(clean, 0, "held: nothing to the closed port passes");
    // The fragment program judges a fragment in the held mode too.
    let first = FrameSpec::new(
        ip("10.200.0.1"),
        ip(DST4),
        L4::Udp {
            sport: 40_000,
            dport: CLOSED,
        },
    )
    .payload(32)
    .fragment(0, true)
    .build();
    h.expect(
        "held: a first fragment to the closed port",
        &first,
        XDP_DROP,
        Action::Drop,
        Reason::NoService,
        Class::Udp,
    );
}

#[test]
fn a_flood_with_a_few_faces_never_trips_it() {
    // A hundred packets of depth: three sources' first light packets stay well under it.
    let h = armed(MS / 10, 10_000 * MS);
    let faces = ["10.9.0.1", "10.9.0.2", "10.9.0.3"];
    let (clean, refused) = run(&h, 3000, |i| {
        udp(faces[i as usize % 3], DST4, 40_000, CLOSED)
    });
    assert_eq!(
        (clean, refused),
        (3000, 0),
        "heavy sources are the limiter's, not the trigger's"
    );
    assert_eq!(engagements(&h, Class::Udp), 0);
}

#[test]
fn what_strict_refuses_renews_the_hold_and_it_ends_after() {
    // Held for 200 ms from the last excess.
    let h = armed(MS, 200 * MS);
    run(&h, 100, |i| udp(&spread(i), DST4, 40_000, CLOSED));
    assert_eq!(engagements(&h, Class::Udp), 1);
    // The flood goes on for 600 ms, refused all along: the hold is renewed, never ended.
    for round in 0..6u32 {
        sleep(Duration::from_millis(100));
        let (clean, _) = run(&h, 50, |i| {
            udp(&spread(10_000 + round * 100 + i), DST4, 40_000, CLOSED)
        });
        assert_eq!(clean, 0, "round {round}: still held");
    }
    assert_eq!(engagements(&h, Class::Udp), 1, "renewed, not engaged again");
    // The flood stops; past the hold, the same frame passes (monitor, strict not engaged).
    sleep(Duration::from_millis(400));
    let (clean, _) = run(&h, 1, |_| udp("10.9.9.9", DST4, 40_000, CLOSED));
    assert_eq!(clean, 1, "the hold ended");
}
