//! Persistence: what the operator set through the CLI (mode, blocks with their TTL and reason,
//! allows, limits) and whether detection holds `enforce`, kept in a JSON file so that a
//! restarted daemon restores it even after it detached and removed its pins. The config file
//! stays the source of the rest.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

/// The state file's contents.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The mode last set with `levee mode`, if any since the config was loaded.
    pub mode: Option<String>,
    pub blocks: Vec<Block>,
    pub allows: Vec<String>,
    /// Per-source limits and aggregate ceilings set with `levee limits set`, per class in
    /// class order, as [pps, burst, bps, burst_bytes].
    pub limits: Option<Vec<[u64; 4]>>,
    pub aggregate: Option<Vec<[u64; 4]>>,
    /// Detection had switched `monitor` to `enforce` for an attack still under way: a
    /// restart keeps enforcing and lets detection switch back when the attack is over.
    #[serde(default)]
    pub detection_holds_enforce: bool,
    /// Kernel settings changed for strict and not yet put back: a run that never restores
    /// them (a crash, `keep_on_exit`) leaves them to the next one's stop.
    #[serde(default)]
    pub kernel: Vec<crate::services::kernel::Changed>,
    /// Flood signatures the operator refused (`levee signatures refuse`), in their text form:
    /// never installed again.
    #[serde(default)]
    pub refused_signatures: Vec<String>,
    /// Flood signatures the operator pinned (`levee signatures pin`): in force again after
    /// a restart, until unpinned.
    #[serde(default)]
    pub pinned_signatures: Vec<PinnedSignature>,
}

/// A pinned flood signature: its text form and what it covered when found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PinnedSignature {
    pub signature: String,
    pub attack_cover: f64,
    pub calm_cover: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: String,
    /// Seconds since the Unix epoch when the block ends; none for a block without TTL.
    pub expires_unix: Option<u64>,
    pub reason: Option<String>,
}

impl Block {
    /// Time left, None for no TTL, Some(ZERO) when already over.
    pub fn ttl_left(&self, now: SystemTime) -> Option<Duration> {
        self.expires_unix.map(|t| {
            (UNIX_EPOCH + Duration::from_secs(t))
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
        })
    }
}

/// Seconds since the epoch, `ttl` from now.
pub fn expires_unix(ttl: Duration) -> u64 {
    (SystemTime::now() + ttl)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl State {
    /// Checks every value, so a start either takes the whole file or sets it aside.
    fn check(&self) -> Result<()> {
        use crate::config::{parse_cidr, parse_mode};
        if let Some(m) = &self.mode {
            parse_mode(m)?;
        }
        for b in &self.blocks {
            parse_cidr(&b.cidr)?;
        }
        for a in &self.allows {
            parse_cidr(a)?;
        }
        for r in &self.refused_signatures {
            r.parse::<crate::signatures::Text>()?;
        }
        for p in &self.pinned_signatures {
            p.signature.parse::<crate::signatures::Text>()?;
        }
        anyhow::ensure!(
            self.pinned_signatures.len() <= filter_common::signature::SIGNATURE_SLOTS as usize,
            "{} pinned flood signatures, the program holds {}",
            self.pinned_signatures.len(),
            filter_common::signature::SIGNATURE_SLOTS
        );
        for rates in [&self.limits, &self.aggregate].into_iter().flatten() {
            anyhow::ensure!(
                rates.len() == filter_common::abi::Class::COUNT,
                "limits for {} classes",
                rates.len()
            );
        }
        Ok(())
    }

    /// What `controller` must keep across a restart.
    pub fn of(controller: &super::Controller) -> State {
        use super::lists::Setter;
        let now = crate::dataplane::monotonic_coarse_ns();
        let rates = |t: &crate::config::PerClass<filter_common::config::Rate>| {
            t.0.iter()
                .map(|r| [r.pps, r.burst_packets, r.bits_per_sec, r.burst_bytes])
                .collect::<Vec<_>>()
        };
        let c = controller;
        let limits = &c.settings.filter;
        State {
            mode: (c.mode.set_by == super::mode::SetBy::Cli)
                .then(|| c.mode.operator.name().to_string()),
            blocks: c
                .lists
                .operator_blocks()
                .filter(|(_, o)| o.by != Setter::Adopted)
                .filter(|(_, o)| o.expires_ns == 0 || o.expires_ns > now)
                .map(|(net, o)| Block {
                    cidr: net.to_string(),
                    expires_unix: (o.expires_ns != 0)
                        .then(|| expires_unix(Duration::from_nanos(o.expires_ns - now))),
                    reason: o.reason.clone(),
                })
                .collect(),
            allows: c
                .lists
                .allows()
                .filter(|(_, a)| a.cli)
                .map(|(n, _)| n.to_string())
                .collect(),
            limits: c.limits_from_cli.then(|| rates(&limits.limits)),
            aggregate: c.limits_from_cli.then(|| rates(&limits.aggregate)),
            detection_holds_enforce: c.mode.detection_holds,
            kernel: c
                .strict
                .kernel
                .as_ref()
                .map(|k| k.changed().to_vec())
                .unwrap_or_default(),
            refused_signatures: c
                .flood
                .book
                .refused
                .iter()
                .map(|r| crate::signatures::Text(*r).to_string())
                .collect(),
            pinned_signatures: c
                .flood
                .book
                .active
                .iter()
                .filter(|a| a.pinned)
                .map(|a| PinnedSignature {
                    signature: crate::signatures::Text(a.signature).to_string(),
                    attack_cover: a.attack_cover,
                    calm_cover: a.calm_cover,
                })
                .collect(),
        }
    }
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str::<State>(&text)
            .map_err(anyhow::Error::from)
            .and_then(|s| s.check().map(|()| s))
            .with_context(|| format!("state file {} is malformed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read state file {}", path.display())),
    }
}

/// Reads the state file for a start. The state file never stops protection: one that cannot
/// be read or parsed is set aside (renamed beside itself, when it is a file) and the daemon
/// starts from the config alone, saying so in one log line.
pub fn load_or_set_aside(path: &Path) -> State {
    let e = match load(path) {
        Ok(state) => return state,
        Err(e) => e,
    };
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
    let aside = path.with_extension(format!(
        "bad-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    if is_file && std::fs::rename(path, &aside).is_ok() {
        tracing::error!(
            "{e:#}: set aside as {}; starting from the config alone",
            aside.display()
        );
    } else {
        tracing::error!("{e:#}: starting from the config alone");
    }
    State::default()
}

/// Writes the state file durably and atomically: a new temporary file with a unique name,
/// created 0600 (it may hold allowlisted addresses) and never through a symlink, written and
/// synced, renamed over the file (replacing a symlink there, never following it), then the
/// folder synced so the rename survives a crash.
pub fn save(path: &Path, state: &State) -> Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".levee-state-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(&serde_json::to_vec_pretty(state)?)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_empty() {
        let dir = std::env::temp_dir().join(format!("levee-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state.json");
        assert_eq!(load(&path).unwrap(), State::default());
        let state = State {
            mode: Some("enforce".into()),
            blocks: vec![Block {
                cidr: "192.0.2.0/24".into(),
                expires_unix: Some(expires_unix(Duration::from_secs(60))),
                reason: Some("x".into()),
            }],
            allows: vec!["2001:db8::/32".into()],
            limits: None,
            aggregate: Some(vec![[1, 2, 3, 4]; 5]),
            detection_holds_enforce: true,
            kernel: vec![crate::services::kernel::Changed {
                name: "ipv4.tcp_syncookies".into(),
                was: "1".into(),
                set: "2".into(),
            }],
            refused_signatures: vec!["udp dport 5004 sport 40000".into()],
            pinned_signatures: vec![PinnedSignature {
                signature: "tcp dport 443 ttl 250".into(),
                attack_cover: 0.99,
                calm_cover: 0.0,
            }],
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), state);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "root's alone");
        // A symlink planted at the path is replaced, not followed.
        let elsewhere = dir.join("elsewhere");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        save(&path, &state).unwrap();
        assert!(!elsewhere.exists(), "the symlink was not followed");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        let left = state.blocks[0].ttl_left(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(60) && left >= Duration::from_secs(58));
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("malformed"));
        assert_eq!(load_or_set_aside(&path), State::default());
        assert!(!path.exists(), "set aside");
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("state.bad-"))
            .collect();
        assert_eq!(aside.len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
