//! FlowSpec rules received from BGP neighbours, as the controller compiles them: a discard
//! drops what matches every component and nothing else; a rate drops what is over it; in
//! monitor mode both only count; an empty table costs nothing and drops nothing.

use filter_common::abi::{Action, Class, Config, Mode, Reason, UpstreamRule, flags};
use levee::escalation::{FlowAction, received::EnforcedRule};
use levee_tests::{Case, Harness, XDP_DROP, XDP_PASS, icmp, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, clean, enforce, net, objected};

fn rule(dst: &str, action: FlowAction) -> EnforcedRule {
    EnforcedRule {
        dst: net(dst),
        src: None,
        proto: None,
        src_port: None,
        dst_port: None,
        len: None,
        action,
    }
}

/// UDP from port 123 to the protected /24, and to one IPv6 host on port 443 from one /64.
fn ntp_and_v6_rules() -> Vec<UpstreamRule> {
    let ntp = EnforcedRule {
        proto: Some((17, 17)),
        src_port: Some((123, 123)),
        len: Some((40, 1500)),
        ..rule("198.18.0.0/24", FlowAction::Discard)
    };
    let v6 = EnforcedRule {
        src: Some(net("2001:db8:1:2::/64")),
        proto: Some((17, 17)),
        dst_port: Some((443, 443)),
        ..rule("2001:db8:18::1/128", FlowAction::Discard)
    };
    vec![ntp.to_abi(1), v6.to_abi(1)]
}

#[track_caller]
fn expect_verdict(h: &Harness, what: &str, frame: &[u8], dropped: bool, class: Class) {
    let (xdp, action, reason) = if dropped {
        (XDP_DROP, Action::Drop, Reason::UpstreamRule)
    } else {
        (XDP_PASS, Action::Pass, Reason::Clean)
    };
    h.expect(what, frame, xdp, action, reason, class);
}

#[test]
fn received_rules_drop_exactly_what_they_match() {
    let mut h = Harness::new(Config {
        // The amplification signature would drop port 123 by itself.
        flags: Config::new(Mode::Enforce).flags & !flags::SIG_AMP_PORTS,
        ..Config::new(Mode::Enforce)
    });
    h.dp.set_upstream_rules(&ntp_and_v6_rules(), &[]).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let m = mode.name();
        let upstream = |what: &str, frame| Case {
            what: format!("{what} in {m}"),
            frame,
            xdp,
            action,
            reason: Reason::UpstreamRule,
            class: Class::Udp,
        };
        let passes = |what: &str, frame| clean(format!("{what} in {m}"), frame, Class::Udp);
        h.expect_all(&[
            upstream("udp from 123 to the /24", udp(SRC4, DST4, 123, 40000)),
            upstream(
                "udp from 123 to another /24 host",
                udp(SRC4, "198.18.0.77", 123, 9),
            ),
            passes("udp from 124", udp(SRC4, DST4, 124, 40000)),
            passes("udp from 123 outside", udp(SRC4, "198.19.0.1", 123, 9)),
            clean(
                format!("tcp in {m}"),
                tcp(SRC4, DST4, 0x10),
                Class::TcpOther,
            ),
            upstream("v6 to 443 from the /64", udp(SRC6, DST6, 5000, 443)),
            passes(
                "v6 from another /64",
                udp("2001:db8:1:3::10", DST6, 5000, 443),
            ),
            passes("v6 to 444", udp(SRC6, DST6, 5000, 444)),
        ]);
    }
    // Length, bounds included (the datagrams above are 50-byte IP packets).
    let full = udp(SRC4, DST4, 5000, 9);
    for (lo, hi, dropped) in [
        (50, 50, true),
        (40, 50, true),
        (51, 1500, false),
        (20, 49, false),
    ] {
        let by_len = EnforcedRule {
            proto: Some((17, 17)),
            len: Some((lo, hi)),
            ..rule("198.18.0.0/24", FlowAction::Discard)
        };
        h.dp.set_upstream_rules(&[by_len.to_abi(1)], &[]).unwrap();
        let what = format!("a 50-byte packet under len {lo}-{hi}");
        expect_verdict(&h, &what, &full, dropped, Class::Udp);
    }
    // Ports match only TCP and UDP: ICMP has none, though its "ports" read as 0.
    let low_ports = EnforcedRule {
        dst_port: Some((0, 1023)),
        ..rule("198.18.0.0/24", FlowAction::Discard)
    };
    h.dp.set_upstream_rules(&[low_ports.to_abi(1)], &[])
        .unwrap();
    expect_verdict(&h, "udp to 9 under dport 0-1023", &full, true, Class::Udp);
    expect_verdict(
        &h,
        "icmp under a port rule",
        &icmp(SRC4, DST4),
        false,
        Class::Icmp,
    );
    // The table emptied: nothing is dropped by it any more.
    h.dp.set_upstream_rules(&[], &[]).unwrap();
    expect_verdict(
        &h,
        "udp from 123, no rules",
        &udp(SRC4, DST4, 123, 9),
        false,
        Class::Udp,
    );
}

#[test]
fn a_rate_rule_drops_what_is_over_it() {
    let mut h = enforce();
    // 1000 bytes a second; the bucket holds at least one full frame (1514 bytes).
    let slow = EnforcedRule {
        proto: Some((17, 17)),
        dst_port: Some((9, 9)),
        ..rule("198.18.0.1/32", FlowAction::RateBytes(1000))
    };
    h.dp.set_upstream_rules(&[slow.to_abi(1)], &[]).unwrap();
    let frame = udp(SRC4, DST4, 5000, 9);
    let verdicts: Vec<u32> = (0..40).map(|_| h.run(&frame)).collect();
    let passed = verdicts.iter().filter(|v| **v == XDP_PASS).count();
    // A 64-byte frame costs 64 ms of a 1000 B/s bucket 1514 ms deep: 23 fit.
    assert!(
        (22..=24).contains(&passed),
        "the burst passes, the rest is dropped: {passed} of {verdicts:?}"
    );
    assert!(
        verdicts[..22].iter().all(|v| *v == XDP_PASS),
        "{verdicts:?}"
    );
    assert!(
        verdicts[25..].iter().all(|v| *v == XDP_DROP),
        "{verdicts:?}"
    );
    let other_port = udp(SRC4, DST4, 5000, 10);
    expect_verdict(&h, "udp to another port", &other_port, false, Class::Udp);
}

/// Issue 23: received rules hold only while the controller renews their lease, so a crashed
/// daemon's rules stop by themselves, with the program still attached.
#[test]
fn received_rules_stop_when_their_lease_runs_out() {
    let mut h = enforce();
    let all_udp = EnforcedRule {
        proto: Some((17, 17)),
        ..rule("198.18.0.0/24", FlowAction::Discard)
    };
    h.dp.set_upstream_rules(&[all_udp.to_abi(1)], &[]).unwrap();
    let frame = udp(SRC4, DST4, 5000, 9);
    expect_verdict(&h, "within the lease", &frame, true, Class::Udp);
    let now = levee::dataplane::monotonic_coarse_ns();
    h.dp.set_upstream_lease(now - 1).unwrap();
    expect_verdict(&h, "the lease ran out", &frame, false, Class::Udp);
    h.dp.renew_upstream_lease().unwrap();
    expect_verdict(&h, "renewed", &frame, true, Class::Udp);
}

/// Issue 23: a BGP session with a configured neighbour (TCP to or from port 179, from the
/// neighbour's address) passes before every stage: a received discard over its /24, the
/// blocklist, lockdown and strict cannot cut it. Its other traffic, and port 179 from anyone
/// else, meet the stages as before.
#[test]
fn bgp_sessions_with_neighbours_pass_before_every_stage() {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::STRICT, true);
    cfg.set_flag(flags::TRACK_FLOWS, true);
    let mut h = Harness::new(cfg);
    let neighbour = "198.18.1.2";
    h.dp.set_bgp_peers(&[
        neighbour.parse().unwrap(),
        "2001:db8:1:2::10".parse().unwrap(),
    ])
    .unwrap();
    let over_the_lab = rule("198.18.0.0/16", FlowAction::Discard);
    h.dp.set_upstream_rules(&[over_the_lab.to_abi(1)], &[])
        .unwrap();
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    let session = |src: &str, dst: &str, sport: u16, dport: u16| {
        filter_common::frames::FrameSpec::new(
            levee_tests::ip(src),
            levee_tests::ip(dst),
            filter_common::frames::L4::Tcp {
                sport,
                dport,
                flags: 0x10,
            },
        )
        .build()
    };
    for mode in [Mode::Enforce, Mode::Lockdown] {
        h.set_mode(mode);
        for (what, frame) in [
            ("to port 179", session(neighbour, DST4, 40_000, 179)),
            ("from port 179", session(neighbour, DST4, 179, 40_000)),
            (
                "IPv6 from port 179",
                session("2001:db8:1:2::10", DST6, 179, 40_000),
            ),
        ] {
            h.expect(
                &format!("{} {what}", mode.name()),
                &frame,
                XDP_PASS,
                Action::Pass,
                Reason::BgpSession,
                Class::TcpOther,
            );
        }
    }
    h.set_mode(Mode::Enforce);
    h.expect(
        "the neighbour's other traffic",
        &session(neighbour, DST4, 40_000, 22),
        XDP_DROP,
        Action::Drop,
        Reason::Blocklisted,
        Class::TcpOther,
    );
    h.expect(
        "port 179 from another source",
        &session("198.18.1.3", DST4, 40_000, 179),
        XDP_DROP,
        Action::Drop,
        Reason::Blocklisted,
        Class::TcpOther,
    );
}
