//! What is never announced, checked before anything reaches the BGP daemon: a destination
//! outside the protected prefixes or allowlisted, a rule without a TTL or over the limits, a
//! malformed length or rate. (FastNetMon's users met each of these the hard way: an announced
//! 0.0.0.0/0, rules never withdrawn, absurd packet lengths taking routers down.)

use std::time::Duration;

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

/// A traffic-rate above this (bytes a second, about 8 Tbit/s) is not a limit but a typo.
pub const MAX_RATE_BYTES: u64 = 1_000_000_000_000;

/// Refuses `rule` with one line if it may not be announced to `to` for `ttl`.
/// `allowlisted(net)`: whether an allowlisted address is inside `net` (a host: whether it is
/// allowlisted).
pub fn check(
    rule: &Rule,
    to: Audience,
    ttl: Option<Duration>,
    settings: &EscalationSettings,
    allowlisted: impl Fn(IpNet) -> bool,
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
    // A source block's destination is the whole protected prefix: its allowlisted hosts
    // are not what it drops (its source is checked instead).
    if !matches!(rule, Rule::SourceBlock { .. }) && allowlisted(host) {
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
    check_limits(to, settings, held)
}

/// The limits of each group the rule goes to: rules at once, and in the last minute.
fn check_limits(to: Audience, settings: &EscalationSettings, held: &Held) -> Result<()> {
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
    if to.upstream() && held.active >= settings.max_active as usize {
        bail!(
            "{} rules are active, escalation.max_active is {}; nothing announced",
            held.active,
            settings.max_active
        );
    }
    if to.upstream() && held.last_minute >= settings.max_per_minute as usize {
        bail!(
            "{} rules announced in the last minute, escalation.max_per_minute is {}; nothing announced",
            held.last_minute,
            settings.max_per_minute
        );
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
    allowlisted: impl Fn(IpNet) -> bool,
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
    if allowlisted(src) {
        bail!("source {src} holds an allowlisted address; nothing announced");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
