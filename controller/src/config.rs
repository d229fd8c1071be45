//! The operator's configuration: a TOML file read with serde, validated into [`Settings`].
//!
//! Unknown fields are rejected, and every error names the field (`limits.udp.pps`, ...) and
//! what is wrong with it, so a typo never silently becomes a default. Parsing is pure: the
//! daemon applies a [`Settings`] only once it is whole, so a broken reload changes nothing.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use filter_common::{
    abi::{Class, Config as DataplaneConfig, Mode, flags},
    config::{DEFAULT_AMP_PORTS, Rate, source_mask_v4, source_mask_v6},
    limit::SKETCH_MAX_THRESHOLD,
};
use ipnet::IpNet;
use serde::Deserialize;

use crate::{dataplane::AttachMode, engine::EngineConfig};

/// Where the control socket lives unless the config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/levee/levee.sock";
/// Port of the Prometheus endpoint unless the config says otherwise (on loopback).
pub const DEFAULT_METRICS_PORT: u16 = 9750;

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

/// Where CLI changes are kept across restarts unless the config says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/levee/state.json";

/// The file as written; every field optional, unknown fields rejected.
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
    pub limits: Option<ClassRatesFile>,
    pub aggregate: Option<ClassRatesFile>,
    pub lists: Option<ListsFile>,
    pub events: Option<EventsFile>,
    pub detection: Option<DetectionFile>,
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
    pub floor_pps: Option<ClassFloorsFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFloorsFile {
    pub tcp_syn: Option<u64>,
    pub tcp_other: Option<u64>,
    pub udp: Option<u64>,
    pub icmp: Option<u64>,
    pub other: Option<u64>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassRatesFile {
    pub tcp_syn: Option<RateFile>,
    pub tcp_other: Option<RateFile>,
    pub udp: Option<RateFile>,
    pub icmp: Option<RateFile>,
    pub other: Option<RateFile>,
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

/// A rate limit per traffic class.
pub type ClassRates = [Rate; Class::COUNT];

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub xdp_mode: AttachMode,
    pub mode: Mode,
    pub socket: PathBuf,
    pub keep_on_exit: bool,
    pub bpffs: PathBuf,
    pub state_file: PathBuf,
    /// Where `/metrics` is served; None: not served.
    pub metrics: Option<std::net::SocketAddr>,
    pub penalty: Duration,
    pub sig_amp_ports: bool,
    pub amp_ports: Vec<u16>,
    pub sig_tcp_flags: bool,
    pub sig_fragments: bool,
    pub source_limits: bool,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_tracked: u32,
    pub sketch_threshold: u32,
    pub sketch_window_shift: u32,
    pub limits: ClassRates,
    pub aggregate: ClassRates,
    pub allow: Vec<IpNet>,
    pub block: Vec<IpNet>,
    pub allow_files: Vec<PathBuf>,
    pub block_files: Vec<PathBuf>,
    pub ring_bytes: u32,
    pub sample_every: u32,
    pub detection: EngineConfig,
}

/// Per-source defaults: far above what one legitimate client sends, well below a flood.
fn default_limits() -> ClassRates {
    let rate = |pps: u64, burst: u64| Rate {
        pps,
        burst_packets: burst,
        ..Rate::default()
    };
    [
        rate(1_000, 200),
        rate(50_000, 10_000),
        rate(10_000, 2_000),
        rate(1_000, 200),
        rate(1_000, 200),
    ]
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            interfaces: Vec::new(),
            xdp_mode: AttachMode::Auto,
            mode: Mode::Monitor,
            socket: PathBuf::from(DEFAULT_SOCKET),
            keep_on_exit: false,
            bpffs: PathBuf::from("/sys/fs/bpf"),
            state_file: PathBuf::from(DEFAULT_STATE_FILE),
            metrics: Some(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                DEFAULT_METRICS_PORT,
            ))),
            penalty: Duration::from_secs(10),
            sig_amp_ports: true,
            amp_ports: DEFAULT_AMP_PORTS.to_vec(),
            sig_tcp_flags: true,
            sig_fragments: false,
            source_limits: true,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            max_tracked: filter_common::abi::DEFAULT_MAX_SOURCES,
            sketch_threshold: 8,
            sketch_window_shift: 24,
            limits: default_limits(),
            aggregate: [Rate::default(); Class::COUNT],
            allow: Vec::new(),
            block: Vec::new(),
            allow_files: Vec::new(),
            block_files: Vec::new(),
            ring_bytes: filter_common::abi::DEFAULT_EVENT_BYTES,
            sample_every: 1000,
            detection: EngineConfig::default(),
        }
    }
}

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
    let net: IpNet = if s.contains('/') {
        s.parse()
            .map_err(|_| anyhow::anyhow!("malformed CIDR {s:?}: expected ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32"))?
    } else {
        let addr: IpAddr = s
            .parse()
            .map_err(|_| anyhow::anyhow!("malformed CIDR {s:?}: expected ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32"))?;
        IpNet::from(addr)
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
    if let Some(ifaces) = f.interfaces {
        for i in &ifaces {
            if i.is_empty() || i.len() > 15 || i.contains('/') || i.contains(char::is_whitespace) {
                bail!(
                    "field interfaces: {i:?} is not an interface name (1 to 15 characters, no '/' or spaces)"
                );
            }
        }
        s.interfaces = ifaces;
    }
    if let Some(m) = f.xdp_mode {
        s.xdp_mode = field("xdp_mode", parse_xdp_mode(&m))?;
    }
    if let Some(m) = f.mode {
        s.mode = field("mode", parse_mode(&m))?;
    }
    if let Some(p) = f.socket {
        s.socket = p;
    }
    if let Some(k) = f.keep_on_exit {
        s.keep_on_exit = k;
    }
    if let Some(b) = f.bpffs {
        s.bpffs = b;
    }
    if let Some(p) = f.state_file {
        s.state_file = p;
    }
    if let Some(m) = f.metrics {
        s.metrics = field("metrics", parse_metrics_addr(&m))?;
    }
    if let Some(p) = f.penalty {
        s.penalty = field("penalty", parse_duration(&p))?;
    }
    if let Some(sig) = f.signatures {
        s.sig_amp_ports = sig.amp_ports.unwrap_or(s.sig_amp_ports);
        s.sig_tcp_flags = sig.tcp_flags.unwrap_or(s.sig_tcp_flags);
        s.sig_fragments = sig.fragments.unwrap_or(s.sig_fragments);
        if let Some(ports) = sig.amp_port_list {
            s.amp_ports = ports;
        }
    }
    if let Some(src) = f.sources {
        s.source_limits = src.enabled.unwrap_or(s.source_limits);
        if let Some(p) = src.ipv4_prefix {
            if !(8..=32).contains(&p) {
                bail!("field sources.ipv4_prefix: must be between 8 and 32, got {p}");
            }
            s.ipv4_prefix = p;
        }
        if let Some(p) = src.ipv6_prefix {
            if !(16..=64).contains(&p) {
                bail!("field sources.ipv6_prefix: must be between 16 and 64, got {p}");
            }
            s.ipv6_prefix = p;
        }
        if let Some(n) = src.max_tracked {
            if !(1024..=(1 << 26)).contains(&n) {
                bail!("field sources.max_tracked: must be between 1024 and 67108864, got {n}");
            }
            s.max_tracked = n;
        }
        if let Some(t) = src.sketch_threshold {
            if !(1..=SKETCH_MAX_THRESHOLD).contains(&t) {
                bail!(
                    "field sources.sketch_threshold: must be between 1 and {SKETCH_MAX_THRESHOLD}, got {t}"
                );
            }
            s.sketch_threshold = t;
        }
        if let Some(w) = src.sketch_window {
            let d = field("sources.sketch_window", parse_duration(&w))?;
            let ns = d.as_nanos();
            if !(1_000_000..=1_000_000_000).contains(&ns) {
                bail!("field sources.sketch_window: must be between 1ms and 1s, got {w}");
            }
            // Windows are a power of two of nanoseconds; take the nearest.
            s.sketch_window_shift = (ns as f64).log2().round() as u32;
        }
    }
    if let Some(l) = f.limits {
        apply_rates("limits", &l, &mut s.limits)?;
    }
    if let Some(a) = f.aggregate {
        apply_rates("aggregate", &a, &mut s.aggregate)?;
    }
    if let Some(lists) = f.lists {
        for (name, entries, out) in [
            ("lists.allow", lists.allow, &mut s.allow),
            ("lists.block", lists.block, &mut s.block),
        ] {
            for (i, e) in entries.unwrap_or_default().iter().enumerate() {
                out.push(field(&format!("{name}[{i}]"), parse_cidr(e))?);
            }
        }
        s.allow_files = lists.allow_files.unwrap_or_default();
        s.block_files = lists.block_files.unwrap_or_default();
    }
    if let Some(d) = f.detection {
        apply_detection(&d, &mut s.detection)?;
    }
    if let Some(ev) = f.events {
        if let Some(b) = ev.ring_bytes {
            if !b.is_power_of_two() || !(4096..=(1 << 30)).contains(&b) {
                bail!(
                    "field events.ring_bytes: must be a power of two between 4096 and 1073741824, got {b}"
                );
            }
            s.ring_bytes = b;
        }
        s.sample_every = ev.sample_every.unwrap_or(s.sample_every);
    }
    Ok(s)
}

fn apply_detection(f: &DetectionFile, out: &mut EngineConfig) -> Result<()> {
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
    if let Some(fl) = &f.floor_pps {
        for (class, v) in [
            (Class::TcpSyn, fl.tcp_syn),
            (Class::TcpOther, fl.tcp_other),
            (Class::Udp, fl.udp),
            (Class::Icmp, fl.icmp),
            (Class::Other, fl.other),
        ] {
            if let Some(v) = v {
                out.floor_pps[class as usize] = v;
            }
        }
    }
    Ok(())
}

fn apply_rates(section: &str, f: &ClassRatesFile, out: &mut ClassRates) -> Result<()> {
    let entries = [
        (Class::TcpSyn, f.tcp_syn),
        (Class::TcpOther, f.tcp_other),
        (Class::Udp, f.udp),
        (Class::Icmp, f.icmp),
        (Class::Other, f.other),
    ];
    for (class, rate) in entries {
        let Some(r) = rate else { continue };
        let name = format!("{section}.{}", class.name());
        let slot = &mut out[class as usize];
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

impl Settings {
    /// The data plane's encoded configuration. `cpus` splits the aggregate ceilings.
    pub fn dataplane_config(&self, cpus: u32) -> DataplaneConfig {
        let mut c = DataplaneConfig::new(self.mode);
        c.set_flag(flags::SIG_AMP_PORTS, self.sig_amp_ports);
        c.set_flag(flags::SIG_TCP_FLAGS, self.sig_tcp_flags);
        c.set_flag(flags::SIG_FRAGMENTS, self.sig_fragments);
        c.set_flag(flags::SOURCE_LIMITS, self.source_limits);
        c.source_mask_v4 = source_mask_v4(self.ipv4_prefix);
        c.source_mask_v6 = source_mask_v6(self.ipv6_prefix);
        c.sketch_threshold = self.sketch_threshold;
        c.sketch_window_shift = self.sketch_window_shift;
        c.penalty_ns = self.penalty.as_nanos() as u64;
        c.sample_every = self.sample_every;
        for class in Class::ALL {
            c.source[class as usize] = self.limits[class as usize].encode();
            c.aggregate[class as usize] = self.aggregate[class as usize].encode_per_cpu(cpus);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("expected an error"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../levee.example.toml");
        let s = load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.interfaces, vec!["eth0".to_string()]);
        assert_eq!(s.mode, Mode::Monitor);
        assert_eq!(s.limits[Class::Udp as usize].pps, 10_000);
        assert!(!s.block.is_empty());
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err("moed = \"enforce\"\n");
        assert!(e.contains("unknown field `moed`"), "{e}");
        let e = err("[limits.udp]\npps = 5\nbrust = 3\n");
        assert!(
            e.starts_with("line 3, column 1: unknown field `brust`"),
            "{e}"
        );
        let e = err("[limits.sctp]\npps = 5\n");
        assert!(e.contains("unknown field `sctp`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field_and_reason() {
        for (text, want) in [
            ("mode = \"panic\"", "field mode: unknown mode \"panic\""),
            ("xdp_mode = \"fast\"", "field xdp_mode: unknown XDP mode"),
            ("penalty = \"ten\"", "field penalty: malformed duration"),
            (
                "[sources]\nipv4_prefix = 40",
                "field sources.ipv4_prefix: must be between 8 and 32, got 40",
            ),
            ("[sources]\nipv6_prefix = 80", "field sources.ipv6_prefix"),
            (
                "[sources]\nsketch_threshold = 16",
                "field sources.sketch_threshold",
            ),
            (
                "[sources]\nsketch_window = \"5s\"",
                "field sources.sketch_window",
            ),
            (
                "[lists]\nblock = [\"192.0.2.0/24\", \"300.1.1.1\"]",
                "field lists.block[1]: malformed CIDR \"300.1.1.1\"",
            ),
            ("[lists]\nallow = [\"192.0.2.7/24\"]", "host bits set"),
            (
                "[limits.udp]\npps = 100\nburst = 0",
                "field limits.udp.burst",
            ),
            ("[events]\nring_bytes = 1000", "field events.ring_bytes"),
            (
                "metrics = \"localhost\"",
                "field metrics: malformed address",
            ),
            (
                "[detection]\nonset_factor = 0.5",
                "field detection.onset_factor",
            ),
            (
                "[detection]\nrecovery_factor = 9.0",
                "field detection.recovery_factor: must not exceed",
            ),
            (
                "[detection]\nblock_ttl = \"0s\"",
                "field detection.block_ttl",
            ),
            ("[detection.floor_pps]\nudpp = 5", "unknown field `udpp`"),
            ("interfaces = [\"eth 0\"]", "field interfaces"),
            ("mode = 3", "invalid type"),
        ] {
            let e = err(text);
            assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
            assert!(!e.contains('\n'), "{text:?}: one line, got {e}");
        }
    }

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
    }

    #[test]
    fn settings_encode_into_the_dataplane_config() {
        let s = parse(
            "mode = \"enforce\"\npenalty = \"30s\"\n[sources]\nipv4_prefix = 24\nsketch_window = \"8ms\"\n\
             [aggregate.udp]\npps = 1000\nburst = 100\n[signatures]\nfragments = true\n",
        )
        .unwrap();
        let c = s.dataplane_config(2);
        assert_eq!(c.mode(), Mode::Enforce);
        assert_eq!(c.penalty_ns, 30_000_000_000);
        assert_eq!(c.source_mask_v4, source_mask_v4(24));
        assert_eq!(c.sketch_window_shift, 23);
        assert_ne!(c.flags & flags::SIG_FRAGMENTS, 0);
        assert_eq!(
            c.aggregate[Class::Udp as usize].pkt_cost_ns,
            2_000_000,
            "half the ceiling per CPU"
        );
        assert_eq!(
            c.source[Class::Udp as usize].pkt_cost_ns,
            100_000,
            "default 10k pps"
        );
    }
}
