//! The operator's configuration: a TOML file read with serde, validated into [`Settings`].
//!
//! Unknown fields are rejected, and every error names the field (`limits.udp.pps`, ...) and
//! what is wrong with it, so a typo never silently becomes a default. Parsing is pure: the
//! daemon applies a [`Settings`] only once it is whole, so a broken reload changes nothing.

pub mod escalation;
mod file;
mod per_class;
pub mod strict;
mod validate;
pub mod values;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result};
use filter_common::{
    abi::{Config as DataplaneConfig, Mode, flags},
    config::{DEFAULT_AMP_PORTS, Rate, source_mask_v4, source_mask_v6},
};
use ipnet::IpNet;

pub use escalation::{EscalationMode, EscalationSettings};
pub use file::File;
pub use per_class::{PerClass, PerClassFile};
pub use strict::{ServiceSpec, StrictMode, StrictSettings};
pub use validate::check_rate;
pub use values::{
    parse_cidr, parse_class, parse_duration, parse_iface, parse_metrics_addr, parse_mode,
    parse_ttl, parse_xdp_mode,
};

use crate::{dataplane::AttachMode, engine::EngineConfig};

/// Where the control socket lives unless the config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/levee/levee.sock";
/// Port of the Prometheus endpoint unless the config says otherwise (on loopback).
pub const DEFAULT_METRICS_PORT: u16 = 9750;
/// Where CLI changes are kept across restarts unless the config says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/levee/state.json";

/// A validated configuration, grouped by concern.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Where and how the daemon runs: fixed for its lifetime (a reload keeps them).
    pub daemon: DaemonSettings,
    /// The mitigation mode the config asks for.
    pub mode: Mode,
    /// What the program checks and how hard: written to its CONFIG map.
    pub filter: FilterSettings,
    pub lists: ListSettings,
    pub events: EventSettings,
    pub detection: EngineConfig,
    pub strict: StrictSettings,
    pub escalation: EscalationSettings,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DaemonSettings {
    pub interfaces: Vec<String>,
    pub xdp_mode: AttachMode,
    pub socket: PathBuf,
    pub keep_on_exit: bool,
    pub bpffs: PathBuf,
    pub state_file: PathBuf,
    /// Where `/metrics` is served; None: not served.
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FilterSettings {
    pub penalty: Duration,
    pub signatures: Signatures,
    pub sources: SourceSettings,
    /// Per-source limits by class.
    pub limits: PerClass<Rate>,
    /// Aggregate ceilings (all sources together) by class.
    pub aggregate: PerClass<Rate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Signatures {
    pub amp_ports: bool,
    /// The UDP source ports the amplification signature drops.
    pub amp_port_list: Vec<u16>,
    pub tcp_flags: bool,
    pub fragments: bool,
}

/// New per-source entries a second by default: a tenth of the default table, so a flood
/// that slips through the gate takes ten seconds or more to turn the table over.
pub const DEFAULT_MAX_NEW_PER_SEC: u64 = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSettings {
    /// Per-source limiting on or off.
    pub enabled: bool,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Entries in the per-source table (fixed at load).
    pub max_tracked: u32,
    /// The most sensitive gate; the controller narrows it as the rate per CPU rises.
    pub sketch_threshold: u32,
    pub sketch_window_shift: u32,
    /// New per-source entries a second, all CPUs: the LRU turns over no faster than this.
    pub max_new_per_sec: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListSettings {
    pub allow: Vec<IpNet>,
    pub block: Vec<IpNet>,
    pub allow_files: Vec<PathBuf>,
    pub block_files: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventSettings {
    /// Size of the event ring buffer (fixed at load).
    pub ring_bytes: u32,
    /// One header in this many is sampled for `levee top`; 0: none.
    pub sample_every: u32,
}

/// Per-source defaults: far above what one legitimate client sends, well below a flood.
fn default_limits() -> PerClass<Rate> {
    let rate = |pps: u64, burst: u64| Rate {
        pps,
        burst_packets: burst,
        ..Rate::default()
    };
    PerClass([
        rate(1_000, 200),
        rate(50_000, 10_000),
        rate(10_000, 2_000),
        rate(1_000, 200),
        rate(1_000, 200),
    ])
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            daemon: DaemonSettings {
                interfaces: Vec::new(),
                xdp_mode: AttachMode::Auto,
                socket: PathBuf::from(DEFAULT_SOCKET),
                keep_on_exit: false,
                bpffs: PathBuf::from("/sys/fs/bpf"),
                state_file: PathBuf::from(DEFAULT_STATE_FILE),
                metrics: Some(std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    DEFAULT_METRICS_PORT,
                ))),
            },
            mode: Mode::Monitor,
            filter: FilterSettings {
                penalty: Duration::from_secs(10),
                signatures: Signatures {
                    amp_ports: true,
                    amp_port_list: DEFAULT_AMP_PORTS.to_vec(),
                    tcp_flags: true,
                    fragments: false,
                },
                sources: SourceSettings {
                    enabled: true,
                    ipv4_prefix: 32,
                    ipv6_prefix: 64,
                    max_tracked: filter_common::abi::DEFAULT_MAX_SOURCES,
                    sketch_threshold: 8,
                    sketch_window_shift: 24,
                    max_new_per_sec: DEFAULT_MAX_NEW_PER_SEC,
                },
                limits: default_limits(),
                aggregate: PerClass::default(),
            },
            lists: ListSettings::default(),
            events: EventSettings {
                ring_bytes: filter_common::abi::DEFAULT_EVENT_BYTES,
                sample_every: 1000,
            },
            detection: EngineConfig::default(),
            strict: StrictSettings::default(),
            escalation: EscalationSettings::default(),
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).with_context(|| format!("config file {}", path.display()))
}

/// Validates config text.
pub fn parse(text: &str) -> Result<Settings> {
    let file: File = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            anyhow::anyhow!("line {line}, column {column}: {}", e.message())
        }
        None => anyhow::anyhow!("{}", e.message()),
    })?;
    validate::settings(file)
}

impl FilterSettings {
    /// The data plane's encoded configuration in `mode`. `cpus` splits the aggregate
    /// ceilings.
    pub fn dataplane_config(&self, mode: Mode, sample_every: u32, cpus: u32) -> DataplaneConfig {
        let mut c = DataplaneConfig::new(mode);
        c.set_flag(flags::SIG_AMP_PORTS, self.signatures.amp_ports);
        c.set_flag(flags::SIG_TCP_FLAGS, self.signatures.tcp_flags);
        c.set_flag(flags::SIG_FRAGMENTS, self.signatures.fragments);
        c.set_flag(flags::SOURCE_LIMITS, self.sources.enabled);
        c.source_mask_v4 = source_mask_v4(self.sources.ipv4_prefix);
        c.source_mask_v6 = source_mask_v6(self.sources.ipv6_prefix);
        c.sketch_threshold = self.sources.sketch_threshold;
        c.sketch_window_shift = self.sources.sketch_window_shift;
        c.penalty_ns = self.penalty.as_nanos() as u64;
        // Each CPU's share, with a burst of a thousand entries.
        c.new_source_cost_ns =
            1_000_000_000 * u64::from(cpus.max(1)) / self.sources.max_new_per_sec;
        c.new_source_burst_ns = c.new_source_cost_ns * 1000;
        c.sample_every = sample_every;
        for (class, rate) in self.limits.iter() {
            c.source[class as usize] = rate.encode();
        }
        for (class, rate) in self.aggregate.iter() {
            c.aggregate[class as usize] = rate.encode_per_cpu(cpus);
        }
        c
    }
}

impl Settings {
    /// The data plane's encoded configuration. `cpus` splits the aggregate ceilings.
    pub fn dataplane_config(&self, cpus: u32) -> DataplaneConfig {
        self.filter
            .dataplane_config(self.mode, self.events.sample_every, cpus)
    }
}

#[cfg(test)]
mod tests;
