//! Escalation through BGP: the rules Levee may ask its upstream neighbours to apply when a
//! flood is larger than the link (RTBH, RFC 7999, and FlowSpec, RFC 8955/8956), the rules it
//! shares with the rest of its fleet through a route reflector, and the checks every rule
//! passes before anything is sent ([`policy`]).

pub mod bgp;
pub mod calls;
pub mod gobgp;
pub mod managed;
pub mod policy;
pub mod precedence;
pub mod received;
pub mod shape;
pub mod views;
pub mod watch;
pub mod withdrawer;

use std::{fmt, net::IpAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Which neighbour group a rule is sent to (escalation.neighbors[].role): the upstream
/// providers, the fleet's route reflectors, or both. gobgpd's export policy sends a path only
/// to the group its mark names ([`gobgp::TO_UPSTREAM`], [`gobgp::TO_FLEET`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    Upstream,
    Fleet,
    Both,
}

impl Audience {
    pub fn name(self) -> &'static str {
        match self {
            Audience::Upstream => "upstream",
            Audience::Fleet => "fleet",
            Audience::Both => "both",
        }
    }

    /// Where the rule goes, for a log line: "upstream", "to the fleet", ...
    pub fn towards(self) -> &'static str {
        match self {
            Audience::Upstream => "upstream",
            Audience::Fleet => "to the fleet",
            Audience::Both => "upstream and to the fleet",
        }
    }

    pub fn upstream(self) -> bool {
        self != Audience::Fleet
    }

    pub fn fleet(self) -> bool {
        self != Audience::Upstream
    }

    /// Both groups' rule, when one of them already had it.
    pub fn and(self, other: Audience) -> Audience {
        if self == other { self } else { Audience::Both }
    }
}

/// What Levee's marks on a path say besides whose rule it is: the group(s) it goes to and
/// until when its sender holds it (a receiver stops enforcing it then, whatever becomes of
/// the session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub to: Audience,
    /// Unix time, seconds.
    pub until_unix: u32,
}

impl Marks {
    /// Marks for a path held `left` from now.
    pub fn for_time(to: Audience, left: std::time::Duration) -> Marks {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let until = (now + left).as_secs();
        Marks {
            to,
            until_unix: u32::try_from(until).unwrap_or(u32::MAX),
        }
    }
}

/// `upstream`, `fleet` or `both`.
pub fn parse_audience(s: &str) -> anyhow::Result<Audience> {
    Ok(match s {
        "upstream" => Audience::Upstream,
        "fleet" => Audience::Fleet,
        "both" => Audience::Both,
        _ => anyhow::bail!("{s:?}: expected upstream, fleet or both"),
    })
}

/// What a FlowSpec rule asks the upstream to do with matching traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FlowAction {
    /// traffic-rate 0.
    Discard,
    /// traffic-rate N bytes a second.
    RateBytes(u64),
}

/// A FlowSpec rule for one attacked destination: the flood's shape, never its sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowRule {
    pub dst: IpAddr,
    /// IP protocol number.
    pub proto: Option<u8>,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// Packet length range, inclusive.
    pub len: Option<(u16, u16)>,
    pub action: FlowAction,
}

/// A rule to announce upstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    /// Blackhole all traffic to one address (a /32 or /128).
    Rtbh {
        dst: IpAddr,
    },
    FlowSpec(FlowRule),
    /// Discard everything from one source prefix toward one protected prefix (FlowSpec with
    /// a source component): a verified offender's block, shared with the fleet only.
    SourceBlock {
        src: IpNet,
        dst: IpNet,
    },
}

impl Rule {
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Rtbh { .. } => "rtbh",
            Rule::FlowSpec(_) => "flowspec",
            Rule::SourceBlock { .. } => "source_block",
        }
    }

    /// The destination the rule is about.
    pub fn dst(&self) -> IpAddr {
        match self {
            Rule::Rtbh { dst } => *dst,
            Rule::FlowSpec(f) => f.dst,
            Rule::SourceBlock { dst, .. } => dst.addr(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Rtbh { dst } => write!(f, "rtbh {dst}"),
            Rule::SourceBlock { src, dst } => write!(f, "flowspec src {src} dst {dst} discard"),
            Rule::FlowSpec(r) => {
                write!(f, "flowspec dst {}", r.dst)?;
                if let Some(p) = r.proto {
                    write!(f, " proto {p}")?;
                }
                if let Some(p) = r.src_port {
                    write!(f, " sport {p}")?;
                }
                if let Some(p) = r.dst_port {
                    write!(f, " dport {p}")?;
                }
                if let Some((lo, hi)) = r.len {
                    write!(f, " len {lo}-{hi}")?;
                }
                match r.action {
                    FlowAction::Discard => write!(f, " discard"),
                    FlowAction::RateBytes(n) => write!(f, " rate {n} B/s"),
                }
            }
        }
    }
}

/// `udp`, `tcp`, `icmp`, `icmpv6` or a protocol number.
pub fn parse_proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "udp" => 17,
        "tcp" => 6,
        "icmp" => 1,
        "icmpv6" => 58,
        n => n.parse().map_err(|_| {
            anyhow::anyhow!("{s:?} is not udp, tcp, icmp, icmpv6 or a protocol number 0-255")
        })?,
    })
}

/// A packet length range `LO-HI` (or one length), each 0-65535.
pub fn parse_len_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let one = |v: &str| {
        v.trim()
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("{v:?} is not a packet length 0-65535"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (one(lo)?, one(hi)?),
        None => (one(s)?, one(s)?),
    };
    if lo > hi {
        anyhow::bail!("{s:?}: the range's start is above its end");
    }
    Ok((lo, hi))
}

/// `discard` or `rate:BYTES` (bytes a second).
pub fn parse_flow_action(s: &str) -> anyhow::Result<FlowAction> {
    if s == "discard" {
        return Ok(FlowAction::Discard);
    }
    match s.strip_prefix("rate:").map(str::parse::<u64>) {
        Some(Ok(n)) if n > 0 => Ok(FlowAction::RateBytes(n)),
        _ => anyhow::bail!("{s:?}: expected discard or rate:BYTES (bytes a second, above 0)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_values_are_parsed_or_named() {
        assert_eq!(parse_proto("UDP").unwrap(), 17);
        assert_eq!(parse_proto("47").unwrap(), 47);
        assert!(parse_proto("256").is_err());
        assert_eq!(parse_len_range("468-1500").unwrap(), (468, 1500));
        assert_eq!(parse_len_range("60").unwrap(), (60, 60));
        for bad in ["70000", "1500-468", "-1", "1-65536"] {
            assert!(parse_len_range(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_flow_action("rate:125000").unwrap(),
            FlowAction::RateBytes(125_000)
        );
        assert_eq!(parse_flow_action("discard").unwrap(), FlowAction::Discard);
        for bad in ["rate:0", "rate:", "drop", "rate:-5"] {
            assert!(parse_flow_action(bad).is_err(), "{bad}");
        }
    }
}
