//! Sizing the sketch gate for the rate the program sees.
//!
//! The gate (see `filter-ebpf/src/limiter.rs`) gives a source an exact SOURCES entry once both
//! of its cells in the per-CPU count-min sketch reach `threshold` packets in one window. A
//! random-source flood of `R` packets a second per CPU puts `R x window / width` packets in
//! every cell, so at some rate one-packet sources start to pass: at the default window
//! (16.8 ms) that happens around 3 Mpps per CPU, and at 10 Mpps nearly every spoofed packet
//! would. [`gate_for`] picks, for the rate measured, the longest window and lowest threshold
//! (the most sensitive gate) that still lets fewer than [`MAX_FALSE_TRACKED`] one-packet
//! sources a second through, never more sensitive than the operator configured.
//!
//! The price is stated in [`Gate::tracked_above_pps`]: during such a flood, only sources above
//! that rate per CPU get per-source limits; the rest still meet strict mode, the signatures and
//! the aggregate ceilings.

use filter_common::{
    abi::{SKETCH_ROWS, SKETCH_WIDTH},
    limit::SKETCH_MAX_THRESHOLD,
};

/// One-packet sources a second per CPU the gate may let through by chance (each then costs a
/// lookup in the table and, within the budget of new entries, an entry).
pub const MAX_FALSE_TRACKED: f64 = 1000.0;

/// The shortest window the gate uses, 2^16 ns (66 µs), with a nanosecond clock.
const MIN_SHIFT_NS_CLOCK: u32 = 16;

/// A gate setting: windows of 2^`window_shift` ns, `threshold` packets in a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    pub window_shift: u32,
    pub threshold: u32,
}

impl Gate {
    pub fn window_secs(&self) -> f64 {
        (1u64 << self.window_shift) as f64 / 1e9
    }

    /// The rate (per CPU) above which a steady source is sure to be tracked.
    pub fn tracked_above_pps(&self) -> f64 {
        self.threshold as f64 / self.window_secs()
    }

    /// One-packet sources a second per CPU expected through the gate at `pps` per CPU. A cell
    /// is hot if it counted `threshold` packets this window or saturated (15) the last one;
    /// the rows hash independently, so a source passes with the square of that chance.
    pub fn false_tracked(&self, pps: f64) -> f64 {
        let per_cell = pps * self.window_secs() / SKETCH_WIDTH as f64;
        let hot = (poisson_tail(per_cell, self.threshold)
            + poisson_tail(per_cell, SKETCH_MAX_THRESHOLD))
        .min(1.0);
        pps * hot.powi(SKETCH_ROWS as i32)
    }
}

/// The shortest window the program's clock can keep apart: a jiffy-driven clock moves in
/// whole jiffies, and a window shorter than one would skip epochs (3 bits), so a cell from
/// eight windows ago could pass for a fresh one.
pub fn min_window_shift(ns_per_jiffy: u64) -> u32 {
    if ns_per_jiffy == 0 {
        return MIN_SHIFT_NS_CLOCK;
    }
    (u64::BITS - (ns_per_jiffy - 1).leading_zeros()).max(MIN_SHIFT_NS_CLOCK)
}

/// The most sensitive gate, no more sensitive than `configured`, that keeps
/// [`Gate::false_tracked`] at `pps` under [`MAX_FALSE_TRACKED`]; if none does, the one that
/// lets fewest through.
pub fn gate_for(pps: f64, configured: Gate, min_shift: u32) -> Gate {
    let longest = configured.window_shift.max(min_shift);
    let mut best: Option<Gate> = None;
    let mut safest = Gate {
        window_shift: longest,
        threshold: configured.threshold,
    };
    for window_shift in (min_shift..=longest).rev() {
        for threshold in configured.threshold..=SKETCH_MAX_THRESHOLD {
            let g = Gate {
                window_shift,
                threshold,
            };
            let fp = g.false_tracked(pps);
            if fp < safest.false_tracked(pps) {
                safest = g;
            }
            if fp <= MAX_FALSE_TRACKED
                && best.is_none_or(|b| g.tracked_above_pps() < b.tracked_above_pps())
            {
                best = Some(g);
            }
        }
    }
    best.unwrap_or(safest)
}

/// The next gate from the current one at `pps`: tightened at once (with a quarter of headroom
/// for the rate still rising), relaxed only once twice the rate would allow it, so a rate
/// near a boundary does not flip the gate every second.
pub fn next_gate(current: Gate, pps: f64, configured: Gate, min_shift: u32) -> Gate {
    let tight = gate_for(pps * 1.25, configured, min_shift);
    if tight.tracked_above_pps() > current.tracked_above_pps() {
        return tight;
    }
    let relaxed = gate_for(pps * 2.0, configured, min_shift);
    if relaxed.tracked_above_pps() < current.tracked_above_pps() {
        return relaxed;
    }
    current
}

/// P(X >= k) for X ~ Poisson(mean), summed upward from k so small tails stay exact.
fn poisson_tail(mean: f64, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if mean <= 0.0 {
        return 0.0;
    }
    // pmf(k) = e^-mean mean^k / k!, in logs to stay finite.
    let ln_fact: f64 = (1..=k).map(|i| (i as f64).ln()).sum();
    let mut term = (-mean + k as f64 * mean.ln() - ln_fact).exp();
    let mut sum = 0.0;
    let mut i = k;
    while term > sum * 1e-12 && i < k + 10_000 {
        sum += term;
        i += 1;
        term *= mean / i as f64;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Gate = Gate {
        window_shift: 24,
        threshold: 8,
    };
    /// CONFIG_HZ=250: 4 ms jiffies, windows of at least 2^22 ns.
    const JIFFY_4MS: u32 = 22;

    #[test]
    fn poisson_tail_matches_known_values() {
        assert!((poisson_tail(1.0, 1) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        // P(X >= 8 | 5) = 0.1334 (tables).
        assert!((poisson_tail(5.0, 8) - 0.1334).abs() < 1e-3);
        assert!(poisson_tail(0.1, 15) < 1e-20);
    }

    #[test]
    fn the_default_gate_fails_at_3_mpps_and_lets_nearly_all_through_at_10() {
        assert!(DEFAULT.false_tracked(100_000.0) < 1.0);
        assert!(DEFAULT.false_tracked(3e6) > 100_000.0);
        assert!(DEFAULT.false_tracked(10e6) > 5e6);
    }

    #[test]
    fn calm_rates_keep_the_configured_gate() {
        for pps in [0.0, 1000.0, 500_000.0] {
            assert_eq!(gate_for(pps, DEFAULT, JIFFY_4MS), DEFAULT, "{pps}");
        }
    }

    #[test]
    fn the_gate_holds_at_10_mpps_per_cpu() {
        for pps in [3e6, 5e6, 10e6] {
            let g = gate_for(pps, DEFAULT, JIFFY_4MS);
            assert!(g.false_tracked(pps) <= MAX_FALSE_TRACKED, "{pps}: {g:?}");
            assert!(g.window_shift >= JIFFY_4MS);
        }
        let g = gate_for(10e6, DEFAULT, JIFFY_4MS);
        assert!(
            g.tracked_above_pps() < 5000.0,
            "sources above {} pps per CPU still tracked",
            g.tracked_above_pps()
        );
    }

    #[test]
    fn the_gate_never_gets_more_sensitive_than_configured() {
        let configured = Gate {
            window_shift: 23,
            threshold: 12,
        };
        let g = gate_for(0.0, configured, JIFFY_4MS);
        assert_eq!(g, configured);
        let g = gate_for(10e6, configured, JIFFY_4MS);
        assert!(g.window_shift <= 23 && g.threshold >= 12);
    }

    #[test]
    fn min_shift_covers_a_jiffy() {
        assert_eq!(min_window_shift(4_000_000), 22);
        assert_eq!(min_window_shift(1_000_000), 20);
        assert_eq!(min_window_shift(1 << 20), 20);
        assert_eq!(min_window_shift(0), MIN_SHIFT_NS_CLOCK);
    }

    #[test]
    fn the_gate_tightens_at_once_and_relaxes_with_headroom() {
        let tight = next_gate(DEFAULT, 10e6, DEFAULT, JIFFY_4MS);
        assert!(tight.tracked_above_pps() > DEFAULT.tracked_above_pps());
        // A slight fall in rate keeps it; calm brings the configured gate back.
        assert_eq!(next_gate(tight, 9e6, DEFAULT, JIFFY_4MS), tight);
        assert_eq!(next_gate(tight, 10_000.0, DEFAULT, JIFFY_4MS), DEFAULT);
    }
}
