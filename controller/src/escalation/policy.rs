//! What is never announced, checked before anything reaches the BGP daemon: a destination
//! outside the protected prefixes or allowlisted, a rule without a TTL or over the limits, a
//! malformed length or rate. (FastNetMon's users met each of these the hard way: an announced
//! 0.0.0.0/0, rules never withdrawn, absurd packet lengths taking routers down.)

use std::{net::IpAddr, time::Duration};

use anyhow::{Result, bail};
use ipnet::IpNet;

use super::{FlowAction, Rule};
use crate::config::EscalationSettings;

/// What the daemon holds when a rule is asked for.
pub struct Held {
    /// Rules announced now.
    pub active: usize,
    /// Rules announced in the last minute.
    pub last_minute: usize,
}

impl Held {
    /// Nothing held: for a rule already announced, checked again without counting itself.
    pub fn none() -> Held {
        Held {
            active: 0,
            last_minute: 0,
        }
    }
}

/// A traffic-rate above this (bytes a second, about 8 Tbit/s) is not a limit but a typo.
pub const MAX_RATE_BYTES: u64 = 1_000_000_000_000;

/// Refuses `rule` with one line if it may not be announced for `ttl`.
pub fn check(
    rule: &Rule,
    ttl: Option<Duration>,
    settings: &EscalationSettings,
    allowlisted: impl Fn(IpAddr) -> bool,
    held: &Held,
) -> Result<()> {
    let dst = rule.dst();
    if dst.is_unspecified() || dst.is_multicast() || dst.is_loopback() {
        bail!("{dst} is not a host that can be attacked; nothing announced");
    }
    let host = IpNet::from(dst);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::{EscalationMode, EscalationSettings},
        escalation::FlowRule,
    };

    fn settings() -> EscalationSettings {
        EscalationSettings {
            mode: EscalationMode::On,
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
    };
    const TTL: Option<Duration> = Some(Duration::from_secs(600));

    fn refused(rule: Rule, ttl: Option<Duration>, held: &Held) -> String {
        let e = check(
            &rule,
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
            TTL,
            &s,
            none,
            &IDLE,
        )
        .unwrap();
        check(&Rule::FlowSpec(flow("2001:db8::10")), TTL, &s, none, &IDLE).unwrap();
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
            refused(
                rtbh("192.0.2.10"),
                TTL,
                &Held {
                    active: 16,
                    last_minute: 0,
                },
            ),
            refused(
                rtbh("192.0.2.10"),
                TTL,
                &Held {
                    active: 0,
                    last_minute: 10,
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
}
