//! The operator's configuration: a TOML file read with serde, validated into [`Settings`].
//!
//! Unknown fields are rejected, and every error names the field (`limits.udp.pps`, ...) and
//! what is wrong with it, so a typo never silently becomes a default. Parsing is pure: the
//! daemon applies a [`Settings`] only once it is whole, so a broken reload changes nothing.

mod file;
mod per_class;
pub mod values;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use filter_common::{
    abi::{Config as DataplaneConfig, Mode, flags},
    config::{DEFAULT_AMP_PORTS, Rate, source_mask_v4, source_mask_v6},
    limit::SKETCH_MAX_THRESHOLD,
};
use ipnet::IpNet;

pub use file::{DetectionFile, File, RateFile};
pub use per_class::{PerClass, PerClassFile};
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

#[derive(Clone, Debug, PartialEq)]
pub struct SourceSettings {
    /// Per-source limiting on or off.
    pub enabled: bool,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Entries in the per-source table (fixed at load).
    pub max_tracked: u32,
    pub sketch_threshold: u32,
    pub sketch_window_shift: u32,
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
    settings(file)
}

fn field<T>(name: &str, r: Result<T>) -> Result<T> {
    r.with_context(|| format!("field {name}"))
}

fn settings(f: File) -> Result<Settings> {
    let mut s = Settings::default();
    let d = &mut s.daemon;
    if let Some(ifaces) = f.interfaces {
        d.interfaces = ifaces
            .iter()
            .map(|i| field("interfaces", parse_iface(i)))
            .collect::<Result<_>>()?;
    }
    if let Some(m) = f.xdp_mode {
        d.xdp_mode = field("xdp_mode", parse_xdp_mode(&m))?;
    }
    if let Some(p) = f.socket {
        d.socket = p;
    }
    if let Some(k) = f.keep_on_exit {
        d.keep_on_exit = k;
    }
    if let Some(b) = f.bpffs {
        d.bpffs = b;
    }
    if let Some(p) = f.state_file {
        d.state_file = p;
    }
    if let Some(m) = f.metrics {
        d.metrics = field("metrics", parse_metrics_addr(&m))?;
    }
    if let Some(m) = f.mode {
        s.mode = field("mode", parse_mode(&m))?;
    }
    let flt = &mut s.filter;
    if let Some(p) = f.penalty {
        flt.penalty = field("penalty", parse_duration(&p))?;
    }
    if let Some(sig) = f.signatures {
        let out = &mut flt.signatures;
        out.amp_ports = sig.amp_ports.unwrap_or(out.amp_ports);
        out.tcp_flags = sig.tcp_flags.unwrap_or(out.tcp_flags);
        out.fragments = sig.fragments.unwrap_or(out.fragments);
        if let Some(ports) = sig.amp_port_list {
            out.amp_port_list = ports;
        }
    }
    if let Some(src) = f.sources {
        let out = &mut flt.sources;
        out.enabled = src.enabled.unwrap_or(out.enabled);
        if let Some(p) = src.ipv4_prefix {
            if !(8..=32).contains(&p) {
                bail!("field sources.ipv4_prefix: must be between 8 and 32, got {p}");
            }
            out.ipv4_prefix = p;
        }
        if let Some(p) = src.ipv6_prefix {
            if !(16..=64).contains(&p) {
                bail!("field sources.ipv6_prefix: must be between 16 and 64, got {p}");
            }
            out.ipv6_prefix = p;
        }
        if let Some(n) = src.max_tracked {
            if !(1024..=(1 << 26)).contains(&n) {
                bail!("field sources.max_tracked: must be between 1024 and 67108864, got {n}");
            }
            out.max_tracked = n;
        }
        if let Some(t) = src.sketch_threshold {
            if !(1..=SKETCH_MAX_THRESHOLD).contains(&t) {
                bail!(
                    "field sources.sketch_threshold: must be between 1 and {SKETCH_MAX_THRESHOLD}, got {t}"
                );
            }
            out.sketch_threshold = t;
        }
        if let Some(w) = src.sketch_window {
            let d = field("sources.sketch_window", parse_duration(&w))?;
            let ns = d.as_nanos();
            if !(1_000_000..=1_000_000_000).contains(&ns) {
                bail!("field sources.sketch_window: must be between 1ms and 1s, got {w}");
            }
            // Windows are a power of two of nanoseconds; take the nearest.
            out.sketch_window_shift = (ns as f64).log2().round() as u32;
        }
    }
    if let Some(l) = f.limits {
        apply_rates("limits", l, &mut flt.limits)?;
    }
    if let Some(a) = f.aggregate {
        apply_rates("aggregate", a, &mut flt.aggregate)?;
    }
    if let Some(lists) = f.lists {
        for (name, entries, out) in [
            ("lists.allow", lists.allow, &mut s.lists.allow),
            ("lists.block", lists.block, &mut s.lists.block),
        ] {
            for (i, e) in entries.unwrap_or_default().iter().enumerate() {
                out.push(field(&format!("{name}[{i}]"), parse_cidr(e))?);
            }
        }
        s.lists.allow_files = lists.allow_files.unwrap_or_default();
        s.lists.block_files = lists.block_files.unwrap_or_default();
    }
    if let Some(d) = f.detection {
        apply_detection(d, &mut s.detection)?;
    }
    if let Some(ev) = f.events {
        if let Some(b) = ev.ring_bytes {
            if !b.is_power_of_two() || !(4096..=(1 << 30)).contains(&b) {
                bail!(
                    "field events.ring_bytes: must be a power of two between 4096 and 1073741824, got {b}"
                );
            }
            s.events.ring_bytes = b;
        }
        s.events.sample_every = ev.sample_every.unwrap_or(s.events.sample_every);
    }
    Ok(s)
}

fn apply_detection(f: DetectionFile, out: &mut EngineConfig) -> Result<()> {
    out.enabled = f.enabled.unwrap_or(out.enabled);
    out.auto_enforce = f.auto_enforce.unwrap_or(out.auto_enforce);
    if let Some(x) = f.onset_factor {
        if !(x > 1.0 && x <= 1000.0) {
            bail!("field detection.onset_factor: must be above 1 and at most 1000, got {x}");
        }
        out.onset_factor = x;
    }
    if let Some(x) = f.recovery_factor {
        if !(1.0..=1000.0).contains(&x) {
            bail!("field detection.recovery_factor: must be between 1 and 1000, got {x}");
        }
        out.recovery_factor = x;
    }
    if out.recovery_factor > out.onset_factor {
        bail!(
            "field detection.recovery_factor: must not exceed onset_factor ({} > {})",
            out.recovery_factor,
            out.onset_factor
        );
    }
    if let Some(n) = f.onset_secs {
        if !(1..=60).contains(&n) {
            bail!("field detection.onset_secs: must be between 1 and 60, got {n}");
        }
        out.onset_secs = n;
    }
    if let Some(n) = f.recovery_secs {
        if !(1..=3600).contains(&n) {
            bail!("field detection.recovery_secs: must be between 1 and 3600, got {n}");
        }
        out.recovery_secs = n;
    }
    if let Some(n) = f.escalate_after {
        out.escalate_after = n;
    }
    if let Some(x) = f.tighten_factor {
        if !(x > 0.0 && x <= 1.0) {
            bail!("field detection.tighten_factor: must be above 0 and at most 1, got {x}");
        }
        out.tighten_factor = x;
    }
    if let Some(w) = &f.offence_window {
        out.offence_window = field("detection.offence_window", parse_duration(w))?;
    }
    if let Some(t) = &f.block_ttl {
        let ttl = field("detection.block_ttl", parse_duration(t))?;
        if ttl.as_secs() == 0 {
            bail!("field detection.block_ttl: must be at least 1s, got {t:?}");
        }
        out.block_ttl = ttl;
    }
    if let Some(floors) = f.floor_pps {
        for (class, v) in floors.given() {
            out.floor_pps[class] = v;
        }
    }
    Ok(())
}

fn apply_rates(section: &str, f: PerClassFile<RateFile>, out: &mut PerClass<Rate>) -> Result<()> {
    for (class, r) in f.given() {
        let name = format!("{section}.{}", class.name());
        let slot = &mut out[class];
        if let Some(pps) = r.pps {
            slot.pps = pps;
        }
        if let Some(b) = r.burst {
            slot.burst_packets = b;
        }
        if let Some(bps) = r.bps {
            slot.bits_per_sec = bps;
        }
        if let Some(b) = r.burst_bytes {
            slot.burst_bytes = b;
        }
        check_rate(&name, slot).map_err(|e| anyhow::anyhow!("field {e:#}"))?;
    }
    Ok(())
}

/// Checks a rate's values; errors start with `name.field`.
pub fn check_rate(name: &str, rate: &Rate) -> Result<()> {
    if rate.pps > 0 && rate.burst_packets == 0 {
        bail!("{name}.burst: must be at least 1 when pps is set");
    }
    if rate.pps > 1_000_000_000 {
        bail!("{name}.pps: at most 1000000000, got {}", rate.pps);
    }
    Ok(())
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
