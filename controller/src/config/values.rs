//! Parsers of single values (prefixes, modes, classes, durations, addresses), shared by the
//! config file, the command line (as clap value parsers) and the control API, so a value is
//! checked the same way wherever it comes from.

use std::{net::IpAddr, time::Duration};

use anyhow::{Context as _, Result, bail};
use filter_common::abi::{Class, Mode};
use ipnet::IpNet;

use crate::dataplane::AttachMode;

/// Parses a mode name.
pub fn parse_mode(s: &str) -> Result<Mode> {
    Mode::ALL
        .into_iter()
        .find(|m| m.name() == s)
        .with_context(|| format!("unknown mode {s:?}: expected off, monitor, enforce or lockdown"))
}

/// Parses a traffic class name.
pub fn parse_class(s: &str) -> Result<Class> {
    Class::ALL
        .into_iter()
        .find(|c| c.name() == s)
        .with_context(|| {
            format!("unknown class {s:?}: expected tcp_syn, tcp_other, udp, icmp or other")
        })
}

/// Parses an attach mode name.
pub fn parse_xdp_mode(s: &str) -> Result<AttachMode> {
    match s {
        "auto" => Ok(AttachMode::Auto),
        "native" => Ok(AttachMode::Native),
        "generic" => Ok(AttachMode::Generic),
        _ => bail!("unknown XDP mode {s:?}: expected auto, native or generic"),
    }
}

/// Parses a prefix such as `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128).
/// Host bits set below the prefix are refused: `192.0.2.7/24` is most likely a typo.
pub fn parse_cidr(s: &str) -> Result<IpNet> {
    let s = s.trim();
    let malformed = || {
        anyhow::anyhow!(
            "malformed CIDR {s:?}: expected ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32"
        )
    };
    let net: IpNet = if s.contains('/') {
        s.parse().map_err(|_| malformed())?
    } else {
        IpNet::from(s.parse::<IpAddr>().map_err(|_| malformed())?)
    };
    if net.trunc() != net {
        bail!(
            "CIDR {s:?} has host bits set below its prefix: did you mean {}?",
            net.trunc()
        );
    }
    Ok(net)
}

/// Parses a duration such as `10m`, `30s`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        anyhow::anyhow!(
            "malformed duration {s:?} ({e}): expected a number and a unit, such as 30s, 10m or 1h"
        )
    })
}

/// The longest TTL, 100 years (of 365.25 days): far below what the nanosecond clock holds
/// (about 584 years from boot).
pub const MAX_TTL: Duration = Duration::from_secs(3_155_760_000);

/// Parses a block's TTL: a duration of at least one second and at most [`MAX_TTL`], in whole
/// seconds.
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let d = parse_duration(s)?;
    if d.as_secs() == 0 {
        bail!("must be at least 1s, got {s:?}");
    }
    if d > MAX_TTL {
        bail!("must be at most 100 years, got {s:?}");
    }
    Ok(Duration::from_secs(d.as_secs()))
}

/// Parses the metrics address: `ADDRESS:PORT`, or `off`.
pub fn parse_metrics_addr(s: &str) -> Result<Option<std::net::SocketAddr>> {
    if s == "off" {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "malformed address {s:?}: expected ADDRESS:PORT such as 127.0.0.1:9750, or off"
        )
    })
}

/// Parses an interface name as the kernel accepts it (1 to 15 bytes, no '/', no spaces, not
/// `.` or `..`), so it can name a folder under bpffs safely.
pub fn parse_iface(s: &str) -> Result<String> {
    if s.is_empty()
        || s.len() > 15
        || s.contains('/')
        || s.contains(char::is_whitespace)
        || s == "."
        || s == ".."
    {
        bail!("{s:?} is not an interface name (1 to 15 characters, no '/' or spaces)");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_and_durations() {
        assert_eq!(parse_cidr("192.0.2.1").unwrap().to_string(), "192.0.2.1/32");
        assert_eq!(
            parse_cidr("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(parse_cidr("192.0.2.0/33").is_err());
        assert!(parse_cidr("banana").is_err());
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("10").is_err());
        assert!(parse_ttl("500ms").is_err());
        assert!(parse_ttl("585y").is_err());
        assert!(parse_ttl("18446744074s").is_err());
        assert_eq!(parse_ttl("100y").unwrap(), MAX_TTL);
        assert!(parse_iface("..").is_err());
        assert!(parse_iface("eth0").is_ok());
    }
}
