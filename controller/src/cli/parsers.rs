//! The value parsers of the command line (the config file's own, so a typo gets the same
//! one line naming it on both) and the argument groups several commands share.

use std::time::Duration;

use filter_common::abi::{Class, Mode};
use ipnet::IpNet;

use crate::config::values;

pub(crate) fn cidr(s: &str) -> Result<IpNet, String> {
    values::parse_cidr(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn mode(s: &str) -> Result<Mode, String> {
    values::parse_mode(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn class(s: &str) -> Result<Class, String> {
    values::parse_class(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn ttl(s: &str) -> Result<Duration, String> {
    values::parse_ttl(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn xdp_mode(s: &str) -> Result<crate::dataplane::AttachMode, String> {
    values::parse_xdp_mode(s).map_err(|e| format!("{e:#}"))
}
/// `--metrics`: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<std::net::SocketAddr>);

pub(crate) fn metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    values::parse_metrics_addr(s)
        .map(MetricsAddr)
        .map_err(|e| format!("{e:#}"))
}
pub(crate) fn address(s: &str) -> Result<std::net::IpAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IP address (explain asks about one source)"))
}
pub(crate) fn host(s: &str) -> Result<std::net::IpAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an IP address (a rule is for one host)"))
}
pub(crate) fn proto(s: &str) -> Result<u8, String> {
    crate::escalation::parse_proto(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn len_range(s: &str) -> Result<(u16, u16), String> {
    crate::escalation::parse_len_range(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn audience(s: &str) -> Result<crate::escalation::Audience, String> {
    crate::escalation::parse_audience(s).map_err(|e| format!("{e:#}"))
}

pub(crate) fn flow_action(s: &str) -> Result<crate::escalation::FlowAction, String> {
    crate::escalation::parse_flow_action(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    values::parse_duration(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn reason(s: &str) -> Result<filter_common::abi::Reason, String> {
    crate::capture::parse_reason(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn action(s: &str) -> Result<filter_common::abi::Action, String> {
    crate::capture::parse_action(s).map_err(|e| format!("{e:#}"))
}
pub(crate) fn iface(s: &str) -> Result<String, String> {
    values::parse_iface(s).map_err(|e| format!("{e:#}"))
}

/// What a packet carries above IP, as `explain` and `escalate flowspec` take it.
#[derive(clap::Args, Debug)]
pub struct Transport {
    /// udp, tcp, icmp, icmpv6 or a protocol number.
    #[arg(long, value_parser = proto)]
    pub proto: Option<u8>,
    /// Source port (needs --proto tcp or udp).
    #[arg(long)]
    pub sport: Option<u16>,
    /// Destination port (needs --proto tcp or udp).
    #[arg(long)]
    pub dport: Option<u16>,
}
