//! Telemetry: counter totals turned into rates, the program's events drained from its ring
//! (samples feed `levee top`, offences feed detection), and the Prometheus metrics.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use filter_common::abi::{Action, Class, Event, Mode, Reason, event};
use tracing::info;

use super::Controller;

/// Offences judged calm kept at most for a second look (a few seconds of the offence ring).
const MAX_CALM_OFFENCES: usize = 10_000;
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

/// Offence events logged one by one per tick; past that they are summed in one line.
const OFFENCES_LOGGED_PER_TICK: usize = 20;

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
                if unstopped(reason) {
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

/// Whether a packet counted with `reason` came from a source within its own limits and
/// met no rule: what is left of a flood once the lists, the signatures and the per-source
/// limiter have had it. Strict's budget for unknown sources comes after the limiter, so what
/// it refuses counts too: the measure does not change when the budget engages.
fn unstopped(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Clean | Reason::UnknownBudget | Reason::SynCookie | Reason::SynNoCookie
    )
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
    /// Reads what the program reported: its rare diagnostics (forwarded to the log), offences
    /// (each logged, summed past a few per drain, and kept for the engine's next tick), then
    /// sampled headers (for `levee top`).
    /// Runs ten times a second, so the rings rarely fill; what a full ring lost is counted.
    pub fn drain_events(&mut self) {
        let offenders = &mut self.pending_offences;
        for iface in &mut self.fleet.interfaces {
            // The program's rare diagnostics, forwarded to the log with the interface named.
            iface.dp.flush_log();
            let mut offences = 0usize;
            while let Some(item) = iface.offences.next() {
                let Some(e) = read_event(&item) else { continue };
                let (src, class) = (source(&e), Class::ALL.get(e.class as usize).copied());
                if let Some(class) = class {
                    offenders.push((src, class));
                }
                offences += 1;
                if offences <= OFFENCES_LOGGED_PER_TICK {
                    info!(
                        iface = %iface.name,
                        source = %src,
                        class = class.map_or("?", |c| c.name()),
                        offences = e.offences,
                        "source over its limit, penalty started"
                    );
                }
            }
            if offences > OFFENCES_LOGGED_PER_TICK {
                info!(
                    iface = %iface.name,
                    more = offences - OFFENCES_LOGGED_PER_TICK,
                    "more sources went over their limits"
                );
            }
            while let Some(item) = iface.events.next() {
                if let Some(e) = read_event(&item)
                    && e.kind == event::SAMPLE
                {
                    self.telemetry
                        .top
                        .record(source(&e), e.class, e.action, e.len);
                    self.telemetry.shapes.record(
                        destination(&e),
                        e.class,
                        e.proto,
                        e.src_port,
                        e.dst_port,
                    );
                }
            }
        }
    }

    /// Feeds the offences drained since the last tick to the engine, after it has seen this
    /// tick's rates: an offence in the second an attack starts is judged under attack.
    pub(super) fn judge_offences(&mut self) {
        // Only offences of verified sources may become a block of every class (`verified`);
        // the others stay penalties in their own class.
        let recent = self.calm_window();
        self.calm_offences.retain(|(t, _, _)| t.elapsed() < recent);
        let mut decisions = Vec::new();
        for (src, class) in std::mem::take(&mut self.pending_offences) {
            if !self.offence_is_evidence(src, class) {
                continue;
            }
            match self.engine.offence(src, class) {
                Some(d) => decisions.push(d),
                // Judged calm: kept a moment, in case the attack it belongs to is declared
                // at the next tick (a flood that began late in this tick's second).
                None if self.calm_offences.len() < MAX_CALM_OFFENCES => {
                    self.calm_offences.push((Instant::now(), src, class))
                }
                None => {}
            }
        }
        for decision in decisions {
            self.apply(decision);
        }
    }

    /// How long an offence judged calm waits for its attack to be declared.
    fn calm_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.detection.onset_secs) + 2)
    }

    /// An attack on `class` was just declared: offences of that class judged calm in the
    /// last seconds are judged again, under attack.
    pub(super) fn rejudge_calm_offences(&mut self, class: Class) {
        let recent = self.calm_window();
        self.calm_offences.retain(|(t, _, _)| t.elapsed() < recent);
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.calm_offences)
            .into_iter()
            .partition(|(_, _, c)| *c == class);
        self.calm_offences = keep;
        let decisions: Vec<_> = due
            .into_iter()
            .filter_map(|(_, src, c)| self.engine.offence(src, c))
            .collect();
        for decision in decisions {
            self.apply(decision);
        }
    }

    /// Brings the Prometheus metrics up to date. Everything here is kept, never recounted:
    /// no list or table is walked.
    pub(super) fn update_metrics(&mut self, counters: &[(String, Counters)]) -> Result<()> {
        let mut m = self
            .telemetry
            .metrics
            .lock()
            .map_err(|_| anyhow!("metrics lock poisoned"))?;
        let capacity = self.settings.filter.sources.max_tracked;
        m.tracked_sources_capacity.set(i64::from(capacity));
        for iface in &self.fleet.interfaces {
            let added = iface.dp.sources_added()?;
            m.tracked_sources
                .get_or_create(&InterfaceLabels {
                    interface: iface.name.clone(),
                })
                .set(added.min(u64::from(capacity)) as i64);
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

/// One record of a ring, if it is whole.
fn read_event(item: &[u8]) -> Option<Event> {
    if item.len() < std::mem::size_of::<Event>() {
        return None;
    }
    // SAFETY: the program writes whole `Event` records; read_unaligned copes with the ring's
    // 8-byte alignment.
    Some(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) })
}

fn source(e: &Event) -> IpAddr {
    address(e.family, e.src)
}

fn destination(e: &Event) -> IpAddr {
    address(e.family, e.dst)
}

fn address(family: u8, a: [u8; 16]) -> IpAddr {
    if family == 6 {
        IpAddr::from(a)
    } else {
        IpAddr::from([a[0], a[1], a[2], a[3]])
    }
}
