//! `[escalation]`: asking the upstream routers, through a BGP daemon, to drop what fills the
//! link (RTBH and FlowSpec). Off by default; a config that could announce something unsafe is
//! refused whole.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Result, anyhow, bail};
use ipnet::IpNet;
use serde::Deserialize;

use super::values::{parse_cidr, parse_duration};

pub mod fleet;
pub use fleet::{FleetSettings, Role};

/// Whether announcements are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscalationMode {
    /// Nothing is announced and no BGP daemon is started (the default).
    Off,
    /// Every announcement is checked and logged, none is sent.
    DryRun,
    /// Announcements go to the BGP daemon.
    On,
}

impl EscalationMode {
    pub fn name(self) -> &'static str {
        match self {
            EscalationMode::Off => "off",
            EscalationMode::DryRun => "dry-run",
            EscalationMode::On => "on",
        }
    }
}

/// Which BGP daemon carries the announcements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BgpApi {
    /// Levee starts gobgpd itself from a generated config, its API on a private socket, and
    /// it dies with Levee (so the upstream withdraws everything when Levee does).
    Managed,
    /// The operator's own gobgpd, at `unix:///path`.
    Unix(std::path::PathBuf),
    /// The operator's own gobgpd, at `host:port`.
    Tcp(String),
}

/// A BGP neighbour (the upstream router, or a route reflector of the fleet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    pub address: std::net::IpAddr,
    pub asn: u32,
    /// Which group it is in: it is sent that group's rules only.
    pub role: Role,
    /// TCP MD5 password, if the session uses one.
    pub password: Option<String>,
    /// Prefixes the neighbour may send in each family: one more and the managed gobgpd
    /// closes the session (Cease, maximum number of prefixes reached).
    pub max_prefixes: u32,
}

impl Neighbor {
    /// What a neighbour may send in each family unless configured: enough for a fleet's
    /// FlowSpec rules, far below a full table.
    pub const MAX_PREFIXES: u32 = 1000;
}

/// A standard BGP community, `ASN:VALUE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u16, pub u16);

impl Community {
    /// RFC 7999's BLACKHOLE.
    pub const BLACKHOLE: Community = Community(65535, 666);
    /// RFC 1997's NO_EXPORT.
    pub const NO_EXPORT: Community = Community(65535, 65281);

    pub fn value(self) -> u32 {
        (u32::from(self.0) << 16) | u32::from(self.1)
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

pub fn parse_community(s: &str) -> Result<Community> {
    let bad = || anyhow!("malformed community {s:?}: expected ASN:VALUE such as 65535:666");
    let (a, v) = s.trim().split_once(':').ok_or_else(bad)?;
    Ok(Community(
        a.parse().map_err(|_| bad())?,
        v.parse().map_err(|_| bad())?,
    ))
}

#[derive(Clone, Debug, PartialEq)]
pub struct EscalationSettings {
    pub mode: EscalationMode,
    pub api: BgpApi,
    pub asn: u32,
    pub router_id: Option<Ipv4Addr>,
    pub neighbors: Vec<Neighbor>,
    /// The only destinations that may ever be announced.
    pub protected_prefixes: Vec<IpNet>,
    /// Communities of an RTBH route, beside NO_EXPORT (always added).
    pub communities: Vec<Community>,
    /// Rules announced at once, at most.
    pub max_active: u32,
    /// Announcements in any minute, at most.
    pub max_per_minute: u32,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    /// The detection engine may announce FlowSpec rules by itself.
    pub auto: bool,
    /// ...and RTBH routes.
    pub auto_rtbh: bool,
    /// The uplink's capacity, bits a second: automatic escalation starts only near it.
    pub link_capacity_bps: u64,
    /// "Near": the share of the capacity the host's receive rate must reach (0..1].
    pub auto_link_share: f64,
    /// How long a class must stay under attack with the link near full before a rule goes up.
    pub auto_after: Duration,
    /// How long a rule stays after its attack is over.
    pub auto_hold: Duration,
    /// Accept FlowSpec rules from the neighbours and enforce them in XDP.
    pub accept_flowspec: bool,
    /// The shortest destination prefix a received rule may name, IPv4 and IPv6: a rule over
    /// a wider range is refused, whatever its neighbour.
    pub received_min_prefix_v4: u8,
    pub received_min_prefix_v6: u8,
    /// The user the managed gobgpd runs as: never root, no capability.
    pub bgp_user: String,
    /// The fleet's group: what is shared with the other nodes.
    pub fleet: FleetSettings,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        EscalationSettings {
            mode: EscalationMode::Off,
            api: BgpApi::Managed,
            asn: 0,
            router_id: None,
            neighbors: Vec::new(),
            protected_prefixes: Vec::new(),
            communities: vec![Community::BLACKHOLE],
            max_active: 16,
            max_per_minute: 10,
            default_ttl: Duration::from_secs(600),
            max_ttl: Duration::from_secs(3600),
            auto: false,
            auto_rtbh: false,
            link_capacity_bps: 0,
            auto_link_share: 0.8,
            auto_after: Duration::from_secs(10),
            auto_hold: Duration::from_secs(300),
            accept_flowspec: false,
            received_min_prefix_v4: 24,
            received_min_prefix_v6: 48,
            bgp_user: "levee-bgp".into(),
            fleet: FleetSettings::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationFile {
    pub mode: Option<String>,
    pub api: Option<String>,
    pub asn: Option<u32>,
    pub router_id: Option<String>,
    pub neighbors: Option<Vec<NeighborFile>>,
    pub protected_prefixes: Option<Vec<String>>,
    pub communities: Option<Vec<String>>,
    pub max_active: Option<u32>,
    pub max_per_minute: Option<u32>,
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub auto: Option<bool>,
    pub auto_rtbh: Option<bool>,
    pub link_capacity_bps: Option<u64>,
    pub auto_link_share: Option<f64>,
    pub auto_after: Option<String>,
    pub auto_hold: Option<String>,
    pub accept_flowspec: Option<bool>,
    pub received_min_prefix_v4: Option<u8>,
    pub received_min_prefix_v6: Option<u8>,
    pub bgp_user: Option<String>,
    pub fleet: Option<fleet::FleetFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborFile {
    pub address: String,
    pub asn: u32,
    pub role: Option<String>,
    pub password: Option<String>,
    pub max_prefixes: Option<u32>,
}

fn field(name: &str) -> impl Fn(anyhow::Error) -> anyhow::Error + '_ {
    move |e| anyhow!("field escalation.{name}: {e:#}")
}

pub fn parse_escalation_mode(s: &str) -> Result<EscalationMode> {
    Ok(match s {
        "off" => EscalationMode::Off,
        "dry-run" => EscalationMode::DryRun,
        "on" => EscalationMode::On,
        _ => bail!("unknown escalation mode {s:?} (expected off, dry-run or on)"),
    })
}

pub fn parse_api(s: &str) -> Result<BgpApi> {
    if s == "managed" {
        return Ok(BgpApi::Managed);
    }
    if let Some(path) = s.strip_prefix("unix://") {
        if !path.starts_with('/') {
            bail!("{s:?}: a unix socket needs an absolute path (unix:///run/gobgpd.sock)");
        }
        return Ok(BgpApi::Unix(path.into()));
    }
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(BgpApi::Tcp(s.to_string()));
    }
    bail!("{s:?}: expected \"managed\", unix:///PATH or HOST:PORT")
}

/// Validates `[escalation]` into `out`; errors name the field.
pub(super) fn apply(f: Option<EscalationFile>, out: &mut EscalationSettings) -> Result<()> {
    let Some(f) = f else { return Ok(()) };
    if let Some(m) = f.mode {
        out.mode = parse_escalation_mode(&m).map_err(field("mode"))?;
    }
    if let Some(a) = f.api {
        out.api = parse_api(&a).map_err(field("api"))?;
    }
    if let Some(asn) = f.asn {
        if asn == 0 || asn == 23_456 || asn == u32::MAX {
            bail!("field escalation.asn: {asn} is reserved");
        }
        out.asn = asn;
    }
    if let Some(r) = f.router_id {
        out.router_id = Some(
            r.parse()
                .map_err(|_| anyhow!("{r:?} is not an IPv4 address"))
                .map_err(field("router_id"))?,
        );
    }
    for (i, n) in f.neighbors.into_iter().flatten().enumerate() {
        let address = n.address.parse().map_err(|_| {
            anyhow!(
                "field escalation.neighbors[{i}].address: {:?} is not an IP address",
                n.address
            )
        })?;
        if n.asn == 0 {
            bail!("field escalation.neighbors[{i}].asn: must not be 0");
        }
        let max_prefixes = n.max_prefixes.unwrap_or(Neighbor::MAX_PREFIXES);
        if max_prefixes == 0 {
            bail!("field escalation.neighbors[{i}].max_prefixes: must be at least 1");
        }
        let role = match n.role {
            Some(r) => fleet::parse_role(&r)
                .map_err(|e| anyhow!("field escalation.neighbors[{i}].role: {e:#}"))?,
            None => Role::Upstream,
        };
        out.neighbors.push(Neighbor {
            address,
            asn: n.asn,
            role,
            password: n.password,
            max_prefixes,
        });
    }
    for (i, p) in f.protected_prefixes.into_iter().flatten().enumerate() {
        let net = parse_cidr(&p).map_err(field(&format!("protected_prefixes[{i}]")))?;
        if net.prefix_len() == 0 {
            bail!("field escalation.protected_prefixes[{i}]: {p:?} is every address");
        }
        out.protected_prefixes.push(net);
    }
    if let Some(cs) = f.communities {
        out.communities = cs
            .iter()
            .enumerate()
            .map(|(i, c)| parse_community(c).map_err(field(&format!("communities[{i}]"))))
            .collect::<Result<_>>()?;
    }
    out.max_active = f.max_active.unwrap_or(out.max_active);
    out.max_per_minute = f.max_per_minute.unwrap_or(out.max_per_minute);
    if let Some(t) = f.default_ttl {
        out.default_ttl = parse_duration(&t).map_err(field("default_ttl"))?;
    }
    if let Some(t) = f.max_ttl {
        out.max_ttl = parse_duration(&t).map_err(field("max_ttl"))?;
    }
    out.auto = f.auto.unwrap_or(out.auto);
    out.auto_rtbh = f.auto_rtbh.unwrap_or(out.auto_rtbh);
    out.link_capacity_bps = f.link_capacity_bps.unwrap_or(out.link_capacity_bps);
    if let Some(share) = f.auto_link_share {
        if !(share > 0.0 && share <= 1.0) {
            bail!("field escalation.auto_link_share: must be above 0 and at most 1, got {share}");
        }
        out.auto_link_share = share;
    }
    if let Some(t) = f.auto_after {
        out.auto_after = parse_duration(&t).map_err(field("auto_after"))?;
    }
    if let Some(t) = f.auto_hold {
        out.auto_hold = parse_duration(&t).map_err(field("auto_hold"))?;
    }
    out.accept_flowspec = f.accept_flowspec.unwrap_or(out.accept_flowspec);
    for (value, slot, max, name) in [
        (
            f.received_min_prefix_v4,
            &mut out.received_min_prefix_v4,
            32,
            "received_min_prefix_v4",
        ),
        (
            f.received_min_prefix_v6,
            &mut out.received_min_prefix_v6,
            128,
            "received_min_prefix_v6",
        ),
    ] {
        if let Some(v) = value {
            if v > max {
                bail!("field escalation.{name}: {v} is longer than an address (/{max})");
            }
            *slot = v;
        }
    }
    if let Some(u) = f.bgp_user {
        if u.is_empty() || u == "root" {
            bail!("field escalation.bgp_user: {u:?}: gobgpd must run as a user of its own");
        }
        out.bgp_user = u;
    }
    let has_fleet = out.neighbors.iter().any(|n| n.role == Role::Fleet);
    fleet::apply(f.fleet, has_fleet, &mut out.fleet)?;
    check(out)
}

/// The settings together: what could not be safe is refused.
fn check(s: &EscalationSettings) -> Result<()> {
    if s.max_ttl.is_zero() {
        bail!("field escalation.max_ttl: must be above 0 (every rule is withdrawn in time)");
    }
    if s.default_ttl.is_zero() || s.default_ttl > s.max_ttl {
        bail!(
            "field escalation.default_ttl: must be above 0 and at most max_ttl ({}s), got {}s",
            s.max_ttl.as_secs(),
            s.default_ttl.as_secs()
        );
    }
    if s.max_active == 0 || s.max_per_minute == 0 {
        bail!("field escalation.max_active and max_per_minute: must be at least 1");
    }
    if s.auto_rtbh && !s.auto {
        bail!("field escalation.auto_rtbh: needs auto = true");
    }
    if s.accept_flowspec && s.mode != EscalationMode::On {
        bail!(
            "field escalation.accept_flowspec: needs mode = \"on\" (the BGP daemon receives the rules)"
        );
    }
    if s.auto && s.link_capacity_bps == 0 {
        bail!(
            "field escalation.link_capacity_bps: auto = true needs the uplink's capacity (escalation starts near it)"
        );
    }
    if s.mode == EscalationMode::Off {
        return Ok(());
    }
    if s.protected_prefixes.is_empty() {
        bail!(
            "field escalation.protected_prefixes: mode {} needs the destinations that may be announced",
            s.mode.name()
        );
    }
    if s.api == BgpApi::Managed {
        if s.asn == 0 {
            bail!("field escalation.asn: the managed BGP daemon needs this host's AS number");
        }
        if s.router_id.is_none() {
            bail!("field escalation.router_id: the managed BGP daemon needs a router id");
        }
        if s.neighbors.is_empty() {
            bail!("field escalation.neighbors: the managed BGP daemon needs at least one");
        }
        if s.fleet.share && !s.neighbors.iter().any(|n| n.role == Role::Fleet) {
            bail!(
                "field escalation.fleet.share: no neighbour has role \"fleet\" to share with (escalation.neighbors)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
