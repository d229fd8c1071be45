//! From the file as written to [`Settings`]: every value checked, every refusal naming its
//! field (`field limits.udp.burst: ...`).

use anyhow::{Context as _, Result, bail};
use filter_common::{config::Rate, limit::SKETCH_MAX_THRESHOLD};

use super::{
    File, PerClass, PerClassFile, Settings,
    file::{DetectionFile, RateFile},
    values::{
        MAX_TTL, parse_cidr, parse_duration, parse_iface, parse_metrics_addr, parse_mode,
        parse_xdp_mode,
    },
};
use crate::engine::EngineConfig;

/// The longest penalty and offence window: a day is already far beyond any use.
const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn field<T>(name: &str, r: Result<T>) -> Result<T> {
    r.with_context(|| format!("field {name}"))
}

pub(super) fn settings(f: File) -> Result<Settings> {
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
        let d = field("penalty", parse_duration(&p))?;
        if d > DAY {
            bail!("field penalty: must be at most 24h, got {p:?}");
        }
        flt.penalty = d;
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
        if let Some(n) = src.max_new_per_sec {
            if !(100..=100_000_000).contains(&n) {
                bail!("field sources.max_new_per_sec: must be between 100 and 100000000, got {n}");
            }
            out.max_new_per_sec = n;
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
    super::strict::apply(f.strict, f.services, &mut s.strict)?;
    super::escalation::apply(f.escalation, &mut s.escalation)?;
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
        let d = field("detection.offence_window", parse_duration(w))?;
        if d > DAY {
            bail!("field detection.offence_window: must be at most 24h, got {w:?}");
        }
        out.offence_window = d;
    }
    if let Some(t) = &f.block_ttl {
        let ttl = field("detection.block_ttl", parse_duration(t))?;
        if ttl.as_secs() == 0 || ttl > MAX_TTL {
            bail!("field detection.block_ttl: must be between 1s and 100 years, got {t:?}");
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
