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
                .blocks()
                .filter_map(|(net, b)| Some((net, b.operator.as_ref()?)))
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
        }
    }
}

/// Reads the state file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<State> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("state file {} is malformed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read state file {}", path.display())),
    }
}

/// Writes the state file atomically (write, then rename).
pub fn save(path: &Path, state: &State) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
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
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), state);
        let left = state.blocks[0].ttl_left(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(60) && left >= Duration::from_secs(58));
        std::fs::write(&path, "{").unwrap();
        assert!(format!("{:#}", load(&path).unwrap_err()).contains("malformed"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
