//! Every "never" refused with one line, and what is safe passing.

use std::net::IpAddr;

use super::*;
use crate::{
    config::escalation::Neighbor,
    config::{EscalationMode, EscalationSettings},
    escalation::FlowRule,
};

fn neighbor(address: &str, role: Role) -> Neighbor {
    Neighbor {
        address: address.parse().unwrap(),
        asn: 65000,
        role,
        password: None,
        max_prefixes: 100,
    }
}

fn settings() -> EscalationSettings {
    EscalationSettings {
        mode: EscalationMode::On,
        neighbors: vec![neighbor("192.0.2.1", Role::Upstream)],
        protected_prefixes: vec![
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ],
        ..EscalationSettings::default()
    }
}

fn flow(dst: &str) -> FlowRule {
    FlowRule {
        dst: dst.parse().unwrap(),
        proto: Some(17),
        src_port: Some(123),
        dst_port: None,
        len: Some((468, 1500)),
        action: FlowAction::Discard,
    }
}

const IDLE: Held = Held {
    active: 0,
    last_minute: 0,
    fleet_active: 0,
    fleet_last_minute: 0,
};
const TTL: Option<Duration> = Some(Duration::from_secs(600));

fn refused(rule: Rule, ttl: Option<Duration>, held: &Held) -> String {
    let e = check(
        &rule,
        Audience::Upstream,
        ttl,
        &settings(),
        |n: IpNet| n.contains(&"192.0.2.53".parse::<IpAddr>().unwrap()),
        held,
    )
    .expect_err("refused");
    format!("{e:#}")
}

#[test]
fn safe_rules_pass() {
    let s = settings();
    let none = |_: IpNet| false;
    check(
        &Rule::Rtbh {
            dst: "192.0.2.10".parse().unwrap(),
        },
        Audience::Upstream,
        TTL,
        &s,
        none,
        &IDLE,
    )
    .unwrap();
    let up = Audience::Upstream;
    check(
        &Rule::FlowSpec(flow("2001:db8::10")),
        up,
        TTL,
        &s,
        none,
        &IDLE,
    )
    .unwrap();
}

#[test]
fn every_never_is_refused_with_one_line() {
    let rtbh = |a: &str| Rule::Rtbh {
        dst: a.parse().unwrap(),
    };
    let cases = [
        refused(rtbh("198.51.100.7"), TTL, &IDLE),
        refused(rtbh("0.0.0.0"), TTL, &IDLE),
        refused(rtbh("192.0.2.53"), TTL, &IDLE),
        refused(rtbh("192.0.2.10"), None, &IDLE),
        refused(rtbh("192.0.2.10"), Some(Duration::from_secs(7200)), &IDLE),
        refused(rtbh("192.0.2.10"), TTL, &Held { active: 16, ..IDLE }),
        refused(
            rtbh("192.0.2.10"),
            TTL,
            &Held {
                last_minute: 10,
                ..IDLE
            },
        ),
        refused(
            Rule::FlowSpec(FlowRule {
                len: Some((1500, 468)),
                ..flow("192.0.2.10")
            }),
            TTL,
            &IDLE,
        ),
        refused(
            Rule::FlowSpec(FlowRule {
                len: Some((0, 10)),
                ..flow("192.0.2.10")
            }),
            TTL,
            &IDLE,
        ),
        refused(
            Rule::FlowSpec(FlowRule {
                action: FlowAction::RateBytes(0),
                ..flow("192.0.2.10")
            }),
            TTL,
            &IDLE,
        ),
        refused(
            Rule::FlowSpec(FlowRule {
                proto: Some(1),
                ..flow("192.0.2.10")
            }),
            TTL,
            &IDLE,
        ),
        refused(
            Rule::FlowSpec(FlowRule {
                proto: None,
                src_port: None,
                len: None,
                ..flow("192.0.2.10")
            }),
            TTL,
            &IDLE,
        ),
    ];
    let expected = [
        "outside escalation.protected_prefixes",
        "is not a host",
        "allowlisted",
        "needs a TTL",
        "max_ttl",
        "max_active",
        "max_per_minute",
        "matches no",
        "matches no",
        "rate 0",
        "ports need",
        "is an RTBH",
    ];
    for (e, want) in cases.iter().zip(expected) {
        assert!(e.contains(want) && !e.contains('\n'), "{want}: {e}");
    }
}

#[test]
fn source_blocks_go_to_the_fleet_only_and_stay_narrow() {
    let mut s = settings();
    let none = |_: IpNet| false;
    let block = |src: &str, dst: &str| Rule::SourceBlock {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
    };
    let ok = block("203.0.113.7/32", "192.0.2.0/24");
    let e = check(&ok, Audience::Fleet, TTL, &s, none, &IDLE).expect_err("no fleet");
    assert!(
        format!("{e:#}").contains("no neighbour has role \"fleet\""),
        "{e:#}"
    );
    s.neighbors.push(neighbor("192.0.2.2", Role::Fleet));
    check(&ok, Audience::Fleet, TTL, &s, none, &IDLE).unwrap();
    let refused = |rule: &Rule, to: Audience, held: &Held| {
        format!(
            "{:#}",
            check(
                rule,
                to,
                TTL,
                &s,
                |n: IpNet| n.contains(&"203.0.113.9".parse::<IpAddr>().unwrap()),
                held
            )
            .expect_err("refused")
        )
    };
    let cases = [
        (refused(&ok, Audience::Both, &IDLE), "never upstream"),
        (
            refused(
                &block("203.0.113.0/16", "192.0.2.0/24"),
                Audience::Fleet,
                &IDLE,
            ),
            "wider than /24",
        ),
        (
            refused(
                &block("192.0.2.0/24", "192.0.2.0/24"),
                Audience::Fleet,
                &IDLE,
            ),
            "covers a protected prefix",
        ),
        (
            refused(
                &block("203.0.113.0/24", "192.0.2.0/24"),
                Audience::Fleet,
                &IDLE,
            ),
            "holds an allowlisted address",
        ),
        (
            refused(
                &block("203.0.113.7/32", "198.51.100.0/24"),
                Audience::Fleet,
                &IDLE,
            ),
            "outside",
        ),
        (
            refused(
                &ok,
                Audience::Fleet,
                &Held {
                    fleet_active: 256,
                    ..IDLE
                },
            ),
            "fleet.max_active",
        ),
        (
            refused(
                &ok,
                Audience::Fleet,
                &Held {
                    fleet_last_minute: 120,
                    ..IDLE
                },
            ),
            "fleet.max_per_minute",
        ),
    ];
    for (line, says) in cases {
        assert!(line.contains(says), "{line:?} should say {says:?}");
        assert!(!line.contains('\n'), "{line:?}");
    }
    // The upstream's limits do not hold back the fleet's rules.
    let full = Held {
        active: 16,
        last_minute: 10,
        ..IDLE
    };
    check(&ok, Audience::Fleet, TTL, &s, none, &full).unwrap();
}

#[test]
fn a_rule_for_the_fleet_passes_the_same_flowspec_checks() {
    let mut s = settings();
    s.neighbors.push(Neighbor {
        role: Role::Fleet,
        ..s.neighbors[0].clone()
    });
    let bare = Rule::FlowSpec(FlowRule {
        proto: None,
        src_port: None,
        len: None,
        ..flow("192.0.2.10")
    });
    let e = check(&bare, Audience::Fleet, TTL, &s, |_| false, &IDLE).expect_err("an RTBH");
    assert!(format!("{e:#}").contains("is an RTBH"), "{e:#}");
    let zero = Rule::FlowSpec(FlowRule {
        action: FlowAction::RateBytes(0),
        ..flow("192.0.2.10")
    });
    assert!(check(&zero, Audience::Fleet, TTL, &s, |_| false, &IDLE).is_err());
}
