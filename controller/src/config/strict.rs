//! `[strict]` and `[[services]]`: what the host serves and when the program drops what no
//! service and no flow of the host accounts for.

use std::time::Duration;

use anyhow::{Result, bail};
use filter_common::{
    config::{DEFAULT_FLOW_TIMEOUT_NS, Rate},
    parse::{IPPROTO_TCP, IPPROTO_UDP},
};
use ipnet::IpNet;
use serde::Deserialize;

use super::values::{parse_cidr, parse_duration};

/// When strict is engaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrictMode {
    /// Never; the egress program records nothing.
    Off,
    /// While the detection engine has a class under attack or recovering (the default).
    Auto,
    /// All the time.
    Always,
}

impl StrictMode {
    pub fn name(self) -> &'static str {
        match self {
            StrictMode::Off => "off",
            StrictMode::Auto => "auto",
            StrictMode::Always => "always",
        }
    }
}

/// A service the operator lists (beside those found from the host's sockets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceSpec {
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    pub port: u16,
    /// Destinations served; None: any (this host or, behind a gateway, any host).
    pub dst: Option<IpNet>,
}

/// Whose sockets are services. Any local user can bind a port; only sockets of these owners
/// open it through strict (root's always).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ServiceOwners {
    /// Root and system accounts (uid up to [`SYS_UID_MAX`]), as daemons run: the default.
    #[default]
    System,
    /// Root and these uids only.
    Uids(Vec<u32>),
}

/// The last system account's uid (`SYS_UID_MAX` of Debian's and Fedora's login.defs); users
/// who log in start above it.
pub const SYS_UID_MAX: u32 = 999;

impl ServiceOwners {
    pub fn allows(&self, uid: u32) -> bool {
        uid == 0
            || match self {
                ServiceOwners::System => uid <= SYS_UID_MAX,
                ServiceOwners::Uids(uids) => uids.contains(&uid),
            }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StrictSettings {
    pub mode: StrictMode,
    /// Learn services from the host's listening sockets (sock_diag), kept current.
    pub discover: bool,
    /// How long a flow admits replies after the host's last packet on it.
    pub flow_timeout: Duration,
    /// What unknown sources may send to one UDP service, all CPUs together, while the UDP
    /// class is under attack.
    pub unknown_budget: Rate,
    pub services: Vec<ServiceSpec>,
    /// Whose discovered sockets count as services.
    pub service_owners: ServiceOwners,
    /// A source stays familiar this long after it last sent UDP within its limits while
    /// calm; a familiar source passes before the unknown budget.
    pub familiar_ttl: Duration,
    /// New familiar sources (and networks) the program records a second, all CPUs together:
    /// a spread flood while calm pays for at most this many table inserts, and evicts at most
    /// this many of the crowd's entries.
    pub familiar_max_new_per_sec: u64,
}

/// New familiar entries a second by default: a live event's crowd joining a host seldom
/// comes faster, and one over it is recorded at its next sighting.
pub const DEFAULT_FAMILIAR_MAX_NEW_PER_SEC: u64 = 20_000;

/// Familiar sources are remembered for a day by default: a live event's crowd often came
/// earlier the same day.
pub const DEFAULT_FAMILIAR_TTL: Duration = Duration::from_secs(86_400);

impl Default for StrictSettings {
    fn default() -> Self {
        StrictSettings {
            mode: StrictMode::Auto,
            discover: true,
            flow_timeout: Duration::from_nanos(DEFAULT_FLOW_TIMEOUT_NS),
            unknown_budget: Rate {
                pps: 2_000,
                burst_packets: 400,
                ..Rate::default()
            },
            services: Vec::new(),
            service_owners: ServiceOwners::System,
            familiar_ttl: DEFAULT_FAMILIAR_TTL,
            familiar_max_new_per_sec: DEFAULT_FAMILIAR_MAX_NEW_PER_SEC,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrictFile {
    pub mode: Option<String>,
    pub discover: Option<bool>,
    pub flow_timeout: Option<String>,
    /// Packets per second unknown sources may send to one UDP service under attack.
    pub unknown_budget_pps: Option<u64>,
    /// "system", "root", or a list of uids.
    pub service_owners: Option<OwnersFile>,
    pub familiar_ttl: Option<String>,
    pub familiar_max_new_per_sec: Option<u64>,
}

/// `strict.service_owners` as written.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OwnersFile {
    Name(String),
    Uids(Vec<u32>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub proto: String,
    pub port: u16,
    pub dst: Option<String>,
}

pub fn parse_strict_mode(s: &str) -> Result<StrictMode> {
    Ok(match s {
        "off" => StrictMode::Off,
        "auto" => StrictMode::Auto,
        "always" => StrictMode::Always,
        _ => bail!("unknown strict mode {s:?} (expected off, auto or always)"),
    })
}

pub fn parse_proto(s: &str) -> Result<u8> {
    Ok(match s {
        "tcp" => IPPROTO_TCP,
        "udp" => IPPROTO_UDP,
        _ => bail!("unknown protocol {s:?} (expected tcp or udp)"),
    })
}

pub fn proto_name(p: u8) -> &'static str {
    if p == IPPROTO_TCP { "tcp" } else { "udp" }
}

/// Validates `[strict]` and `[[services]]` into `out`; errors name the field.
pub(super) fn apply(
    strict: Option<StrictFile>,
    services: Option<Vec<ServiceFile>>,
    out: &mut StrictSettings,
) -> Result<()> {
    if let Some(f) = strict {
        if let Some(m) = f.mode {
            out.mode =
                parse_strict_mode(&m).map_err(|e| anyhow::anyhow!("field strict.mode: {e}"))?;
        }
        out.discover = f.discover.unwrap_or(out.discover);
        if let Some(t) = f.flow_timeout {
            let d = parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("field strict.flow_timeout: {e:#}"))?;
            if !(Duration::from_secs(10)..=Duration::from_secs(86_400)).contains(&d) {
                bail!("field strict.flow_timeout: must be between 10s and 24h, got {t:?}");
            }
            out.flow_timeout = d;
        }
        if let Some(t) = f.familiar_ttl {
            let d = parse_duration(&t)
                .map_err(|e| anyhow::anyhow!("field strict.familiar_ttl: {e:#}"))?;
            if !(Duration::from_secs(60)..=Duration::from_secs(30 * 86_400)).contains(&d) {
                bail!("field strict.familiar_ttl: must be between 1m and 30d, got {t:?}");
            }
            out.familiar_ttl = d;
        }
        if let Some(n) = f.familiar_max_new_per_sec {
            if !(100..=100_000_000).contains(&n) {
                bail!(
                    "field strict.familiar_max_new_per_sec: must be between 100 and 100000000, got {n}"
                );
            }
            out.familiar_max_new_per_sec = n;
        }
        match f.service_owners {
            None => {}
            Some(OwnersFile::Name(n)) if n == "system" => {
                out.service_owners = ServiceOwners::System
            }
            Some(OwnersFile::Name(n)) if n == "root" => {
                out.service_owners = ServiceOwners::Uids(Vec::new())
            }
            Some(OwnersFile::Name(n)) => bail!(
                "field strict.service_owners: unknown owners {n:?} (expected \"system\", \"root\" or a list of uids)"
            ),
            Some(OwnersFile::Uids(uids)) => out.service_owners = ServiceOwners::Uids(uids),
        }
        if let Some(pps) = f.unknown_budget_pps {
            if pps == 0 {
                bail!("field strict.unknown_budget_pps: must be at least 1");
            }
            out.unknown_budget = Rate {
                pps,
                burst_packets: (pps / 5).max(1),
                ..Rate::default()
            };
        }
    }
    for (i, s) in services.into_iter().flatten().enumerate() {
        let name = |f: &str| format!("field services[{i}].{f}");
        let proto = parse_proto(&s.proto).map_err(|e| anyhow::anyhow!("{}: {e}", name("proto")))?;
        if s.port == 0 {
            bail!("{}: must be between 1 and 65535", name("port"));
        }
        let dst = match s.dst {
            Some(d) => Some(parse_cidr(&d).map_err(|e| anyhow::anyhow!("{}: {e:#}", name("dst")))?),
            None => None,
        };
        out.services.push(ServiceSpec {
            proto,
            port: s.port,
            dst,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_modes_are_checked_by_name() {
        let mut s = StrictSettings::default();
        let bad = |proto: &str, port: u16, dst: Option<&str>| ServiceFile {
            proto: proto.into(),
            port,
            dst: dst.map(String::from),
        };
        let e = apply(None, Some(vec![bad("sctp", 1, None)]), &mut s).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("field services[0].proto"),
            "{e:#}"
        );
        let e = apply(None, Some(vec![bad("tcp", 0, None)]), &mut s).unwrap_err();
        assert!(format!("{e:#}").contains("services[0].port"), "{e:#}");
        let e = apply(
            None,
            Some(vec![bad("udp", 53, Some("10.0.0.0/33"))]),
            &mut s,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("services[0].dst"), "{e:#}");
        apply(
            None,
            Some(vec![bad("udp", 53, Some("192.0.2.0/24"))]),
            &mut s,
        )
        .unwrap();
        assert_eq!(s.services.len(), 1);
        let f = StrictFile {
            mode: Some("sometimes".into()),
            ..StrictFile::default()
        };
        let e = apply(Some(f), None, &mut s).unwrap_err();
        assert!(format!("{e:#}").contains("strict.mode"), "{e:#}");
    }

    /// Issue 21: only root's and the named owners' sockets are services; by default root's
    /// and system accounts', not a logged-in user's.
    #[test]
    fn service_owners_default_to_system_accounts() {
        let mut s = StrictSettings::default();
        assert!(s.service_owners.allows(0) && s.service_owners.allows(33));
        assert!(!s.service_owners.allows(1000) && !s.service_owners.allows(65534));
        let owners = |o: OwnersFile| StrictFile {
            service_owners: Some(o),
            ..StrictFile::default()
        };
        apply(Some(owners(OwnersFile::Name("root".into()))), None, &mut s).unwrap();
        assert!(s.service_owners.allows(0) && !s.service_owners.allows(33));
        apply(Some(owners(OwnersFile::Uids(vec![1001]))), None, &mut s).unwrap();
        assert!(s.service_owners.allows(1001) && !s.service_owners.allows(1000));
        let e = apply(Some(owners(OwnersFile::Name("users".into()))), None, &mut s).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("field strict.service_owners: unknown owners"),
            "{e:#}"
        );
        assert_eq!(
            s.service_owners,
            ServiceOwners::Uids(vec![1001]),
            "unchanged"
        );
    }
}
