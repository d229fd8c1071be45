//! Familiar sources across a clean stop: the program's FAMILIAR table lives in pinned maps,
//! which a crash or `keep_on_exit` keeps and a clean stop removes. So a stop writes the table
//! to a file beside the state file, and the next start writes it back (unless it reuses the
//! maps of an earlier run, which still hold it).
//!
//! The file: the magic `LVFAMIL2`, the Unix time of the dump (u64 LE), then one record per
//! source: the FAMILIAR key (16 bytes), how long before the dump it was last seen, and how
//! long before that it was first seen (u64 LE ns each). Ages, not clock readings: the
//! program's clock restarts with the machine.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use tracing::{info, warn};

use filter_common::abi::Familiar;

use super::Controller;
use crate::dataplane::monotonic_coarse_ns;

const MAGIC: &[u8; 8] = b"LVFAMIL2";
const RECORD: usize = 32;

/// The file beside the state file.
pub fn path(state_file: &Path) -> PathBuf {
    state_file.with_extension("familiar")
}

/// Encodes `entries` (times in the program's clock) as ages at `now_ns`, dumped at `unix`.
fn encode(entries: &[([u8; 16], Familiar)], now_ns: u64, unix: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * RECORD);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&unix.to_le_bytes());
    for (key, f) in entries {
        out.extend_from_slice(key);
        out.extend_from_slice(&now_ns.saturating_sub(f.last_ns).to_le_bytes());
        out.extend_from_slice(&f.last_ns.saturating_sub(f.first_ns).to_le_bytes());
    }
    out
}

/// One source read back: how long ago it was last seen (the time since the dump added), and
/// how long it had been seen for.
#[derive(Debug, PartialEq)]
struct Aged {
    key: [u8; 16],
    last_ago: Duration,
    span: Duration,
}

/// Decodes a file, dropping what is older than `ttl`.
fn decode(bytes: &[u8], unix_now: u64, ttl: Duration) -> Result<Vec<Aged>> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC || !(bytes.len() - 16).is_multiple_of(RECORD) {
        bail!("not a familiar-sources file");
    }
    let dumped = u64::from_le_bytes(bytes[8..16].try_into()?);
    let since = Duration::from_secs(unix_now.saturating_sub(dumped));
    let mut out = Vec::new();
    for r in bytes[16..].chunks_exact(RECORD) {
        let ns = |at: usize| -> Result<Duration> {
            Ok(Duration::from_nanos(u64::from_le_bytes(
                r[at..at + 8].try_into()?,
            )))
        };
        let last_ago = ns(16)? + since;
        if last_ago < ttl {
            out.push(Aged {
                key: r[..16].try_into()?,
                last_ago,
                span: ns(24)?,
            });
        }
    }
    Ok(out)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Controller {
    /// Writes the familiar sources to their file (at a clean stop). A failure is logged:
    /// the sources are then learned again.
    pub(super) fn save_familiar(&self) {
        let mut all: std::collections::HashMap<[u8; 16], Familiar> = Default::default();
        for iface in &self.fleet.interfaces {
            match iface.dp.familiar_entries() {
                Ok(entries) => {
                    for (key, seen) in entries {
                        let e = all.entry(key).or_insert(seen);
                        e.first_ns = e.first_ns.min(seen.first_ns);
                        e.last_ns = e.last_ns.max(seen.last_ns);
                    }
                }
                Err(e) => warn!(iface = %iface.name, "cannot read the familiar sources: {e:#}"),
            }
        }
        let entries: Vec<_> = all.into_iter().collect();
        let file = path(&self.settings.daemon.state_file);
        let bytes = encode(&entries, monotonic_coarse_ns(), unix_now());
        let tmp = file.with_extension("familiar.tmp");
        let written = std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .with_context(|| format!("cannot write {}", file.display()));
        match written {
            Ok(()) => info!(
                sources = entries.len(),
                file = %file.display(),
                "familiar sources saved"
            ),
            Err(e) => warn!("{e:#}; familiar sources will be learned again"),
        }
    }

    /// Writes back the familiar sources a clean stop saved (at a start that loaded fresh
    /// maps); returns how many. A missing file is none. Logs nothing: the start reports the
    /// outcome once it holds ([`report_restored`]), so a refused start prints one line.
    pub(super) fn restore_familiar(&mut self) -> Result<usize> {
        let file = path(&self.settings.daemon.state_file);
        let Ok(bytes) = std::fs::read(&file) else {
            return Ok(0);
        };
        let ttl = self.settings.strict.familiar_ttl;
        let entries =
            decode(&bytes, unix_now(), ttl).with_context(|| format!("{}", file.display()))?;
        let now = monotonic_coarse_ns();
        let seen: Vec<([u8; 16], Familiar)> = entries
            .iter()
            .map(|a| {
                let last_ns = now.saturating_sub(a.last_ago.as_nanos() as u64);
                let first_ns = last_ns.saturating_sub(a.span.as_nanos() as u64);
                (a.key, Familiar { first_ns, last_ns })
            })
            .collect();
        for iface in &mut self.fleet.interfaces {
            iface
                .dp
                .restore_familiar(&seen)
                .with_context(|| format!("on {}", iface.name))?;
        }
        Ok(seen.len())
    }
}

/// Logs what [`Controller::restore_familiar`] did, once the start holds.
pub(super) fn report_restored(restored: &Result<usize>) {
    match restored {
        Ok(0) => {}
        Ok(n) => info!(sources = n, "familiar sources restored"),
        Err(e) => warn!("cannot restore the familiar sources ({e:#}): they will be learned again"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_reads_back_with_the_time_since_and_drops_the_stale() {
        const S: u64 = 1_000_000_000;
        let now = 100 * S;
        let seen = |first: u64, last: u64| Familiar {
            first_ns: now - first * S,
            last_ns: now - last * S,
        };
        let entries = [([1; 16], seen(9, 1)), ([2; 16], seen(6, 5))];
        let bytes = encode(&entries, now, 1_000);
        // Read 2 s after the dump, with a TTL of 4 s: the first was last seen 3 s ago, the
        // second 7 s ago.
        let back = decode(&bytes, 1_002, Duration::from_secs(4)).unwrap();
        assert_eq!(
            back,
            [Aged {
                key: [1; 16],
                last_ago: Duration::from_secs(3),
                span: Duration::from_secs(8),
            }]
        );
        assert!(decode(b"garbage!", 0, Duration::from_secs(4)).is_err());
        assert!(decode(&bytes[..bytes.len() - 1], 0, Duration::from_secs(4)).is_err());
    }
}
