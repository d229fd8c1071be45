//! Escalation upstream: the rules Levee may ask its BGP neighbours to apply when a flood is
//! larger than the link (RTBH, RFC 7999, and FlowSpec, RFC 8955/8956), and the checks every
//! rule passes before anything is sent ([`policy`]).

pub mod gobgp;
pub mod policy;

use std::{fmt, net::IpAddr};

/// What a FlowSpec rule asks the upstream to do with matching traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FlowAction {
    /// traffic-rate 0.
    Discard,
    /// traffic-rate N bytes a second.
    RateBytes(u64),
}

/// A FlowSpec rule for one attacked destination: the flood's shape, never its sources.
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Blackhole all traffic to one address (a /32 or /128).
    Rtbh {
        dst: IpAddr,
    },
    FlowSpec(FlowRule),
}

impl Rule {
    /// The destination the rule is about.
    pub fn dst(&self) -> IpAddr {
        match self {
            Rule::Rtbh { dst } => *dst,
            Rule::FlowSpec(f) => f.dst,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Rtbh { dst } => write!(f, "rtbh {dst}"),
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
