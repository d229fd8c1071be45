//! Program tests: the compiled XDP object loaded into the kernel and driven with crafted frames
//! through BPF_PROG_TEST_RUN. One test per verdict and reason, in every mode, IPv4 and IPv6,
//! VLAN-tagged, and malformed frames.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, event, flags},
    config::Rate,
    frames::{FrameSpec, L4, VLAN_AD, VLAN_Q, arp, l3_offset},
    parse::{TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG},
};
use ipnet::IpNet;
use levee_tests::{Harness, XDP_DROP, XDP_PASS, ip, tcp, udp};

const SRC4: &str = "198.18.1.10";
const DST4: &str = "198.18.0.1";
const SRC6: &str = "2001:db8:1:2::10";
const DST6: &str = "2001:db8:18::1";

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn enforce() -> Harness {
    Harness::new(Config::new(Mode::Enforce))
}

/// What the mode makes of a frame the rules object to.
fn objected(mode: Mode) -> (u32, Action) {
    match mode {
        Mode::Off => (XDP_PASS, Action::Pass),
        Mode::Monitor => (XDP_PASS, Action::WouldDrop),
        Mode::Enforce | Mode::Lockdown => (XDP_DROP, Action::Drop),
    }
}

#[test]
fn clean_traffic_passes_v4_v6_and_vlan_tagged() {
    let h = enforce();
    let cases = [
        ("udp v4", udp(SRC4, DST4, 40000, 443), Class::Udp),
        ("udp v6", udp(SRC6, DST6, 40000, 443), Class::Udp),
        ("syn v4", tcp(SRC4, DST4, TCP_SYN), Class::TcpSyn),
        ("syn v6", tcp(SRC6, DST6, TCP_SYN), Class::TcpSyn),
        (
            "ack v4",
            tcp(SRC4, DST4, TCP_ACK | TCP_PSH),
            Class::TcpOther,
        ),
        (
            "icmp v4",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp).build(),
            Class::Icmp,
        ),
        (
            "icmpv6",
            FrameSpec::new(ip(SRC6), ip(DST6), L4::Icmp).build(),
            Class::Icmp,
        ),
        (
            "gre",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Raw(47)).build(),
            Class::Other,
        ),
        (
            "802.1Q udp v4",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_Q)
                .build(),
            Class::Udp,
        ),
        (
            "QinQ syn v6",
            FrameSpec::new(
                ip(SRC6),
                ip(DST6),
                L4::Tcp {
                    sport: 1,
                    dport: 2,
                    flags: TCP_SYN,
                },
            )
            .vlan(VLAN_AD)
            .vlan(VLAN_Q)
            .build(),
            Class::TcpSyn,
        ),
        (
            "ipv4 options",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .ipv4_options(12)
                .build(),
            Class::Udp,
        ),
        (
            "ipv6 ext headers",
            FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
                .ipv6_ext(0, 8)
                .ipv6_ext(43, 24)
                .ipv6_ext(60, 16)
                .build(),
            Class::Udp,
        ),
    ];
    for (what, frame, class) in cases {
        h.expect(what, &frame, XDP_PASS, Action::Pass, Reason::Clean, class);
    }
}

#[test]
fn non_ip_passes_in_every_mode() {
    let mut h = enforce();
    for mode in Mode::ALL {
        h.set_mode(mode);
        h.expect(
            mode.name(),
            &arp(),
            XDP_PASS,
            Action::Pass,
            Reason::NonIp,
            Class::Other,
        );
    }
}

#[test]
fn mode_off_passes_everything_without_checks() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    h.set_mode(Mode::Off);
    h.expect(
        "blocklisted in off",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::ModeOff,
        Class::Udp,
    );
    h.expect(
        "amp port in off",
        &udp(SRC6, DST6, 123, 2),
        XDP_PASS,
        Action::Pass,
        Reason::ModeOff,
        Class::Udp,
    );
}

#[test]
fn blocklist_v4_and_v6_prefixes_in_every_mode() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    h.dp.block(net("2001:db8:1::/48"), None).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        h.expect(
            "v4 in /24",
            &udp(SRC4, DST4, 1, 2),
            xdp,
            action,
            Reason::Blocklisted,
            Class::Udp,
        );
        h.expect(
            "v6 in /48",
            &tcp(SRC6, DST6, TCP_SYN),
            xdp,
            action,
            Reason::Blocklisted,
            Class::TcpSyn,
        );
        h.expect(
            "v4 outside",
            &udp("198.18.2.1", DST4, 1, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
        h.expect(
            "v6 outside",
            &udp("2001:db8:2::1", DST6, 1, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
    }
    assert!(h.dp.unblock(net("198.18.1.0/24")).unwrap());
    assert!(
        !h.dp.unblock(net("198.18.1.0/24")).unwrap(),
        "second removal finds nothing"
    );
    h.expect(
        "unblocked",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn blocklist_entry_expires_in_the_data_plane() {
    let h = {
        let mut h = enforce();
        h.dp.block(net("198.18.1.10/32"), Some(Duration::from_millis(300)))
            .unwrap();
        h.dp.block(net("2001:db8:1:2::/64"), Some(Duration::from_millis(300)))
            .unwrap();
        h
    };
    h.expect(
        "v4 before expiry",
        &udp(SRC4, DST4, 1, 2),
        XDP_DROP,
        Action::Drop,
        Reason::Blocklisted,
        Class::Udp,
    );
    h.expect(
        "v6 before expiry",
        &udp(SRC6, DST6, 1, 2),
        XDP_DROP,
        Action::Drop,
        Reason::Blocklisted,
        Class::Udp,
    );
    sleep(Duration::from_millis(400));
    // Nothing removed the entries: the program itself ignores them now.
    h.expect(
        "v4 after expiry",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "v6 after expiry",
        &udp(SRC6, DST6, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn allowlist_wins_over_everything_in_every_mode() {
    let mut h = enforce();
    h.dp.block(net("198.18.0.0/16"), None).unwrap();
    h.dp.block(net("2001:db8::/32"), None).unwrap();
    h.dp.allow(net("198.18.1.0/24")).unwrap();
    h.dp.allow(net("2001:db8:1:2::/64")).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce, Mode::Lockdown] {
        h.set_mode(mode);
        h.expect(
            "v4 allowed",
            &udp(SRC4, DST4, 123, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Allowlisted,
            Class::Udp,
        );
        h.expect(
            "v6 allowed",
            &tcp(SRC6, DST6, TCP_SYN | TCP_FIN),
            XDP_PASS,
            Action::Pass,
            Reason::Allowlisted,
            Class::TcpSyn,
        );
    }
}

#[test]
fn lockdown_drops_all_ip_that_is_not_allowlisted() {
    let mut h = enforce();
    h.dp.allow(net("198.18.1.10/32")).unwrap();
    h.set_mode(Mode::Lockdown);
    h.expect(
        "allowlisted",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Allowlisted,
        Class::Udp,
    );
    h.expect(
        "other v4",
        &udp("198.18.1.11", DST4, 1, 2),
        XDP_DROP,
        Action::Drop,
        Reason::Lockdown,
        Class::Udp,
    );
    h.expect(
        "v6 (empty v6 allowlist)",
        &tcp(SRC6, DST6, TCP_SYN),
        XDP_DROP,
        Action::Drop,
        Reason::Lockdown,
        Class::TcpSyn,
    );
    h.expect(
        "arp",
        &arp(),
        XDP_PASS,
        Action::Pass,
        Reason::NonIp,
        Class::Other,
    );
}

#[test]
fn amplification_ports_signature_switchable() {
    let mut h = enforce();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        for port in [53, 123, 1900, 11211, 389, 19, 161] {
            h.expect(
                &format!("udp from {port}"),
                &udp(SRC4, DST4, port, 40000),
                xdp,
                action,
                Reason::AmpPort,
                Class::Udp,
            );
        }
        h.expect(
            "v6 ntp",
            &udp(SRC6, DST6, 123, 40000),
            xdp,
            action,
            Reason::AmpPort,
            Class::Udp,
        );
        h.expect(
            "to port 53 is fine",
            &udp(SRC4, DST4, 40000, 53),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
        h.expect(
            "tcp from 53 is fine",
            &FrameSpec::new(
                ip(SRC4),
                ip(DST4),
                L4::Tcp {
                    sport: 53,
                    dport: 1,
                    flags: TCP_ACK,
                },
            )
            .build(),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::TcpOther,
        );
    }
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_AMP_PORTS, false);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "signature off",
        &udp(SRC4, DST4, 123, 40000),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.dp.set_amp_ports(&[4444]).unwrap();
    cfg.set_flag(flags::SIG_AMP_PORTS, true);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "custom port",
        &udp(SRC4, DST4, 4444, 1),
        XDP_DROP,
        Action::Drop,
        Reason::AmpPort,
        Class::Udp,
    );
    h.expect(
        "default port no longer listed",
        &udp(SRC4, DST4, 123, 1),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn impossible_tcp_flags_signature_switchable() {
    let mut h = enforce();
    let cases = [
        ("syn+fin", TCP_SYN | TCP_FIN, Class::TcpSyn),
        ("syn+rst", TCP_SYN | TCP_RST, Class::TcpSyn),
        ("null", 0, Class::TcpOther),
        ("xmas", TCP_FIN | TCP_PSH | TCP_URG, Class::TcpOther),
    ];
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        for (what, f, class) in cases {
            h.expect(
                what,
                &tcp(SRC4, DST4, f),
                xdp,
                action,
                Reason::TcpFlags,
                class,
            );
            h.expect(
                what,
                &tcp(SRC6, DST6, f),
                xdp,
                action,
                Reason::TcpFlags,
                class,
            );
        }
    }
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_TCP_FLAGS, false);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "off",
        &tcp(SRC4, DST4, 0),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::TcpOther,
    );
}

#[test]
fn fragments_signature_switchable() {
    let mut h = enforce();
    let first4 = FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(0, true)
        .build();
    let later4 = FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(100, false)
        .build();
    let later6 = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(100, true)
        .build();
    h.expect(
        "fragments allowed by default",
        &later4,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_FRAGMENTS, true);
    h.dp.set_config(cfg).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        h.expect(
            "first v4",
            &first4,
            xdp,
            action,
            Reason::Fragment,
            Class::Udp,
        );
        h.expect(
            "later v4",
            &later4,
            xdp,
            action,
            Reason::Fragment,
            Class::Udp,
        );
        h.expect(
            "later v6",
            &later6,
            xdp,
            action,
            Reason::Fragment,
            Class::Udp,
        );
        h.expect(
            "whole datagram",
            &udp(SRC4, DST4, 1, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
    }
}

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
        for i in 0..5 {
            h.expect(
                &format!("{src} packet {i} in burst"),
                &udp(src, dst, 1, 2),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
        }
        h.expect(
            &format!("{src} over"),
            &udp(src, dst, 1, 2),
            XDP_DROP,
            Action::Drop,
            Reason::SourceRate,
            Class::Udp,
        );
        // Another source and another class of the same source have their own buckets.
        let other = if src == SRC4 {
            "198.18.1.99"
        } else {
            "2001:db8:1:3::1"
        };
        h.expect(
            "other source",
            &udp(other, dst, 1, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
        h.expect(
            "same source, syn",
            &tcp(src, dst, TCP_SYN),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::TcpSyn,
        );
        let state = h.dp.source(ip(src)).unwrap().expect("source tracked");
        assert_eq!(state.offences, 1);
    }
}

#[test]
fn ipv6_sources_share_state_per_64() {
    let h = Harness::new(limited(2, Duration::ZERO));
    h.expect(
        "a",
        &udp("2001:db8:1:2::1", DST6, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "b, same /64",
        &udp("2001:db8:1:2::ffff", DST6, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "c, same /64, over",
        &udp("2001:db8:1:2:aaaa::1", DST6, 1, 2),
        XDP_DROP,
        Action::Drop,
        Reason::SourceRate,
        Class::Udp,
    );
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
    h.expect(
        "refilled 1",
        &f,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "refilled 2",
        &f,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "empty again",
        &f,
        XDP_DROP,
        Action::Drop,
        Reason::SourceRate,
        Class::Udp,
    );
}

#[test]
fn offender_serves_a_penalty_and_is_reported() {
    let mut h = Harness::new(limited(2, Duration::from_millis(1500)));
    let mut events = h.dp.take_events().unwrap();
    let f = udp(SRC4, DST4, 1, 2);
    assert_eq!(h.run(&f), XDP_PASS);
    assert_eq!(h.run(&f), XDP_PASS);
    h.expect(
        "offence",
        &f,
        XDP_DROP,
        Action::Drop,
        Reason::SourceRate,
        Class::Udp,
    );
    // Its SYNs are dropped too while it serves the penalty, even with tokens left.
    h.expect(
        "penalty",
        &tcp(SRC4, DST4, TCP_SYN),
        XDP_DROP,
        Action::Drop,
        Reason::SourcePenalty,
        Class::TcpSyn,
    );
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
    let e: filter_common::abi::Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
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
    h.expect(
        "first",
        &f,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.expect(
        "over, passed",
        &f,
        XDP_PASS,
        Action::WouldDrop,
        Reason::SourceRate,
        Class::Udp,
    );
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
    for i in 0..3 {
        h.expect(
            &format!("udp {i}"),
            &udp(&format!("198.18.3.{i}"), DST4, 1, 2),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::Udp,
        );
    }
    h.expect(
        "ceiling reached",
        &udp("2001:db8:9::1", DST6, 1, 2),
        XDP_DROP,
        Action::Drop,
        Reason::Aggregate,
        Class::Udp,
    );
    h.expect(
        "syn has no ceiling",
        &tcp(SRC4, DST4, TCP_SYN),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::TcpSyn,
    );
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

#[test]
fn mode_switches_without_reload() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.10/32"), None).unwrap();
    let f = udp(SRC4, DST4, 1, 2);
    for (mode, xdp, action, reason) in [
        (Mode::Enforce, XDP_DROP, Action::Drop, Reason::Blocklisted),
        (
            Mode::Monitor,
            XDP_PASS,
            Action::WouldDrop,
            Reason::Blocklisted,
        ),
        (Mode::Off, XDP_PASS, Action::Pass, Reason::ModeOff),
        (Mode::Lockdown, XDP_DROP, Action::Drop, Reason::Lockdown),
        (Mode::Enforce, XDP_DROP, Action::Drop, Reason::Blocklisted),
    ] {
        h.set_mode(mode);
        h.expect(mode.name(), &f, xdp, action, reason, Class::Udp);
    }
}

/// Malformed frames: each gets its own reason, in every mode, and never passes as anything else.
#[test]
fn malformed_frames_in_every_mode() {
    let l3 = l3_offset(0);
    let good4 = udp(SRC4, DST4, 1, 2);
    let good6 = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
        .ipv6_ext(0, 16)
        .payload(8)
        .build();
    let syn = tcp(SRC4, DST4, TCP_SYN);
    let with = |f: &[u8], edits: &[(usize, u8)]| {
        let mut f = f.to_vec();
        for (i, b) in edits {
            f[*i] = *b;
        }
        f
    };
    let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
        (
            "truncated vlan tag",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_Q)
                .build()[..16]
                .to_vec(),
            Reason::VlanTruncated,
        ),
        (
            "three vlan tags",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_AD)
                .vlan(VLAN_Q)
                .vlan(VLAN_Q)
                .build(),
            Reason::VlanTooDeep,
        ),
        (
            "truncated ipv4",
            good4[..l3 + 19].to_vec(),
            Reason::Ipv4Truncated,
        ),
        (
            "ipv4 bad version",
            with(&good4, &[(l3, 0x65)]),
            Reason::Ipv4BadVersion,
        ),
        (
            "ihl below 5",
            with(&good4, &[(l3, 0x44)]),
            Reason::Ipv4BadIhl,
        ),
        (
            "ihl past the end",
            with(&good4[..l3 + 28], &[(l3, 0x4f)]),
            Reason::Ipv4Truncated,
        ),
        (
            "total length lies",
            with(&good4, &[(l3 + 2, 0x02)]),
            Reason::Ipv4BadLength,
        ),
        (
            "total length below ihl",
            with(&good4, &[(l3 + 2, 0), (l3 + 3, 8)]),
            Reason::Ipv4BadLength,
        ),
        (
            "truncated udp",
            with(&good4[..l3 + 24], &[(l3 + 2, 0), (l3 + 3, 24)]),
            Reason::UdpTruncated,
        ),
        (
            "udp length lies",
            with(&good4, &[(l3 + 24, 0x7f)]),
            Reason::UdpBadLength,
        ),
        (
            "truncated tcp",
            with(&syn[..l3 + 30], &[(l3 + 2, 0), (l3 + 3, 30)]),
            Reason::TcpTruncated,
        ),
        (
            "tcp offset below 5",
            with(&syn, &[(l3 + 32, 0x30)]),
            Reason::TcpBadOffset,
        ),
        (
            "tcp offset past end",
            with(&syn, &[(l3 + 32, 0xf0)]),
            Reason::TcpTruncated,
        ),
        (
            "truncated icmp",
            with(
                &FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp).build()[..l3 + 22],
                &[(l3 + 2, 0), (l3 + 3, 22)],
            ),
            Reason::IcmpTruncated,
        ),
        (
            "truncated ipv6",
            good6[..l3 + 39].to_vec(),
            Reason::Ipv6Truncated,
        ),
        (
            "ipv6 bad version",
            with(&good6, &[(l3, 0x40)]),
            Reason::Ipv6BadVersion,
        ),
        (
            "ipv6 payload length lies",
            with(&good6, &[(l3 + 4, 0x40)]),
            Reason::Ipv6BadLength,
        ),
        (
            "truncated ipv6 extension chain",
            with(&good6[..l3 + 48], &[(l3 + 4, 0), (l3 + 5, 8)]),
            Reason::Ipv6ExtTruncated,
        ),
        (
            "too many ipv6 extension headers",
            {
                let mut s = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 });
                for _ in 0..7 {
                    s = s.ipv6_ext(60, 8);
                }
                s.build()
            },
            Reason::Ipv6ExtTooMany,
        ),
        (
            "truncated udp in ipv6",
            with(
                &FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 }).build()
                    [..l3 + 44],
                &[(l3 + 4, 0), (l3 + 5, 4)],
            ),
            Reason::UdpTruncated,
        ),
    ];
    let mut h = enforce();
    for mode in Mode::ALL {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        for (what, frame, reason) in &cases {
            h.expect(
                &format!("{what} in {}", mode.name()),
                frame,
                xdp,
                action,
                *reason,
                Class::Other,
            );
        }
    }
}

/// Frames shorter than an Ethernet header never reach an XDP program: drivers drop runts, and
/// BPF_PROG_TEST_RUN refuses them (net/bpf/test_run.c, bpf_test_init: `size < ETH_HLEN` is
/// EINVAL). The parser's host tests cover the empty and truncated-Ethernet cases; here we show
/// the kernel never hands such a frame to the program.
#[test]
fn runt_frames_never_reach_the_program() {
    let h = enforce();
    let good = udp(SRC4, DST4, 1, 2);
    for cut in [0, 1, 6, 13] {
        let before = h.counters();
        assert!(
            h.dp.test_run(&good[..cut], 1).is_err(),
            "kernel ran a {cut}-byte frame"
        );
        assert_eq!(
            h.counters(),
            before,
            "nothing counted for a {cut}-byte frame"
        );
    }
    h.expect(
        "exactly an Ethernet header",
        &good[..14],
        XDP_DROP,
        Action::Drop,
        Reason::Ipv4Truncated,
        Class::Other,
    );
}

/// Truncations at every length of good frames: the program never fails, and a cut frame is
/// never counted as clean.
#[test]
fn every_truncation_is_a_defined_verdict() {
    let h = enforce();
    let frames = [
        udp(SRC4, DST4, 1, 2),
        udp(SRC6, DST6, 1, 2),
        tcp(SRC4, DST4, TCP_SYN),
        FrameSpec::new(
            ip(SRC6),
            ip(DST6),
            L4::Tcp {
                sport: 1,
                dport: 2,
                flags: TCP_SYN,
            },
        )
        .vlan(VLAN_AD)
        .vlan(VLAN_Q)
        .ipv6_ext(0, 8)
        .ipv6_ext(44, 8)
        .build(),
        FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp)
            .vlan(VLAN_Q)
            .ipv4_options(8)
            .build(),
    ];
    for frame in frames {
        for cut in 14..frame.len() {
            let before = h.counters();
            let xdp = h.run(&frame[..cut]);
            let after = h.counters();
            assert_eq!(xdp, XDP_DROP, "cut at {cut} of {}", frame.len());
            assert_eq!(
                after.action_packets(Action::Drop) - before.action_packets(Action::Drop),
                1
            );
            let malformed: u64 = filter_common::abi::Reason::ALL
                .iter()
                .filter(|r| r.is_malformed())
                .map(|r| after.packets(Action::Drop, *r) - before.packets(Action::Drop, *r))
                .sum();
            assert_eq!(malformed, 1, "cut at {cut}: counted as malformed");
        }
    }
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

/// With `sample_every` set to 1, every IP packet's header goes to user space as a sample event,
/// with its verdict; non-IP frames are not sampled.
#[test]
fn sampled_headers_reach_the_ring_buffer() {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.sample_every = 1;
    let mut h = Harness::new(cfg);
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    let mut events = h.dp.take_events().unwrap();
    assert_eq!(h.run(&udp(SRC6, DST6, 5000, 443)), XDP_PASS);
    assert_eq!(h.run(&tcp(SRC4, DST4, TCP_SYN)), XDP_DROP);
    assert_eq!(h.run(&arp()), XDP_PASS);
    let mut got = Vec::new();
    while let Some(item) = events.next() {
        let e: filter_common::abi::Event =
            unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        got.push(e);
    }
    assert_eq!(got.len(), 2, "one sample per IP packet, none for ARP");
    assert_eq!(got[0].kind, event::SAMPLE);
    assert_eq!(
        (got[0].family, got[0].src_port, got[0].dst_port),
        (6, 5000, 443)
    );
    assert_eq!(
        (got[0].action, got[0].reason),
        (Action::Pass as u32, Reason::Clean as u32)
    );
    assert_eq!((got[1].family, got[1].class), (4, Class::TcpSyn as u32));
    assert_eq!(
        (got[1].action, got[1].reason),
        (Action::Drop as u32, Reason::Blocklisted as u32)
    );
    assert_eq!(got[1].tcp_flags, TCP_SYN);
}
