//! The rate limiters: a token bucket per source and class (IPv6 sources keyed by /64), the
//! penalty an offender serves, the sketch that admits only heavy sources to the source table,
//! and the aggregate ceiling per class.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, event, flags},
    config::Rate,
    frames::l3_offset,
    parse::TCP_SYN,
};
use levee_tests::{Case, Harness, XDP_DROP, XDP_PASS, ip, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, clean, read_event};

/// A config whose UDP sources may send `burst` packets, then 10 per second, tracked from their
/// first packet (sketch threshold 1).
fn limited(burst: u64, penalty: Duration) -> Config {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.sketch_threshold = 1;
    cfg.penalty_ns = penalty.as_nanos() as u64;
    for class in [Class::Udp, Class::TcpSyn] {
        cfg.source[class as usize] = Rate {
            pps: 10,
            burst_packets: burst,
            ..Rate::default()
        }
        .encode();
    }
    cfg
}

#[test]
fn source_over_its_limit_is_dropped_v4_and_v6() {
    for src in [SRC4, SRC6] {
        let dst = if src == SRC4 { DST4 } else { DST6 };
        let h = Harness::new(limited(5, Duration::ZERO));
        // Another source and another class of the same source have their own buckets.
        let other = if src == SRC4 {
            "198.18.1.99"
        } else {
            "2001:db8:1:3::1"
        };
        let burst = (0..5).map(|i| {
            clean(
                format!("{src} packet {i} in burst"),
                udp(src, dst, 1, 2),
                Class::Udp,
            )
        });
        let after = [
            Case {
                what: format!("{src} over"),
                frame: udp(src, dst, 1, 2),
                xdp: XDP_DROP,
                action: Action::Drop,
                reason: Reason::SourceRate,
                class: Class::Udp,
            },
            clean("other source", udp(other, dst, 1, 2), Class::Udp),
            clean("same source, syn", tcp(src, dst, TCP_SYN), Class::TcpSyn),
        ];
        let cases: Vec<Case> = burst.chain(after).collect();
        h.expect_all(&cases);
        let state = h.dp.source(ip(src)).unwrap().expect("source tracked");
        assert_eq!(state.offences, 1);
    }
}

#[test]
fn ipv6_sources_share_state_per_64() {
    let h = Harness::new(limited(2, Duration::ZERO));
    h.expect_all(&[
        clean("a", udp("2001:db8:1:2::1", DST6, 1, 2), Class::Udp),
        clean(
            "b, same /64",
            udp("2001:db8:1:2::ffff", DST6, 1, 2),
            Class::Udp,
        ),
        Case {
            what: "c, same /64, over".into(),
            frame: udp("2001:db8:1:2:aaaa::1", DST6, 1, 2),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::SourceRate,
            class: Class::Udp,
        },
    ]);
}

#[test]
fn token_bucket_refills_over_time() {
    let mut cfg = limited(2, Duration::ZERO);
    // 2 pps: one packet every 500 ms, so a late wake-up of the test cannot change the count.
    cfg.source[Class::Udp as usize] = Rate {
        pps: 2,
        burst_packets: 2,
        ..Rate::default()
    }
    .encode();
    let h = Harness::new(cfg);
    let f = udp(SRC4, DST4, 1, 2);
    assert_eq!(h.run(&f), XDP_PASS);
    assert_eq!(h.run(&f), XDP_PASS);
    assert_eq!(h.run(&f), XDP_DROP);
    // After 1.2 s two more fit (at 0.5 and 1.0 s), not three (1.5 s).
    sleep(Duration::from_millis(1200));
    h.expect_all(&[
        clean("refilled 1", f.clone(), Class::Udp),
        clean("refilled 2", f.clone(), Class::Udp),
        Case {
            what: "empty again".into(),
            frame: f,
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::SourceRate,
            class: Class::Udp,
        },
    ]);
}

#[test]
fn offender_serves_a_penalty_and_is_reported() {
    let mut h = Harness::new(limited(2, Duration::from_millis(1500)));
    let mut events = h.dp.take_offences().unwrap();
    let f = udp(SRC4, DST4, 1, 2);
    assert_eq!(h.run(&f), XDP_PASS);
    assert_eq!(h.run(&f), XDP_PASS);
    h.expect_all(&[
        Case {
            what: "offence".into(),
            frame: f.clone(),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::SourceRate,
            class: Class::Udp,
        },
        // The penalty holds in the offending class only: a spoofer who earns it for an
        // address does not cut that address's other traffic (issue 9, item 6).
        clean(
            "other class untouched",
            tcp(SRC4, DST4, TCP_SYN),
            Class::TcpSyn,
        ),
    ]);
    sleep(Duration::from_millis(300));
    h.expect(
        "still in penalty",
        &f,
        XDP_DROP,
        Action::Drop,
        Reason::SourcePenalty,
        Class::Udp,
    );
    let item = events.next().expect("an offence event");
    let e = read_event(&item);
    assert_eq!(e.kind, event::OFFENCE);
    assert_eq!(&e.src[..4], &[198, 18, 1, 10]);
    assert_eq!((e.family, e.class, e.offences), (4, Class::Udp as u32, 1));
    drop(item);
    assert!(
        events.next().is_none(),
        "one event per offence, none per dropped packet"
    );
    sleep(Duration::from_millis(1500));
    h.set_mode(Mode::Enforce);
    h.expect(
        "penalty over",
        &f,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn monitor_counts_what_the_limiter_would_drop() {
    let mut h = Harness::new(limited(1, Duration::ZERO));
    h.set_mode(Mode::Monitor);
    let f = udp(SRC4, DST4, 1, 2);
    h.expect_all(&[
        clean("first", f.clone(), Class::Udp),
        Case {
            what: "over, passed".into(),
            frame: f,
            xdp: XDP_PASS,
            action: Action::WouldDrop,
            reason: Reason::SourceRate,
            class: Class::Udp,
        },
    ]);
}

#[test]
fn sketch_gates_tracking_until_a_source_is_heavy() {
    let mut cfg = limited(100, Duration::ZERO);
    cfg.sketch_threshold = 4;
    let h = Harness::new(cfg);
    let f = udp(SRC4, DST4, 1, 2);
    for _ in 0..3 {
        assert_eq!(h.run(&f), XDP_PASS);
    }
    assert!(
        h.dp.source(ip(SRC4)).unwrap().is_none(),
        "three packets: not tracked yet"
    );
    assert_eq!(h.run(&f), XDP_PASS);
    assert!(
        h.dp.source(ip(SRC4)).unwrap().is_some(),
        "fourth packet: tracked"
    );
}

#[test]
fn aggregate_ceiling_per_class() {
    let mut cfg = Config::new(Mode::Enforce);
    let cpus = levee::dataplane::cpu_count().unwrap();
    // A UDP ceiling of 3 packets of burst per CPU; other classes unlimited.
    cfg.aggregate[Class::Udp as usize] = Rate {
        pps: u64::from(cpus),
        burst_packets: 3 * u64::from(cpus),
        ..Rate::default()
    }
    .encode_per_cpu(cpus);
    let mut h = Harness::new(cfg);
    let under = (0..3).map(|i| {
        clean(
            format!("udp {i}"),
            udp(&format!("198.18.3.{i}"), DST4, 1, 2),
            Class::Udp,
        )
    });
    let at = [
        Case {
            what: "ceiling reached".into(),
            frame: udp("2001:db8:9::1", DST6, 1, 2),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::Aggregate,
            class: Class::Udp,
        },
        clean(
            "syn has no ceiling",
            tcp(SRC4, DST4, TCP_SYN),
            Class::TcpSyn,
        ),
    ];
    let cases: Vec<Case> = under.chain(at).collect();
    h.expect_all(&cases);
    h.set_mode(Mode::Monitor);
    h.expect(
        "monitor",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::WouldDrop,
        Reason::Aggregate,
        Class::Udp,
    );
}

/// After a flood of one million distinct spoofed sources, a real source that was sending
/// steadily still has its per-source state: the sketch kept the spoofed sources out of the LRU.
#[test]
fn steady_source_keeps_its_state_through_a_million_spoofed_sources() {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.source[Class::Udp as usize] = Rate {
        pps: 1_000_000,
        burst_packets: 1_000_000,
        ..Rate::default()
    }
    .encode();
    // A table far smaller than the flood, so an ungated LRU would surely evict the real source.
    let h = Harness::with_sources(cfg, 1 << 16);
    let real = udp(SRC4, DST4, 1, 2);
    for _ in 0..32 {
        assert_eq!(h.run(&real), XDP_PASS);
    }
    let before = h.dp.source(ip(SRC4)).unwrap().expect("real source tracked");
    let mut frame = udp("10.0.0.0", DST4, 1, 2);
    let l3 = l3_offset(0);
    for i in 0u32..1_000_000 {
        // Spread the spoofed sources over the whole IPv4 space.
        let a = i.wrapping_mul(2_654_435_761).to_be_bytes();
        frame[l3 + 12..l3 + 16].copy_from_slice(&a);
        assert_eq!(h.run(&frame), XDP_PASS);
        if i % 50_000 == 0 {
            // The real source keeps sending steadily during the flood.
            for _ in 0..8 {
                assert_eq!(h.run(&real), XDP_PASS);
            }
        }
    }
    let after =
        h.dp.source(ip(SRC4))
            .unwrap()
            .expect("real source still tracked after the flood");
    assert!(after.pkt_tat[Class::Udp as usize] >= before.pkt_tat[Class::Udp as usize]);
    let tracked = h.dp.tracked_sources().unwrap();
    assert!(
        tracked < 1 << 15,
        "{tracked} sources tracked: the sketch let the flood into the LRU"
    );
}

/// Issue 8: an IPv6 source in ffff:ffff::/32 shared its limiter key with an IPv4 address, so
/// one could put the other in penalty. Multicast "sources" (always spoofed) now share one key
/// of their own.
#[test]
fn an_ipv6_source_never_spends_an_ipv4_sources_tokens() {
    let h = Harness::new(limited(5, Duration::from_secs(10)));
    let v4 = "198.51.100.7";
    let twin = "ffff:ffff:c633:6407::1"; // 198.51.100.7 in the upper 32 bits of its /64
    let flood = udp(twin, DST6, 1, 2);
    for _ in 0..5 {
        assert_eq!(h.run(&flood), XDP_PASS);
    }
    h.expect_all(&[Case {
        what: "the multicast source goes over its limit".into(),
        frame: flood.clone(),
        xdp: XDP_DROP,
        action: Action::Drop,
        reason: Reason::SourceRate,
        class: Class::Udp,
    }]);
    h.expect_all(&[clean(
        "its IPv4 twin is untouched",
        udp(v4, DST4, 1, 2),
        Class::Udp,
    )]);
    // Every multicast source shares that one key: another one is in the same penalty.
    h.expect_all(&[Case {
        what: "another multicast source".into(),
        frame: udp("ff02::1", DST6, 1, 2),
        xdp: XDP_DROP,
        action: Action::Drop,
        reason: Reason::SourcePenalty,
        class: Class::Udp,
    }]);
}
