//! Which received FlowSpec rules the program enforces: each compiled ([`received::compile`]),
//! and of those it can enforce, the first [`MAX_UPSTREAM_RULES`] by RFC 8955 §5.1's order,
//! whatever order gobgpd lists them in (so one neighbour's many rules cannot push out
//! another's by arriving first).

use std::cmp::Ordering;

use filter_common::abi::MAX_UPSTREAM_RULES;
use ipnet::IpNet;

use super::{
    bgp::ReceivedView,
    gobgp::api,
    received::{self, EnforcedRule, Outcome},
};
use crate::config::EscalationSettings;

/// What Levee makes of the paths the neighbours sent ((rule as gobgpd prints it, neighbour,
/// path)): a view of each, and the rules the program enforces, in precedence order.
pub fn choose(
    paths: &[(String, String, api::Path)],
    s: &EscalationSettings,
) -> (Vec<ReceivedView>, Vec<EnforcedRule>) {
    let min_prefix = (s.received_min_prefix_v4, s.received_min_prefix_v6);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut views = Vec::new();
    let mut candidates = Vec::new();
    for (rule, neighbor, path) in paths {
        let until = received::held_until(path);
        let (state, detail) = match received::compile(path, &s.protected_prefixes, min_prefix) {
            Outcome::Enforced(_) if until.is_some_and(|t| t <= now) => (
                "expired",
                "its sender's time for it ran out (a sender that stopped renewing it)".into(),
            ),
            Outcome::Enforced(r) => {
                candidates.push((views.len(), r));
                ("enforced", String::new())
            }
            Outcome::Skipped(why) => ("skipped", why),
            Outcome::Ignored(why) => ("ignored", why),
            Outcome::Refused(why) => ("refused", why),
        };
        views.push(ReceivedView {
            rule: rule.clone(),
            neighbor: neighbor.clone(),
            state: state.into(),
            detail,
            ttl_left_secs: until.map(|t| t.saturating_sub(now)),
        });
    }
    candidates.sort_by(|a, b| cmp(&a.1, &b.1));
    let mut enforced = Vec::new();
    for (i, r) in candidates {
        let view = &mut views[i];
        if enforced.len() < MAX_UPSTREAM_RULES as usize {
            view.detail = r.to_string();
            enforced.push(r);
        } else {
            view.state = "skipped".into();
            view.detail = format!(
                "the program holds {MAX_UPSTREAM_RULES} rules, taken by RFC 8955 precedence"
            );
        }
    }
    (views, enforced)
}

/// One component of a rule, in type order.
enum Component {
    Prefix(IpNet),
    Range(u16, u16),
}

/// The rule's components as (RFC 8955 type, value), in type order: 1 destination, 2 source,
/// 3 protocol, 5 destination port, 6 source port, 10 packet length.
fn components(r: &EnforcedRule) -> Vec<(u8, Component)> {
    let mut out = vec![(1, Component::Prefix(r.dst))];
    out.extend(r.src.map(|s| (2, Component::Prefix(s))));
    out.extend(
        r.proto
            .map(|(a, b)| (3, Component::Range(a.into(), b.into()))),
    );
    out.extend(r.dst_port.map(|(a, b)| (5, Component::Range(a, b))));
    out.extend(r.src_port.map(|(a, b)| (6, Component::Range(a, b))));
    out.extend(r.len.map(|(a, b)| (10, Component::Range(a, b))));
    out
}

/// `Less` when `a` has precedence over `b`. Component by component in type order: a rule with
/// a component the other lacks comes first; of two prefixes, the lower address over their
/// common length, then the longer; of two numeric components, the lower range, then the
/// narrower (RFC 8955 compares their encodings byte for byte: for the single ranges Levee
/// enforces, this is the same order except between encodings of one range in different
/// operators). IPv4 rules come before IPv6 ones.
pub fn cmp(a: &EnforcedRule, b: &EnforcedRule) -> Ordering {
    let (ca, cb) = (components(a), components(b));
    for i in 0..ca.len().max(cb.len()) {
        let order = match (ca.get(i), cb.get(i)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some((ta, _)), Some((tb, _))) if ta != tb => ta.cmp(tb),
            (Some((_, x)), Some((_, y))) => match (x, y) {
                (Component::Prefix(x), Component::Prefix(y)) => prefixes(x, y),
                (Component::Range(a0, a1), Component::Range(b0, b1)) => a0.cmp(b0).then(a1.cmp(b1)),
                _ => Ordering::Equal,
            },
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn prefixes(x: &IpNet, y: &IpNet) -> Ordering {
    let common = x.prefix_len().min(y.prefix_len());
    let masked = |n: &IpNet| -> Option<u128> {
        let t = IpNet::new(n.addr(), common).ok()?.trunc();
        Some(match t.network() {
            std::net::IpAddr::V4(a) => u128::from(u32::from(a)),
            std::net::IpAddr::V6(a) => u128::from(a),
        })
    };
    let family = |n: &IpNet| u8::from(n.addr().is_ipv6());
    family(x)
        .cmp(&family(y))
        .then(masked(x).cmp(&masked(y)))
        .then(y.prefix_len().cmp(&x.prefix_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::FlowAction;

    fn rule(dst: &str) -> EnforcedRule {
        EnforcedRule {
            dst: dst.parse().unwrap(),
            src: None,
            proto: None,
            src_port: None,
            dst_port: None,
            len: None,
            action: FlowAction::Discard,
        }
    }

    #[test]
    fn the_more_specific_and_the_richer_rule_come_first() {
        let wide = rule("198.18.0.0/24");
        let narrow = rule("198.18.0.10/32");
        let other = rule("198.18.1.0/24");
        assert_eq!(cmp(&narrow, &wide), Ordering::Less, "longer prefix first");
        assert_eq!(cmp(&wide, &other), Ordering::Less, "lower address first");
        let with_src = EnforcedRule {
            src: Some("10.0.0.0/8".parse().unwrap()),
            ..wide.clone()
        };
        assert_eq!(
            cmp(&with_src, &wide),
            Ordering::Less,
            "a source component first"
        );
        let udp = EnforcedRule {
            proto: Some((17, 17)),
            ..wide.clone()
        };
        let port = EnforcedRule {
            dst_port: Some((53, 53)),
            ..wide.clone()
        };
        // Protocol (type 3) before destination port (type 5).
        assert_eq!(cmp(&udp, &port), Ordering::Less);
        assert_eq!(cmp(&wide, &wide.clone()), Ordering::Equal);
    }
}
