//! Issue 22: familiar sources. While calm (strict not engaged), a source whose UDP the
//! per-source stage admits is seen; seen in two moments a second apart, it is familiar, and
//! while strict's UDP budget applies it passes before the budget (`familiar`). A source seen
//! once, or never, meets the budget.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    config::Rate,
    parse::IPPROTO_UDP,
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS, segments::pin_to_this_cpu};

use crate::{
    DST4,
    strict::{rule, strict},
};

const PORT: u16 = 5000;
const FAMILIAR: &str = "198.18.7.1";
const ONCE: &str = "198.18.7.2";
const STRANGER: &str = "198.18.7.3";

fn udp(src: &str) -> Vec<u8> {
    levee_tests::udp(src, DST4, 40_000, PORT)
}

#[test]
fn a_source_seen_while_calm_passes_before_the_budget() {
    std::thread::scope(|s| {
        s.spawn(|| {
            // The budget's buckets and the sightings are per CPU.
            pin_to_this_cpu();
            let mut calm = Config::new(Mode::Enforce);
            calm.set_flag(flags::TRACK_FLOWS, true);
            calm.set_flag(flags::SOURCE_LIMITS, true);
            calm.set_flag(flags::FAMILIAR, true);
            calm.familiar_ttl_ns = 3_600_000_000_000;
            let mut h = Harness::new(calm);
            h.dp.set_services(&[rule(IPPROTO_UDP, PORT, "0.0.0.0/0")])
                .unwrap();
            // Calm: FAMILIAR is seen now and again more than a second later; ONCE only now.
            h.expect(
                "calm",
                &udp(FAMILIAR),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
            h.expect(
                "calm",
                &udp(ONCE),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
            sleep(Duration::from_millis(1100));
            // Two datagrams a sketch window (16 ms) apart: the stage sights a source at its
            // first packet of a window, and a window 1.1 s on may share the last one's epoch.
            for _ in 0..2 {
                h.expect(
                    "calm",
                    &udp(FAMILIAR),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    Class::Udp,
                );
                sleep(Duration::from_millis(20));
            }
            assert!(
                h.dp.familiar_ago(FAMILIAR.parse().unwrap(), calm.familiar_ttl_ns)
                    .unwrap()
                    .is_some(),
                "seen twice a second apart: familiar"
            );
            assert!(
                h.dp.familiar_ago(ONCE.parse().unwrap(), calm.familiar_ttl_ns)
                    .unwrap()
                    .is_none(),
                "seen once: not familiar"
            );
            // A spread flood: strict with the UDP budget, one datagram and then none.
            let mut attacked = strict(Mode::Enforce);
            attacked.flags |= calm.flags & (flags::SOURCE_LIMITS | flags::FAMILIAR);
            attacked.familiar_ttl_ns = calm.familiar_ttl_ns;
            attacked.set_flag(flags::UDP_BUDGET, true);
            attacked.unknown_budget = Rate {
                pps: 1,
                burst_packets: 1,
                ..Rate::default()
            }
            .encode();
            h.dp.set_config(attacked).unwrap();
            h.expect(
                "budget",
                &udp(STRANGER),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
            h.expect(
                "budget spent",
                &udp(STRANGER),
                XDP_DROP,
                Action::Drop,
                Reason::UnknownBudget,
                Class::Udp,
            );
            h.expect(
                "seen once",
                &udp(ONCE),
                XDP_DROP,
                Action::Drop,
                Reason::UnknownBudget,
                Class::Udp,
            );
            for _ in 0..3 {
                h.expect(
                    "familiar",
                    &udp(FAMILIAR),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Familiar,
                    Class::Udp,
                );
            }
            // Under attack nothing becomes familiar: ONCE, seen again now, stays a stranger.
            sleep(Duration::from_millis(1100));
            h.expect(
                "the budget refilled",
                &udp(STRANGER),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
            h.expect(
                "not calm",
                &udp(ONCE),
                XDP_DROP,
                Action::Drop,
                Reason::UnknownBudget,
                Class::Udp,
            );
            assert!(
                h.dp.familiar_ago(ONCE.parse().unwrap(), calm.familiar_ttl_ns)
                    .unwrap()
                    .is_none()
            );
        });
    });
}
