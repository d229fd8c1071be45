//! Telemetry: counter totals turned into rates, top talkers and the attack's shape (fed by
//! `events`), and the Prometheus metrics.

use std::time::Instant;

use anyhow::{Result, anyhow};
use filter_common::abi::{Action, Class, Mode, SOURCE_SLOT_COUNT};

use super::Controller;

use crate::{
    api::views::RatesView,
    dataplane::Counters,
    engine::AttackState,
    metrics::{
        ClassLabels, InterfaceLabels, KindLabels, Metrics, ModeLabels, PacketLabels, SharedMetrics,
        StateLabels,
    },
    top::TopTalkers,
};

/// Counter totals at one instant, to derive rates.
#[derive(Clone, Debug)]
struct Totals {
    at: Instant,
    /// (packets, bytes) passed and dropped.
    pass: (u64, u64),
    drop: (u64, u64),
    /// Packets per class, all actions.
    classes: [u64; Class::COUNT],
    /// Packets per class that no per-source stage stopped ([`unstopped`]).
    unstopped: [u64; Class::COUNT],
    /// Packets per CPU of each interface, one after the other.
    cpu_packets: Vec<u64>,
}

pub struct Telemetry {
    pub top: TopTalkers,
    /// The attack's shape by class, for automatic escalation.
    pub shapes: crate::escalation::shape::Shapes,
    /// The last two counter totals.
    totals: [Option<Totals>; 2],
    pub metrics: SharedMetrics,
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry {
            top: TopTalkers::default(),
            shapes: Default::default(),
            totals: [None, None],
            metrics: Metrics::shared(),
        }
    }

    /// Records the counter totals of every interface at `at`.
    pub fn sample(&mut self, counters: &[(String, Counters)], at: Instant) {
        let (mut pass, mut drop) = ((0, 0), (0, 0));
        let mut classes = [0u64; Class::COUNT];
        let mut unstopped_by_class = [0u64; Class::COUNT];
        let mut cpu_packets = Vec::new();
        for (_, c) in counters {
            cpu_packets.extend_from_slice(&c.per_cpu_packets);
            for (action, reason, class, v) in c.non_zero() {
                if reason.unstopped() {
                    unstopped_by_class[class as usize] += v.packets;
                }
                let slot = if action == Action::Drop {
                    &mut drop
                } else {
                    &mut pass
                };
                slot.0 += v.packets;
                slot.1 += v.bytes;
                classes[class as usize] += v.packets;
            }
        }
        let now = Totals {
            at,
            pass,
            drop,
            classes,
            unstopped: unstopped_by_class,
            cpu_packets,
        };
        self.totals = [self.totals[1].take(), Some(now)];
    }

    /// Seconds between the last two samples, and the samples.
    fn interval(&self) -> Option<(f64, &Totals, &Totals)> {
        let [Some(a), Some(b)] = &self.totals else {
            return None;
        };
        let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
        Some((secs, a, b))
    }

    /// Packets and bits per second between the last two samples.
    pub fn rates(&self) -> RatesView {
        let Some((secs, a, b)) = self.interval() else {
            return RatesView::default();
        };
        let per_sec = |x: u64, y: u64| (y.saturating_sub(x) as f64 / secs) as u64;
        RatesView {
            pass_pps: per_sec(a.pass.0, b.pass.0),
            pass_bps: per_sec(a.pass.1.saturating_mul(8), b.pass.1.saturating_mul(8)),
            drop_pps: per_sec(a.drop.0, b.drop.0),
            drop_bps: per_sec(a.drop.1.saturating_mul(8), b.drop.1.saturating_mul(8)),
        }
    }

    /// Packets per second per class between the last two samples.
    pub fn class_rates(&self) -> Option<[u64; Class::COUNT]> {
        let (secs, a, b) = self.interval()?;
        Some(per_second(&a.classes, &b.classes, secs))
    }

    /// Packets per second per class that no per-source stage stopped, between the last two
    /// samples.
    pub fn unstopped_rates(&self) -> Option<[u64; Class::COUNT]> {
        let (secs, a, b) = self.interval()?;
        Some(per_second(&a.unstopped, &b.unstopped, secs))
    }

    /// The highest packet rate one CPU of one interface saw between the last two samples:
    /// what the sketch gate of that program must hold at.
    pub fn max_cpu_pps(&self) -> Option<f64> {
        let (secs, a, b) = self.interval()?;
        if a.cpu_packets.len() != b.cpu_packets.len() {
            return None;
        }
        let max = a
            .cpu_packets
            .iter()
            .zip(&b.cpu_packets)
            .map(|(x, y)| y.saturating_sub(*x))
            .max()
            .unwrap_or(0);
        Some(max as f64 / secs)
    }

    /// Counts an error of the controller's loop.
    pub fn count_error(&self) {
        if let Ok(m) = self.metrics.lock() {
            m.errors.inc();
        }
    }

    /// Counts a change of a kernel setting strict depends on, made by someone else:
    /// `response` is `put_back` (a setting Levee owns) or `followed` (one it follows).
    pub fn count_kernel_change(&self, setting: &str, response: &str) {
        if let Ok(m) = self.metrics.lock() {
            m.kernel_setting_changes
                .get_or_create(&crate::metrics::SettingLabels {
                    setting: setting.to_string(),
                    response: response.to_string(),
                })
                .inc();
        }
    }

    /// Services the tables had no room for.
    pub fn set_services_left_out(&self, n: usize) {
        if let Ok(m) = self.metrics.lock() {
            m.services_left_out.set(n as i64);
        }
    }

    /// Counts a failed write of the state file.
    pub fn count_signature_found(&self) {
        if let Ok(m) = self.metrics.lock() {
            m.flood_signatures_found.inc();
        }
    }

    pub fn count_state_error(&self) {
        if let Ok(m) = self.metrics.lock() {
            m.state_write_errors.inc();
        }
    }

    pub fn count_decision(&self, kind: &str) {
        if let Ok(m) = self.metrics.lock() {
            m.decisions
                .get_or_create(&KindLabels {
                    kind: kind.to_string(),
                })
                .inc();
        }
    }
}

fn per_second(a: &[u64; Class::COUNT], b: &[u64; Class::COUNT], secs: f64) -> [u64; Class::COUNT] {
    let mut rates = [0u64; Class::COUNT];
    for (i, r) in rates.iter_mut().enumerate() {
        *r = (b[i].saturating_sub(a[i]) as f64 / secs) as u64;
    }
    rates
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Controller {
    /// Brings the Prometheus metrics up to date. Everything here is kept, never recounted:
    /// no list or table is walked.
    pub(super) fn update_metrics(&mut self, counters: &[(String, Counters)]) -> Result<()> {
        let mut m = self
            .telemetry
            .metrics
            .lock()
            .map_err(|_| anyhow!("metrics lock poisoned"))?;
        m.flood_signatures.set(self.flood.book.active.len() as i64);
        let max_tracked = self.settings.filter.sources.max_tracked;
        m.tracked_sources_capacity
            .set(i64::from(max_tracked) + i64::from(SOURCE_SLOT_COUNT));
        for iface in &self.fleet.interfaces {
            let tracked = iface.dp.tracked_sources_kept(max_tracked)?;
            m.tracked_sources
                .get_or_create(&InterfaceLabels {
                    interface: iface.name.clone(),
                })
                .set(tracked as i64);
        }
        for (name, c) in counters {
            for (action, reason, class, v) in c.non_zero() {
                let labels = PacketLabels {
                    interface: name.clone(),
                    action: action.name().to_string(),
                    reason: reason.name().to_string(),
                    class: class.name().to_string(),
                };
                m.observe_counter(labels, v.packets, v.bytes);
            }
        }
        let mode = self.mode.effective();
        for each in Mode::ALL {
            m.mode
                .get_or_create(&ModeLabels {
                    mode: each.name().to_string(),
                })
                .set(i64::from(each == mode));
        }
        for class in Class::ALL {
            let state = self.engine.state(class);
            let labels = ClassLabels {
                class: class.name().to_string(),
            };
            m.under_attack
                .get_or_create(&labels)
                .set(i64::from(state != AttackState::Normal));
            m.baseline
                .get_or_create(&labels)
                .set(self.engine.baseline_pps(class) as i64);
            for s in [
                AttackState::Normal,
                AttackState::UnderAttack,
                AttackState::Recovering,
            ] {
                m.attack_state
                    .get_or_create(&StateLabels {
                        class: class.name().to_string(),
                        state: s.name().to_string(),
                    })
                    .set(i64::from(s == state));
            }
        }
        for iface in &self.fleet.interfaces {
            let (offences, samples) = iface.dp.events_lost()?;
            m.observe_lost(&iface.name, offences, samples);
            m.observe_refused(&iface.name, iface.dp.sources_refused()?);
            m.observe_familiar_unrecorded(&iface.name, iface.dp.familiar_unrecorded()?);
        }
        m.gate_window.set(self.gate.window_secs());
        m.gate_threshold.set(i64::from(self.gate.threshold));
        m.strict_engaged.set(i64::from(self.strict.engaged));
        m.blocklist_entries.set(self.lists.block_count() as i64);
        m.allowlist_entries.set(self.lists.allow_count() as i64);
        m.tick();
        Ok(())
    }
}
