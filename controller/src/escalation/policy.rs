//! What is never announced, checked before anything reaches the BGP daemon: a destination
//! outside the protected prefixes or allowlisted, a rule without a TTL or over the limits, a
//! malformed length or rate. (FastNetMon's users met each of these the hard way: an announced
//! 0.0.0.0/0, rules never withdrawn, absurd packet lengths taking routers down.)

use std::{net::IpAddr, time::Duration};

use anyhow::{Result, bail};
use ipnet::IpNet;

use super::{Audience, FlowAction, Rule};
use crate::config::{
    EscalationMode, EscalationSettings,
    escalation::{BgpApi, Role},
};

/// What the daemon holds when a rule is asked for, in each neighbour group.
pub struct Held {
    /// Upstream rules announced now.
    pub active: usize,
    /// Upstream rules announced in the last minute.
    pub last_minute: usize,
    /// The fleet's, likewise.
    pub fleet_active: usize,
    pub fleet_last_minute: usize,
}

impl Held {
    /// Nothing held: for a rule already announced, checked again without counting itself.
    pub fn none() -> Held {
        Held {
            active: 0,
            last_minute: 0,
            fleet_active: 0,
            fleet_last_minute: 0,
        }
    }
}

/// A traffic-rate above this (bytes a second, about 8 Tbit/s) is not a limit but a typo.
pub const MAX_RATE_BYTES: u64 = 1_000_000_000_000;

/// Refuses `rule` with one line if it may not be announced to `to` for `ttl`.
pub fn check(
    rule: &Rule,
    to: Audience,
    ttl: Option<Duration>,
    settings: &EscalationSettings,
    allowlisted: impl Fn(IpAddr) -> bool,
    held: &Held,
) -> Result<()> {
    check_group(to, settings)?;
    if let Rule::SourceBlock { src, dst } = rule {
        check_source_block(*src, *dst, to, settings, &allowlisted)?;
    }
    let dst = rule.dst();
    if dst.is_unspecified() || dst.is_multicast() || dst.is_loopback() {
        bail!("{dst} is not a host that can be attacked; nothing announced");
    }
    let host = match rule {
        Rule::SourceBlock { dst, .. } => *dst,
        _ => IpNet::from(dst),
    };
    if !settings
        .protected_prefixes
        .iter()
        .any(|p| p.contains(&host))
    {
        bail!("{dst} is outside escalation.protected_prefixes; nothing announced");
    }
    if allowlisted(dst) {
        bail!("{dst} is allowlisted; nothing announced");
    }
    let Some(ttl) = ttl else {
        bail!("a rule needs a TTL; nothing announced");
    };
    if ttl.is_zero() || ttl > settings.max_ttl {
        bail!(
            "TTL {}s is outside 1s..escalation.max_ttl ({}s); nothing announced",
            ttl.as_secs(),
            settings.max_ttl.as_secs()
        );
    }
    if to.fleet() && held.fleet_active >= settings.fleet.max_active as usize {
        bail!(
            "{} rules are shared with the fleet, escalation.fleet.max_active is {}; nothing announced",
            held.fleet_active,
            settings.fleet.max_active
        );
    }
    if to.fleet() && held.fleet_last_minute >= settings.fleet.max_per_minute as usize {
        bail!(
            "{} rules shared with the fleet in the last minute, escalation.fleet.max_per_minute is {}; nothing announced",
            held.fleet_last_minute,
            settings.fleet.max_per_minute
        );
    }
    if !to.upstream() {
        return Ok(());
    }
    if held.active >= settings.max_active as usize {
        bail!(
            "{} rules are active, escalation.max_active is {}; nothing announced",
            held.active,
            settings.max_active
        );
    }
    if held.last_minute >= settings.max_per_minute as usize {
        bail!(
            "{} rules announced in the last minute, escalation.max_per_minute is {}; nothing announced",
            held.last_minute,
            settings.max_per_minute
        );
    }
    if let Rule::FlowSpec(f) = rule {
        if let Some((lo, hi)) = f.len {
            let min = if dst.is_ipv4() { 20 } else { 40 };
            if lo > hi || hi < min {
                bail!("packet length {lo}-{hi} matches no {dst} packet; nothing announced");
            }
        }
        if let FlowAction::RateBytes(n) = f.action
            && (n == 0 || n > MAX_RATE_BYTES)
        {
            bail!(
                "rate {n} B/s is outside 1..{MAX_RATE_BYTES} (use discard for 0); nothing announced"
            );
        }
        if f.proto.is_none() && f.src_port.is_none() && f.dst_port.is_none() && f.len.is_none() {
            bail!("a FlowSpec rule without protocol, port or length is an RTBH; say rtbh");
        }
        if (f.src_port.is_some() || f.dst_port.is_some()) && !matches!(f.proto, Some(6) | Some(17))
        {
            bail!("ports need --proto tcp or udp; nothing announced");
        }
    }
    Ok(())
}

/// A group nobody would carry the rule to is refused (with the managed gobgpd, whose
/// neighbours Levee knows; an operator's own gobgpd sends by its own policy).
fn check_group(to: Audience, s: &EscalationSettings) -> Result<()> {
    if s.api != BgpApi::Managed || s.mode != EscalationMode::On {
        return Ok(());
    }
    for (wanted, role) in [(to.upstream(), Role::Upstream), (to.fleet(), Role::Fleet)] {
        if wanted && !s.neighbors.iter().any(|n| n.role == role) {
            bail!(
                "no neighbour has role {:?} (escalation.neighbors): nothing would carry it; nothing announced",
                role.name()
            );
        }
    }
    Ok(())
}

/// A source block goes to the fleet only (the upstream is sent the flood's shape, never its
/// sources), from a source that covers no protected prefix and is not allowlisted, no wider than
/// the fleet enforces (escalation.received_min_prefix_v4/v6), toward a protected prefix.
fn check_source_block(
    src: IpNet,
    dst: IpNet,
    to: Audience,
    s: &EscalationSettings,
    allowlisted: impl Fn(IpAddr) -> bool,
) -> Result<()> {
    if to.upstream() {
        bail!("a source block goes to the fleet only, never upstream; nothing announced");
    }
    if src.addr().is_ipv4() != dst.addr().is_ipv4() {
        bail!("source {src} and destination {dst} are of different families; nothing announced");
    }
    let min = if src.addr().is_ipv4() {
        s.received_min_prefix_v4
    } else {
        s.received_min_prefix_v6
    };
    if src.prefix_len() < min {
        bail!(
            "source {src} is wider than /{min} (escalation.received_min_prefix_v4/v6); nothing announced"
        );
    }
    if s.protected_prefixes.iter().any(|p| src.contains(p)) {
        bail!(
            "source {src} covers a protected prefix (escalation.protected_prefixes); nothing announced"
        );
    }
    if allowlisted(src.addr()) {
        bail!("source {src} is allowlisted; nothing announced");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            |a| a.to_string() == "192.0.2.53",
            held,
        )
        .expect_err("refused");
        format!("{e:#}")
    }

    #[test]
    fn safe_rules_pass() {
        let s = settings();
        let none = |_: IpAddr| false;
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
        let none = |_: IpAddr| false;
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
                check(rule, to, TTL, &s, |a| a.to_string() == "203.0.113.9", held)
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
                    &block("203.0.113.9/32", "192.0.2.0/24"),
                    Audience::Fleet,
                    &IDLE,
                ),
                "allowlisted",
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
}
