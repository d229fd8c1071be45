//! The sketch gate in the controller: narrowed as the packet rate of one CPU rises, widened
//! back when it falls (the sizing itself is in [`crate::dataplane::gate`]).

use tracing::{error, info};

use super::Controller;
use crate::dataplane::gate::{Gate, min_window_shift, next_gate};

impl Controller {
    /// The gate of the config file: the most sensitive one the controller may use.
    pub(crate) fn configured_gate(&self) -> Gate {
        let s = &self.settings.filter.sources;
        Gate {
            window_shift: s.sketch_window_shift,
            threshold: s.sketch_threshold,
        }
    }

    /// Once a tick, after the counters are sampled: the gate for the highest rate one CPU saw.
    pub(super) fn update_gate(&mut self) {
        let Some(pps) = self.telemetry.max_cpu_pps() else {
            return;
        };
        self.gate_pps = pps;
        let min_shift = min_window_shift(self.fleet.first().config().clock_ns_per_jiffy);
        let next = next_gate(self.gate, pps, self.configured_gate(), min_shift);
        if next == self.gate {
            return;
        }
        let before = std::mem::replace(&mut self.gate, next);
        match self.write_config() {
            Ok(()) => info!(
                window_ms = next.window_secs() * 1e3,
                threshold = next.threshold,
                tracked_above_pps = next.tracked_above_pps() as u64,
                cpu_pps = pps as u64,
                "sketch gate {}",
                if next.tracked_above_pps() > before.tracked_above_pps() {
                    "narrowed for the rate of one CPU"
                } else {
                    "widened"
                }
            ),
            Err(e) => {
                self.gate = before;
                self.telemetry.count_error();
                error!("cannot resize the sketch gate: {e:#}");
            }
        }
    }
}
