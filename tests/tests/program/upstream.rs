//! FlowSpec rules received from BGP neighbours, as the controller compiles them: a discard
//! drops what matches every component and nothing else; a rate drops what is over it; in
//! monitor mode both only count; an empty table costs nothing and drops nothing.

use filter_common::abi::{Action, Class, Config, Mode, Reason, flags};
use levee::escalation::{FlowAction, received::EnforcedRule};
use levee_tests::{Case, Harness, XDP_DROP, XDP_PASS, tcp, udp};

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
fn ntp_and_v6_rules() -> Vec<filter_common::abi::UpstreamRule> {
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

#[test]
fn received_rules_drop_exactly_what_they_match() {
    let mut h = Harness::new(Config {
        // The amplification signature would drop port 123 by itself.
        flags: Config::new(Mode::Enforce).flags & !flags::SIG_AMP_PORTS,
        ..Config::new(Mode::Enforce)
    });
    h.dp.set_upstream_rules(&ntp_and_v6_rules()).unwrap();
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
        h.expect_all(&[
            upstream("udp from 123 to the /24", udp(SRC4, DST4, 123, 40000)),
            upstream(
                "udp from 123 to another host of the /24",
                udp(SRC4, "198.18.0.77", 123, 9),
            ),
            clean(
                format!("udp from 124 in {m}"),
                udp(SRC4, DST4, 124, 40000),
                Class::Udp,
            ),
            clean(
                format!("udp from 123 outside the /24 in {m}"),
                udp(SRC4, "198.19.0.1", 123, 9),
                Class::Udp,
            ),
            clean(
                format!("tcp in {m}"),
                tcp(SRC4, DST4, 0x10),
                Class::TcpOther,
            ),
            upstream("v6 to 443 from the /64", udp(SRC6, DST6, 5000, 443)),
            clean(
                format!("v6 to 443 from another /64 in {m}"),
                udp("2001:db8:1:3::10", DST6, 5000, 443),
                Class::Udp,
            ),
            clean(
                format!("v6 to 444 in {m}"),
                udp(SRC6, DST6, 5000, 444),
                Class::Udp,
            ),
        ]);
    }
    // Below the length range: a 59-byte IP packet cannot be built with UDP, so the range is
    // checked from the other side with a rule starting above this frame's length.
    let short = EnforcedRule {
        proto: Some((17, 17)),
        len: Some((100, 1500)),
        ..rule("198.18.0.0/24", FlowAction::Discard)
    };
    h.dp.set_upstream_rules(&[short.to_abi(1)]).unwrap();
    h.expect(
        "a 50-byte datagram under len 100-1500",
        &udp(SRC4, DST4, 5000, 9),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    // The table emptied: nothing is dropped by it any more.
    h.dp.set_upstream_rules(&[]).unwrap();
    h.expect(
        "udp from 123 with no rules",
        &udp(SRC4, DST4, 123, 40000),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn a_rate_rule_drops_what_is_over_it() {
    let mut h = enforce();
    // 1000 bytes a second with a burst of 100 bytes (the floor of one full frame: 1514).
    let slow = EnforcedRule {
        proto: Some((17, 17)),
        dst_port: Some((9, 9)),
        ..rule("198.18.0.1/32", FlowAction::RateBytes(1000))
    };
    h.dp.set_upstream_rules(&[slow.to_abi(1)]).unwrap();
    let frame = udp(SRC4, DST4, 5000, 9);
    let verdicts: Vec<u32> = (0..40).map(|_| h.run(&frame)).collect();
    let passed = verdicts.iter().filter(|v| **v == XDP_PASS).count();
    assert!(
        (1..40).contains(&passed),
        "the burst passes, the rest is dropped: {verdicts:?}"
    );
    assert_eq!(verdicts.last(), Some(&XDP_DROP));
    h.expect(
        "udp to another port",
        &udp(SRC4, DST4, 5000, 10),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}
