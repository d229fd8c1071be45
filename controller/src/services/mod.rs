//! What the host serves, for the strict stage: the services the operator lists and those
//! found from the host's own sockets (`discover`), merged into the rules the program's
//! SERVICES tries hold, each with where it came from. Also the kernel settings the program's
//! SYN cookies need (`kernel`).

pub mod discover;
pub mod kernel;

use std::net::IpAddr;

use filter_common::parse::IPPROTO_TCP;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{config::ServiceSpec, dataplane::ServiceRule};
use discover::{Proto, Socket};

/// Where a service came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[services]]` in the config.
    Config,
    /// A listening TCP or bound UDP socket of this host.
    Socket,
}

/// One service as `levee services` shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceView {
    pub proto: String,
    pub port: u16,
    /// The destinations served ("0.0.0.0/0" and "::/0": any).
    pub dst: String,
    pub origin: Origin,
}

const ANY_V4: &str = "0.0.0.0/0";
const ANY_V6: &str = "::/0";

fn any(v6: bool) -> IpNet {
    (if v6 { ANY_V6 } else { ANY_V4 })
        .parse()
        .expect("a valid prefix")
}

/// The rules of one configured service: a destination, or both families' "any".
fn config_rules(s: &ServiceSpec) -> Vec<ServiceRule> {
    let dsts = match s.dst {
        Some(d) => vec![d.trunc()],
        None => vec![any(false), any(true)],
    };
    dsts.into_iter()
        .map(|dst| ServiceRule {
            proto: s.proto,
            port: s.port,
            dst,
        })
        .collect()
}

/// The rules of one socket: its bound address, or "any" for a wildcard (an IPv6 wildcard
/// that is not v6-only takes IPv4 too).
fn socket_rules(s: &Socket) -> Vec<ServiceRule> {
    let proto = match s.proto {
        Proto::Tcp => IPPROTO_TCP,
        Proto::Udp => filter_common::parse::IPPROTO_UDP,
    };
    let dsts = match s.addr {
        IpAddr::V4(a) if a.is_unspecified() => vec![any(false)],
        IpAddr::V6(a) if a.is_unspecified() && !s.v6only => vec![any(false), any(true)],
        IpAddr::V6(a) if a.is_unspecified() => vec![any(true)],
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => vec![IpNet::from(IpAddr::V4(v4))],
            None => vec![IpNet::from(s.addr)],
        },
        a => vec![IpNet::from(a)],
    };
    dsts.into_iter()
        .map(|dst| ServiceRule {
            proto,
            port: s.port,
            dst,
        })
        .collect()
}

/// The services the program's tries hold, and how many rules did not fit (a table over
/// capacity: each family's trie holds [`SERVICE_ENTRIES`] rules). Configured rules are kept
/// first, then discovered ones in order.
///
/// [`SERVICE_ENTRIES`]: filter_common::abi::SERVICE_ENTRIES
pub fn fit(rules: Vec<(ServiceRule, Origin)>) -> (Vec<(ServiceRule, Origin)>, usize) {
    let capacity = filter_common::abi::SERVICE_ENTRIES as usize;
    let (mut v4, mut v6, mut left_out) = (0usize, 0usize, 0usize);
    let (configured, discovered): (Vec<_>, Vec<_>) =
        rules.into_iter().partition(|(_, o)| *o == Origin::Config);
    let mut kept: Vec<_> = configured
        .into_iter()
        .chain(discovered)
        .filter(|(r, _)| {
            let used = if r.dst.addr().is_ipv4() {
                &mut v4
            } else {
                &mut v6
            };
            *used += 1;
            let fits = *used <= capacity;
            left_out += usize::from(!fits);
            fits
        })
        .collect();
    kept.sort();
    (kept, left_out)
}

/// The services of the host: configured and discovered, each rule once (a configured one
/// wins the origin), sorted.
pub fn merge(configured: &[ServiceSpec], sockets: &[Socket]) -> Vec<(ServiceRule, Origin)> {
    let mut out: std::collections::BTreeMap<ServiceRule, Origin> = Default::default();
    for s in sockets {
        for r in socket_rules(s) {
            out.insert(r, Origin::Socket);
        }
    }
    for s in configured {
        for r in config_rules(s) {
            out.insert(r, Origin::Config);
        }
    }
    out.into_iter().collect()
}

pub fn view(rules: &[(ServiceRule, Origin)]) -> Vec<ServiceView> {
    rules
        .iter()
        .map(|(r, o)| ServiceView {
            proto: crate::config::strict::proto_name(r.proto).to_string(),
            port: r.port,
            dst: r.dst.to_string(),
            origin: *o,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_both_families_unless_v6_only() {
        let s = |addr: &str, v6only| Socket {
            proto: Proto::Tcp,
            addr: addr.parse().unwrap(),
            port: 443,
            v6only,
            uid: 0,
        };
        let dsts = |sock| -> Vec<String> {
            socket_rules(&sock)
                .iter()
                .map(|r| r.dst.to_string())
                .collect()
        };
        assert_eq!(dsts(s("::", false)), [ANY_V4, ANY_V6]);
        assert_eq!(dsts(s("::", true)), [ANY_V6]);
        assert_eq!(dsts(s("0.0.0.0", false)), [ANY_V4]);
        assert_eq!(dsts(s("192.0.2.1", false)), ["192.0.2.1/32"]);
        assert_eq!(dsts(s("::ffff:192.0.2.1", false)), ["192.0.2.1/32"]);
        let merged = merge(
            &[ServiceSpec {
                proto: IPPROTO_TCP,
                port: 443,
                dst: None,
            }],
            &[s("0.0.0.0", false)],
        );
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert!(merged.iter().all(|(_, o)| *o == Origin::Config));
    }
}
