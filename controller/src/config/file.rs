//! The config file as written: every field optional, unknown fields refused (so a typo is
//! named instead of silently becoming a default). [`super::settings`] validates it.

use std::path::PathBuf;

use serde::Deserialize;

use super::PerClassFile;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub interfaces: Option<Vec<String>>,
    pub xdp_mode: Option<String>,
    pub mode: Option<String>,
    pub socket: Option<PathBuf>,
    /// Leave the program attached (pinned) when the daemon stops.
    pub keep_on_exit: Option<bool>,
    /// The bpffs mount under which state is pinned (`<bpffs>/levee/<iface>/`).
    pub bpffs: Option<PathBuf>,
    /// Where the daemon keeps what was set through the CLI, so a restart restores it.
    pub state_file: Option<PathBuf>,
    /// Address of the Prometheus endpoint (`/metrics`), or "off".
    pub metrics: Option<String>,
    /// Block time of a source that went over its limit ("10s", "2m"; "0s" drops only excess).
    pub penalty: Option<String>,
    pub signatures: Option<SignaturesFile>,
    pub sources: Option<SourcesFile>,
    pub limits: Option<PerClassFile<RateFile>>,
    pub aggregate: Option<PerClassFile<RateFile>>,
    pub lists: Option<ListsFile>,
    pub events: Option<EventsFile>,
    pub detection: Option<DetectionFile>,
    pub strict: Option<super::strict::StrictFile>,
    pub services: Option<Vec<super::strict::ServiceFile>>,
    pub escalation: Option<super::escalation::EscalationFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionFile {
    pub enabled: Option<bool>,
    pub onset_factor: Option<f64>,
    pub onset_secs: Option<u32>,
    pub recovery_factor: Option<f64>,
    pub recovery_secs: Option<u32>,
    pub auto_enforce: Option<bool>,
    pub escalate_after: Option<u32>,
    pub offence_window: Option<String>,
    pub block_ttl: Option<String>,
    pub tighten_factor: Option<f64>,
    pub floor_pps: Option<PerClassFile<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturesFile {
    pub amp_ports: Option<bool>,
    /// The UDP source ports the amplification signature drops (replaces the default list).
    pub amp_port_list: Option<Vec<u16>>,
    pub tcp_flags: Option<bool>,
    pub fragments: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesFile {
    /// Per-source limiting on or off.
    pub enabled: Option<bool>,
    pub ipv4_prefix: Option<u8>,
    pub ipv6_prefix: Option<u8>,
    pub max_tracked: Option<u32>,
    pub sketch_threshold: Option<u32>,
    pub sketch_window: Option<String>,
    pub max_new_per_sec: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub pps: Option<u64>,
    pub burst: Option<u64>,
    /// Bits per second.
    pub bps: Option<u64>,
    pub burst_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsFile {
    pub allow: Option<Vec<String>>,
    pub block: Option<Vec<String>>,
    pub allow_files: Option<Vec<PathBuf>>,
    pub block_files: Option<Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsFile {
    pub ring_bytes: Option<u32>,
    pub sample_every: Option<u32>,
}
