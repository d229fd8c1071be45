//! FlowSpec rules received from BGP neighbours (escalation.accept_flowspec): a route server
//! that feeds a whole edge fleet shares one blocklist this way. A rule is enforced by the
//! program only if every component and its action can be enforced exactly: destination and
//! source prefixes, protocol, source and destination port and packet length as one range each
//! (RFC 8955 numeric operators, AND-ed), and traffic-rate 0 (discard) or N bytes a second. A
//! rule with anything else is skipped whole and counted, never applied in part; a rule whose
//! destination is not inside escalation.protected_prefixes is ignored.

use std::{fmt, net::IpAddr};

use filter_common::{
    abi::{UpstreamRule, upstream_action},
    config::Rate,
};
use ipnet::IpNet;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::{FlowAction, gobgp::api};

/// A received rule as the program enforces it; absent components match everything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnforcedRule {
    pub dst: IpNet,
    pub src: Option<IpNet>,
    pub proto: Option<(u8, u8)>,
    pub src_port: Option<(u16, u16)>,
    pub dst_port: Option<(u16, u16)>,
    /// IP packet length, header included.
    pub len: Option<(u16, u16)>,
    pub action: FlowAction,
}

/// What Levee made of one received rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Enforced(EnforcedRule),
    /// A component or action Levee cannot enforce exactly: the whole rule is left out.
    Skipped(String),
    /// Not for this host: its destination is outside escalation.protected_prefixes.
    Ignored(String),
    /// Wider than escalation.received_min_prefix_v4/v6 allows: never enforced, whoever sent it.
    Refused(String),
}

fn addr_bytes(net: &IpNet) -> ([u8; 16], [u8; 16]) {
    let (mut a, mut m) = ([0u8; 16], [0u8; 16]);
    match net {
        IpNet::V4(n) => {
            a[..4].copy_from_slice(&n.network().octets());
            m[..4].copy_from_slice(&n.netmask().octets());
        }
        IpNet::V6(n) => {
            a = n.network().octets();
            m = n.netmask().octets();
        }
    }
    (a, m)
}

impl EnforcedRule {
    /// The program's form; a rate is split evenly between `cpus` (each CPU enforces its
    /// share, as with the aggregate ceilings), with a burst of a tenth of a second.
    pub fn to_abi(&self, cpus: u32) -> UpstreamRule {
        let (dst, dst_mask) = addr_bytes(&self.dst);
        let (src, src_mask) = self.src.as_ref().map(addr_bytes).unwrap_or_default();
        let (action, limit) = match self.action {
            FlowAction::Discard => (upstream_action::DISCARD, Default::default()),
            FlowAction::RateBytes(n) => {
                let rate = Rate {
                    bits_per_sec: n.saturating_mul(8),
                    burst_bytes: n / 10,
                    ..Rate::default()
                };
                (upstream_action::RATE, rate.encode_per_cpu(cpus))
            }
        };
        let range8 = |r: Option<(u8, u8)>| r.map_or([0, u8::MAX], |(a, b)| [a, b]);
        let range16 = |r: Option<(u16, u16)>| r.map_or([0, u16::MAX], |(a, b)| [a, b]);
        UpstreamRule {
            dst,
            dst_mask,
            src,
            src_mask,
            family: if self.dst.addr().is_ipv4() { 4 } else { 6 },
            action,
            proto: range8(self.proto),
            src_port: range16(self.src_port),
            dst_port: range16(self.dst_port),
            len: range16(self.len),
            ports: u8::from(self.src_port.is_some() || self.dst_port.is_some()),
            _pad: [0; 3],
            limit,
        }
    }

    /// The order the program checks rules in: discards first (any match drops), then rates
    /// from the most specific destination.
    pub fn precedence(&self) -> (bool, std::cmp::Reverse<u8>) {
        (
            matches!(self.action, FlowAction::RateBytes(_)),
            std::cmp::Reverse(self.dst.prefix_len()),
        )
    }
}

impl fmt::Display for EnforcedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dst {}", self.dst)?;
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        let range = |f: &mut fmt::Formatter<'_>, name: &str, r: Option<(u16, u16)>| match r {
            Some((a, b)) if a == b => write!(f, " {name} {a}"),
            Some((a, b)) => write!(f, " {name} {a}-{b}"),
            None => Ok(()),
        };
        range(f, "proto", self.proto.map(|(a, b)| (a.into(), b.into())))?;
        range(f, "sport", self.src_port)?;
        range(f, "dport", self.dst_port)?;
        range(f, "len", self.len)?;
        match self.action {
            FlowAction::Discard => write!(f, " discard"),
            FlowAction::RateBytes(n) => write!(f, " rate {n} B/s"),
        }
    }
}

/// Until when the sender holds the rule (unix seconds), if it is a Levee that says so (its
/// `UNTIL` mark, whatever its AS: a mark can only end a rule sooner).
pub fn held_until(path: &api::Path) -> Option<u64> {
    path.pattrs
        .iter()
        .filter(|a| a.type_url.ends_with(".LargeCommunitiesAttribute"))
        .filter_map(|a| api::LargeCommunitiesAttribute::decode(a.value.as_slice()).ok())
        .flat_map(|a| a.communities)
        .find(|c| c.local_data1 == super::gobgp::UNTIL)
        .map(|c| u64::from(c.local_data2))
}

/// RFC 8955 numeric operator bits (the end-of-list and length bits are ignored).
const AND: u32 = 0x40;
const LT: u32 = 0x04;
const GT: u32 = 0x02;
const EQ: u32 = 0x01;

/// One component's items as a single inclusive range no wider than `max`, or why not.
fn range(items: &[api::FlowSpecComponentItem], max: u64, what: &str) -> Result<(u64, u64), String> {
    let mut lo = 0u64;
    let mut hi = max;
    for (i, item) in items.iter().enumerate() {
        if i > 0 && item.op & AND == 0 {
            return Err(format!("{what}: alternatives (OR) are not enforced"));
        }
        let v = item.value;
        if v > max {
            return Err(format!("{what}: {v} is above {max}"));
        }
        let (a, b) = match item.op & (LT | GT | EQ) {
            EQ => (v, v),
            x if x == GT => (v.saturating_add(1), max),
            x if x == GT | EQ => (v, max),
            LT => (
                0,
                v.checked_sub(1)
                    .ok_or(format!("{what}: < 0 matches nothing"))?,
            ),
            x if x == LT | EQ => (0, v),
            x if x == LT | GT | EQ => (0, max),
            _ => return Err(format!("{what}: operator {:#x} is not enforced", item.op)),
        };
        lo = lo.max(a);
        hi = hi.min(b);
    }
    if lo > hi {
        return Err(format!("{what}: the range matches nothing"));
    }
    Ok((lo, hi))
}

fn prefix(p: &api::FlowSpecIpPrefix) -> Result<IpNet, String> {
    if p.offset != 0 {
        return Err("a prefix offset is not enforced".into());
    }
    let addr: IpAddr = p
        .prefix
        .parse()
        .map_err(|_| format!("malformed prefix {:?}", p.prefix))?;
    IpNet::new(addr, p.prefix_len as u8)
        .map(|n| n.trunc())
        .map_err(|_| format!("malformed prefix {}/{}", p.prefix, p.prefix_len))
}

/// Whether a rule could drop a range wider than escalation.received_min_prefix_v4/v6 allows:
/// its destination is wider, and no source as narrow holds it in (a fleet's source block
/// names a whole protected prefix, but only one offender).
fn too_wide(rule: &EnforcedRule, min_prefix: (u8, u8)) -> bool {
    let wide = |net: &IpNet| net.prefix_len() < min_len(net, min_prefix);
    wide(&rule.dst) && rule.src.as_ref().is_none_or(wide)
}

/// What Levee makes of a received FlowSpec path.
pub fn compile(path: &api::Path, protected: &[IpNet], min_prefix: (u8, u8)) -> Outcome {
    match compile_rule(path) {
        Ok(rule) if too_wide(&rule, min_prefix) => Outcome::Refused(format!(
            "{} is wider than /{} (escalation.received_min_prefix_v{})",
            rule.dst,
            min_len(&rule.dst, min_prefix),
            if rule.dst.addr().is_ipv4() { 4 } else { 6 }
        )),
        Ok(rule) if protected.iter().any(|p| p.contains(&rule.dst)) => Outcome::Enforced(rule),
        Ok(rule) => Outcome::Ignored(format!(
            "{} is outside escalation.protected_prefixes",
            rule.dst
        )),
        Err(Missing::Destination) => {
            Outcome::Ignored("no destination: not limited to escalation.protected_prefixes".into())
        }
        Err(Missing::Exact(why)) => Outcome::Skipped(why),
    }
}

/// The shortest destination prefix accepted for `dst`'s family.
fn min_len(dst: &IpNet, (v4, v6): (u8, u8)) -> u8 {
    if dst.addr().is_ipv4() { v4 } else { v6 }
}

enum Missing {
    Destination,
    Exact(String),
}

impl From<String> for Missing {
    fn from(why: String) -> Missing {
        Missing::Exact(why)
    }
}

fn compile_rule(path: &api::Path) -> Result<EnforcedRule, Missing> {
    let nlri = path
        .nlri
        .as_ref()
        .filter(|a| a.type_url.ends_with(".FlowSpecNLRI"))
        .ok_or_else(|| "not a FlowSpec NLRI".to_string())?;
    let nlri = api::FlowSpecNlri::decode(nlri.value.as_slice())
        .map_err(|e| format!("undecodable NLRI: {e}"))?;
    let (mut dst, mut src) = (None, None);
    let (mut proto, mut src_port, mut dst_port, mut len) = (None, None, None, None);
    for part in &nlri.rules {
        if part.type_url.ends_with(".FlowSpecIPPrefix") {
            let p = api::FlowSpecIpPrefix::decode(part.value.as_slice())
                .map_err(|e| format!("undecodable prefix: {e}"))?;
            match p.r#type {
                1 => dst = Some(prefix(&p)?),
                2 => src = Some(prefix(&p)?),
                t => return Err(format!("prefix component {t} is not enforced").into()),
            }
            continue;
        }
        if !part.type_url.ends_with(".FlowSpecComponent") {
            let kind = part.type_url.rsplit('.').next().unwrap_or("?");
            return Err(format!("component {kind} is not enforced").into());
        }
        let c = api::FlowSpecComponent::decode(part.value.as_slice())
            .map_err(|e| format!("undecodable component: {e}"))?;
        let r16 = |what| range(&c.items, u16::MAX.into(), what).map(|(a, b)| (a as u16, b as u16));
        match c.r#type {
            3 => {
                let (a, b) = range(&c.items, u8::MAX.into(), "protocol")?;
                proto = Some((a as u8, b as u8));
            }
            5 => dst_port = Some(r16("destination port")?),
            6 => src_port = Some(r16("source port")?),
            10 => len = Some(r16("packet length")?),
            t => {
                let name = match t {
                    4 => "port (either)",
                    7 => "ICMP type",
                    8 => "ICMP code",
                    9 => "TCP flags",
                    11 => "DSCP",
                    12 => "fragment",
                    13 => "flow label",
                    _ => "unknown",
                };
                return Err(format!("component {t} ({name}) is not enforced").into());
            }
        }
    }
    let action = action(path)?;
    let dst = dst.ok_or(Missing::Destination)?;
    if let Some((lo, hi)) = len {
        exact_length(lo, hi, dst.addr().is_ipv4())?;
    }
    if src.is_some_and(|s: IpNet| s.addr().is_ipv4() != dst.addr().is_ipv4()) {
        return Err("source and destination of different families"
            .to_string()
            .into());
    }
    Ok(EnforcedRule {
        dst,
        src,
        proto,
        src_port,
        dst_port,
        len,
        action,
    })
}

/// A frame shorter than Ethernet's 60 bytes arrives padded, and the program sees the padding
/// as part of the packet: a packet below 46 bytes (38 to 46, with VLAN tags) looks longer
/// than it is. A length range is exact only if no such packet can land on the wrong side of
/// it: it starts at the smallest possible packet or above 46, and ends at 46 or above.
fn exact_length(lo: u16, hi: u16, v4: bool) -> Result<(), String> {
    const PADDED_UP_TO: u16 = 46;
    let smallest = if v4 { 20 } else { 40 };
    if (lo > smallest && lo <= PADDED_UP_TO) || hi < PADDED_UP_TO {
        return Err(format!(
            "packet length {lo}-{hi}: packets under {PADDED_UP_TO} bytes arrive with Ethernet padding, which the program cannot tell apart"
        ));
    }
    Ok(())
}

/// The rule's action: traffic-rate only; any other FlowSpec action skips the rule.
fn action(path: &api::Path) -> Result<FlowAction, String> {
    let mut rate = None;
    for attr in &path.pattrs {
        if !attr.type_url.ends_with(".ExtendedCommunitiesAttribute") {
            continue;
        }
        let ext = api::ExtendedCommunitiesAttribute::decode(attr.value.as_slice())
            .map_err(|e| format!("undecodable extended communities: {e}"))?;
        for c in &ext.communities {
            let kind = c.type_url.rsplit('.').next().unwrap_or("?");
            match kind {
                "TrafficRateExtended" => {
                    let r = api::TrafficRateExtended::decode(c.value.as_slice())
                        .map_err(|e| format!("undecodable traffic-rate: {e}"))?;
                    if !r.rate.is_finite() || r.rate < 0.0 {
                        return Err(format!("traffic-rate {} is not a rate", r.rate));
                    }
                    rate = Some(r.rate);
                }
                "TrafficActionExtended"
                | "RedirectTwoOctetAsSpecificExtended"
                | "RedirectIPv4AddressSpecificExtended"
                | "RedirectFourOctetAsSpecificExtended"
                | "RedirectIPv6AddressSpecificExtended"
                | "TrafficRemarkExtended" => {
                    return Err(format!("action {kind} is not enforced"));
                }
                _ => {}
            }
        }
    }
    match rate {
        Some(0.0) => Ok(FlowAction::Discard),
        Some(r) => Ok(FlowAction::RateBytes((r as u64).max(1))),
        None => Err("no traffic-rate action: nothing to enforce".into()),
    }
}

#[cfg(test)]
mod tests;
