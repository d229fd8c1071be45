//! Prometheus metrics, with the official Rust client: what `levee status` shows, in a form
//! alerting can use. The daemon updates them once a second; `/metrics` encodes the registry.
//!
//! Names follow Prometheus conventions: `_total` for counters, base units, labels for the
//! dimensions (interface, action, reason, class).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

mod labels;
pub use labels::*;

/// Every metric Levee exports.
pub struct Metrics {
    registry: Registry,
    pub packets: Family<PacketLabels, Counter>,
    pub bytes: Family<PacketLabels, Counter>,
    pub mode: Family<ModeLabels, Gauge>,
    pub under_attack: Family<ClassLabels, Gauge>,
    pub attack_state: Family<StateLabels, Gauge>,
    pub baseline: Family<ClassLabels, Gauge>,
    pub decisions: Family<KindLabels, Counter>,
    pub blocklist_entries: Gauge,
    pub allowlist_entries: Gauge,
    pub blocklist_capacity: Gauge,
    pub allowlist_capacity: Gauge,
    pub tracked_sources: Family<InterfaceLabels, Gauge>,
    pub tracked_sources_capacity: Gauge,
    pub ticks: Counter,
    pub last_tick: Gauge,
    pub errors: Counter,
    pub state_write_errors: Counter,
    pub events_lost: Family<LostLabels, Counter>,
    pub sources_refused: Family<InterfaceLabels, Counter>,
    pub familiar_unrecorded: Family<InterfaceLabels, Counter>,
    pub gate_window: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub gate_threshold: Gauge,
    pub strict_engaged: Gauge,
    pub escalations_active: Family<KindLabels, Gauge>,
    pub escalation_announcements: Family<EscalationLabels, Counter>,
    pub escalation_withdrawals: Family<EscalationLabels, Counter>,
    pub escalation_refused: Counter,
    pub escalation_errors: Counter,
    pub escalation_speaker_up: Gauge,
    pub escalation_withdrawals_pending: Gauge,
    pub upstream_rules: Family<StateOnlyLabels, Gauge>,
    pub kernel_setting_changes: Family<SettingLabels, Counter>,
    pub services_left_out: Gauge,
    pub strict_triggers: Family<ClassLabels, Counter>,
    pub flood_signatures: Gauge,
    pub flood_signatures_found: Counter,
    seen_refused: HashMap<String, u64>,
    seen_unrecorded: HashMap<String, u64>,
    /// Last absolute counter values read from the data plane, to turn them into increments.
    seen: HashMap<PacketLabels, (u64, u64)>,
    seen_lost: HashMap<LostLabels, u64>,
}

/// The registry shared between the daemon (writes) and the HTTP handler (reads).
pub type SharedMetrics = Arc<Mutex<Metrics>>;

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("levee");
        let m = Metrics {
            packets: Family::default(),
            bytes: Family::default(),
            mode: Family::default(),
            under_attack: Family::default(),
            attack_state: Family::default(),
            baseline: Family::default(),
            decisions: Family::default(),
            blocklist_entries: Gauge::default(),
            allowlist_entries: Gauge::default(),
            blocklist_capacity: Gauge::default(),
            allowlist_capacity: Gauge::default(),
            tracked_sources: Family::default(),
            tracked_sources_capacity: Gauge::default(),
            ticks: Counter::default(),
            last_tick: Gauge::default(),
            errors: Counter::default(),
            state_write_errors: Counter::default(),
            events_lost: Family::default(),
            sources_refused: Family::default(),
            familiar_unrecorded: Family::default(),
            gate_window: Gauge::default(),
            gate_threshold: Gauge::default(),
            strict_engaged: Gauge::default(),
            escalations_active: Family::default(),
            escalation_announcements: Family::default(),
            escalation_withdrawals: Family::default(),
            escalation_refused: Counter::default(),
            escalation_errors: Counter::default(),
            escalation_speaker_up: Gauge::default(),
            escalation_withdrawals_pending: Gauge::default(),
            upstream_rules: Family::default(),
            kernel_setting_changes: Family::default(),
            services_left_out: Gauge::default(),
            strict_triggers: Family::default(),
            flood_signatures: Gauge::default(),
            flood_signatures_found: Counter::default(),
            seen_refused: HashMap::new(),
            seen_unrecorded: HashMap::new(),
            seen_lost: HashMap::new(),
            seen: HashMap::new(),
            registry: Registry::default(),
        };
        registry.register(
            "packets",
            "Packets seen by the XDP program, by interface, action, reason and traffic class",
            m.packets.clone(),
        );
        registry.register(
            "bytes",
            "Bytes seen by the XDP program, by interface, action, reason and traffic class",
            m.bytes.clone(),
        );
        registry.register(
            "mode",
            "Mitigation mode: 1 for the current one",
            m.mode.clone(),
        );
        registry.register(
            "under_attack",
            "1 while a traffic class is under attack or recovering",
            m.under_attack.clone(),
        );
        registry.register(
            "attack_state",
            "Attack state per class: 1 for the current state",
            m.attack_state.clone(),
        );
        registry.register(
            "baseline_packets_per_second",
            "Learned baseline rate per traffic class",
            m.baseline.clone(),
        );
        registry.register(
            "detection_decisions",
            "Decisions of the detection engine, by kind",
            m.decisions.clone(),
        );
        registry.register(
            "blocklist_entries",
            "Prefixes in the blocklist",
            m.blocklist_entries.clone(),
        );
        registry.register(
            "allowlist_entries",
            "Prefixes in the allowlist",
            m.allowlist_entries.clone(),
        );
        registry.register(
            "kernel_setting_changes",
            "Changes by someone else of a kernel setting strict depends on: put back (owned) or followed by the SYN-ACK",
            m.kernel_setting_changes.clone(),
        );
        registry.register(
            "strict_triggers",
            "Times the program engaged strict on a CPU by itself, by the class whose packets of sources without state passed its onset rate",
            m.strict_triggers.clone(),
        );
        registry.register(
            "flood_signatures",
            "Flood signatures in force (their drops: packets with reason flood_signature)",
            m.flood_signatures.clone(),
        );
        registry.register(
            "flood_signatures_found",
            "Flood signatures the miner found and the program enforced",
            m.flood_signatures_found.clone(),
        );
        registry.register(
            "services_left_out",
            "Services (configured, or sockets of allowed owners) the program's tables had no room for: their ports get no_service",
            m.services_left_out.clone(),
        );
        registry.register(
            "blocklist_capacity",
            "Prefixes the blocklist can hold (each family)",
            m.blocklist_capacity.clone(),
        );
        registry.register(
            "allowlist_capacity",
            "Prefixes the allowlist can hold (each family)",
            m.allowlist_capacity.clone(),
        );
        m.blocklist_capacity
            .set(i64::from(filter_common::abi::LIST_ENTRIES));
        m.allowlist_capacity
            .set(i64::from(filter_common::abi::LIST_ENTRIES));
        registry.register(
            "tracked_sources",
            "Sources with exact per-source state, per interface: slots held plus LRU entries added, capped at its size",
            m.tracked_sources.clone(),
        );
        registry.register(
            "tracked_sources_capacity",
            "Sources the per-source tables hold: sources.max_tracked in the LRU plus the slots",
            m.tracked_sources_capacity.clone(),
        );
        registry.register(
            "controller_ticks",
            "Seconds the controller has run its loop",
            m.ticks.clone(),
        );
        registry.register(
            "controller_last_tick_timestamp_seconds",
            "Unix time of the controller's last loop: stale when the controller hangs",
            m.last_tick.clone(),
        );
        registry.register(
            "controller_errors",
            "Errors in the controller's loop",
            m.errors.clone(),
        );
        registry.register(
            "state_write_errors",
            "Failed writes of the state file: what the CLI set since then is lost at a restart",
            m.state_write_errors.clone(),
        );
        registry.register(
            "events_lost",
            "Records the program could not put on a full ring, by interface and kind (offence, sample)",
            m.events_lost.clone(),
        );
        registry.register(
            "sources_untracked_by_budget",
            "Sources the sketch gate let through that stayed untracked: the budget of new per-source entries was spent (sources.max_new_per_sec)",
            m.sources_refused.clone(),
        );
        registry.register(
            "familiar_sightings_unrecorded",
            "Sightings of new sources while calm left unrecorded as familiar: the budget of new familiar entries was spent (strict.familiar_max_new_per_sec); each is recorded at a later sighting",
            m.familiar_unrecorded.clone(),
        );
        registry.register(
            "sketch_gate_window_seconds",
            "Window of the sketch gate in force; shorter than the config's while one CPU sees a high packet rate",
            m.gate_window.clone(),
        );
        registry.register(
            "sketch_gate_threshold",
            "Packets in one window that get a source per-source state",
            m.gate_threshold.clone(),
        );
        registry.register(
            "strict_engaged",
            "1 while strict mode drops what no service or flow accounts for",
            m.strict_engaged.clone(),
        );
        registry.register(
            "escalations_active",
            "Rules announced now, upstream or to the fleet (RTBH, FlowSpec, source block), by kind",
            m.escalations_active.clone(),
        );
        registry.register(
            "escalation_announcements",
            "Rules announced, by kind and who asked (operator, detection)",
            m.escalation_announcements.clone(),
        );
        registry.register(
            "escalation_withdrawals",
            "Rules withdrawn, by kind and why (ttl, operator, stop, attack_over, block_over)",
            m.escalation_withdrawals.clone(),
        );
        registry.register(
            "escalation_refused",
            "Escalations refused by the policy (outside the protected prefixes, over a limit...)",
            m.escalation_refused.clone(),
        );
        registry.register(
            "escalation_errors",
            "Failed calls to the BGP daemon, and its deaths",
            m.escalation_errors.clone(),
        );
        registry.register(
            "escalation_speaker_up",
            "1 while the BGP daemon carrying escalations answers (mode on)",
            m.escalation_speaker_up.clone(),
        );
        registry.register(
            "escalation_withdrawals_pending",
            "Rules whose withdrawal gobgpd has not confirmed yet (retried until it does)",
            m.escalation_withdrawals_pending.clone(),
        );
        registry.register(
            "upstream_rules",
            "FlowSpec rules received from the BGP neighbours, by state (enforced, skipped: not enforceable exactly, ignored: outside the protected prefixes)",
            m.upstream_rules.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn shared() -> SharedMetrics {
        Arc::new(Mutex::new(Metrics::new()))
    }

    /// Records an absolute data-plane counter, adding only what is new since the last read
    /// (a smaller value means the maps were recreated: it counts from zero again).
    pub fn observe_counter(&mut self, labels: PacketLabels, packets: u64, bytes: u64) {
        let (p0, b0) = self.seen.get(&labels).copied().unwrap_or((0, 0));
        let (dp, db) = if packets < p0 {
            (packets, bytes)
        } else {
            (packets - p0, bytes.saturating_sub(b0))
        };
        if dp > 0 {
            self.packets.get_or_create(&labels).inc_by(dp);
            self.bytes.get_or_create(&labels).inc_by(db);
        }
        self.seen.insert(labels, (packets, bytes));
    }

    /// Records the data plane's absolute lost-record counts as increments.
    pub fn observe_lost(&mut self, interface: &str, offences: u64, samples: u64) {
        for (kind, now) in [("offence", offences), ("sample", samples)] {
            let labels = LostLabels {
                interface: interface.to_string(),
                kind: kind.to_string(),
            };
            let before = self.seen_lost.get(&labels).copied().unwrap_or(0);
            let delta = if now < before { now } else { now - before };
            // Created even at zero, so alerting sees the series from the start.
            self.events_lost.get_or_create(&labels).inc_by(delta);
            self.seen_lost.insert(labels, now);
        }
    }

    /// Records an interface's absolute count of sources left untracked as an increment.
    pub fn observe_refused(&mut self, interface: &str, now: u64) {
        increment(
            &self.sources_refused,
            &mut self.seen_refused,
            interface,
            now,
        );
    }

    /// Records an interface's absolute count of familiar sightings left unrecorded as an
    /// increment.
    pub fn observe_familiar_unrecorded(&mut self, interface: &str, now: u64) {
        increment(
            &self.familiar_unrecorded,
            &mut self.seen_unrecorded,
            interface,
            now,
        );
    }

    /// Marks one loop of the controller done.
    pub fn tick(&mut self) {
        self.ticks.inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_tick.set(now as i64);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds to an interface's counter what its absolute count in the data plane grew by since
/// it was last seen (all of it after a reset, as after a reload of the program).
fn increment(
    family: &Family<InterfaceLabels, Counter>,
    seen: &mut HashMap<String, u64>,
    interface: &str,
    now: u64,
) {
    let before = seen.get(interface).copied().unwrap_or(0);
    let delta = if now < before { now } else { now - before };
    family
        .get_or_create(&InterfaceLabels {
            interface: interface.to_string(),
        })
        .inc_by(delta);
    seen.insert(interface.to_string(), now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> PacketLabels {
        PacketLabels {
            interface: "eth0".into(),
            action: "drop".into(),
            reason: "blocklisted".into(),
            class: "udp".into(),
        }
    }

    #[test]
    fn counters_follow_the_data_plane_and_survive_a_reset() {
        let mut m = Metrics::new();
        m.observe_counter(labels(), 10, 640);
        m.observe_counter(labels(), 25, 1600);
        assert_eq!(m.packets.get_or_create(&labels()).get(), 25);
        // Maps recreated: the data plane counts from zero; Prometheus must not go backwards.
        m.observe_counter(labels(), 5, 320);
        assert_eq!(m.packets.get_or_create(&labels()).get(), 30);
        assert_eq!(m.bytes.get_or_create(&labels()).get(), 1920);
    }

    #[test]
    fn exposition_uses_prometheus_names() {
        let mut m = Metrics::new();
        m.observe_counter(labels(), 3, 192);
        m.mode
            .get_or_create(&ModeLabels {
                mode: "enforce".into(),
            })
            .set(1);
        m.tick();
        let text = m.render();
        for want in [
            "# TYPE levee_packets counter",
            "levee_packets_total{interface=\"eth0\",action=\"drop\",reason=\"blocklisted\",class=\"udp\"} 3",
            "levee_bytes_total{",
            "levee_mode{mode=\"enforce\"} 1",
            "levee_controller_ticks_total 1",
            "levee_controller_last_tick_timestamp_seconds ",
            "# EOF",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
