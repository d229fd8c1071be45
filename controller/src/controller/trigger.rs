//! Strict's trigger in the program (filter-ebpf's `trigger`): the controller gives it each
//! class's onset line, shared by the CPUs, and reports what it did. An engagement is logged
//! and counted when the controller next looks; `levee status` shows where it holds.

use std::time::Duration;

use filter_common::abi::{Class, Config, TriggerState, flags};
use tracing::{error, warn};

use super::Controller;
use crate::{config::StrictMode, dataplane::monotonic_coarse_ns};

/// How far a class's onset rate may be exceeded on one CPU before the program engages
/// strict there: 10 ms of the rate, and at least 200 packets, so a handful of new clients
/// arriving together is no flood. A spread flood of 300,000 packets a second engages it
/// within a millisecond.
pub const TRIGGER_DEPTH: Duration = Duration::from_millis(10);
pub const TRIGGER_DEPTH_PACKETS: u64 = 200;
/// How long one excess holds strict on its CPU; the flood renews it while it lasts.
pub const TRIGGER_HOLD: Duration = Duration::from_secs(1);

/// What the controller knows of the program's trigger.
#[derive(Debug, Default)]
pub(crate) struct Trigger {
    /// The per-CPU costs last written (see [`trigger_costs`]).
    written: [u64; Class::COUNT],
    /// Engagements per class the program had counted at the last look, all CPUs.
    engagements: [u64; Class::COUNT],
    /// Classes whose trigger holds strict on some CPU now.
    pub held: Vec<Class>,
}

/// The cost in ns of one packet at each class's onset rate, as one CPU's share.
fn trigger_costs(controller: &Controller) -> [u64; Class::COUNT] {
    let cpus = u64::from(controller.cpus.max(1));
    let mut costs = [0; Class::COUNT];
    for class in Class::ALL {
        let per_cpu = controller.engine.onset_pps(class).div_ceil(cpus).max(1);
        costs[class as usize] = 1_000_000_000 / per_cpu;
    }
    costs
}

impl Controller {
    /// Writes the trigger's part of the program's configuration.
    pub(crate) fn trigger_config(&self, c: &mut Config) {
        let detection = &self.settings.detection;
        let on = self.settings.strict.mode != StrictMode::Off && detection.enabled;
        c.set_flag(flags::TRIGGER, on);
        c.set_flag(flags::AUTO_ENFORCE, on && detection.auto_enforce);
        c.trigger_cost_ns = trigger_costs(self);
        for (burst, cost) in c.trigger_burst_ns.iter_mut().zip(c.trigger_cost_ns) {
            *burst = (TRIGGER_DEPTH.as_nanos() as u64).max(TRIGGER_DEPTH_PACKETS * cost);
        }
        c.trigger_hold_ns = TRIGGER_HOLD.as_nanos() as u64;
    }

    /// Once a tick: moves the trigger's lines with the learned baselines (a change of more
    /// than a tenth is written), and reports the engagements the program made.
    pub(super) fn update_trigger(&mut self) {
        let costs = trigger_costs(self);
        let moved = costs
            .iter()
            .zip(self.strict.trigger.written)
            .any(|(now, was)| now.abs_diff(was) * 10 > was);
        if moved {
            match self.write_config() {
                Ok(()) => self.strict.trigger.written = costs,
                Err(e) => {
                    self.telemetry.count_error();
                    error!("cannot move strict's trigger lines: {e:#}");
                }
            }
        }
        match self.fleet.triggers() {
            Ok(cpus) => self.report_triggers(&cpus),
            Err(e) => {
                self.telemetry.count_error();
                error!("cannot read strict's trigger: {e:#}");
            }
        }
    }

    fn report_triggers(&mut self, cpus: &[TriggerState]) {
        let now = monotonic_coarse_ns();
        let mut held = Vec::new();
        for class in Class::ALL {
            let c = class as usize;
            let total: u64 = cpus.iter().map(|t| t.engagements[c]).sum();
            let seen = self.strict.trigger.engagements[c];
            if total > seen {
                if let Ok(m) = self.telemetry.metrics.lock() {
                    m.strict_triggers
                        .get_or_create(&crate::metrics::ClassLabels {
                            class: class.name().to_string(),
                        })
                        .inc_by(total - seen);
                }
                warn!(
                    class = class.name(),
                    engagements = total - seen,
                    "strict engaged in the program: a spread flood's onset"
                );
            }
            self.strict.trigger.engagements[c] = total;
            if cpus.iter().any(|t| t.engaged_until[c] > now) {
                held.push(class);
            }
        }
        self.strict.trigger.held = held;
    }
}
