//! Strict's trigger in the program: strict engages on a CPU within milliseconds of a spread
//! flood's onset, without waiting for the controller's next tick.
//!
//! Packets of sources the per-source stage has no state for (below its sketch gate: light
//! sources, which a random-source flood is made of) fill a per-CPU bucket per class at the
//! class's onset rate. Past the bucket's depth, strict holds on that CPU for
//! `trigger_hold_ns`: every class, as the controller engages it for any attacked class, and
//! the UDP budget if the class was UDP. While it holds, what strict refuses of unknown
//! sources renews it. A flood with a few faces never fills the bucket: its sources are
//! heavy, tracked and penalised by the limiter. The controller confirms, extends or releases
//! strict as its detection engine decides.

use filter_common::{
    abi::{Class, Config, Mode, flags},
    limit::gcra,
};

use crate::{
    limiter::Clock,
    maps::{CONFIG, TRIGGER},
};

/// Whether the trigger holds strict on this CPU (for any class). Reads CONFIG itself, so
/// the entry can ask before anything else.
#[inline(always)]
pub fn held_any() -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return false;
    };
    if cfg.flags & flags::TRIGGER == 0 {
        return false;
    }
    let Some(t) = TRIGGER.get(0) else {
        return false;
    };
    t.held_until != 0 && Clock::new(cfg).now() < t.held_until
}

/// Whether the trigger holds strict on this CPU because of `class`.
#[inline(always)]
pub fn holds(cfg: &Config, class: Class, clock: &mut Clock) -> bool {
    if cfg.flags & flags::TRIGGER == 0 {
        return false;
    }
    let Some(t) = TRIGGER.get(0) else {
        return false;
    };
    match t
        .engaged_until
        .get(core::hint::black_box(class as u32) as usize)
    {
        Some(&until) => until != 0 && clock.now() < until,
        None => false,
    }
}

/// The mode a packet is judged in: `monitor` enforces while the trigger holds, with
/// `auto_enforce` (as detection switches it for an attack).
#[inline(always)]
pub fn mode(cfg: &Config, held: bool) -> Mode {
    let mode = Mode::from_u32(cfg.mode);
    if held && mode == Mode::Monitor && cfg.flags & flags::AUTO_ENFORCE != 0 {
        Mode::Enforce
    } else {
        mode
    }
}

/// Counts a packet of `class` from a source without state: past the bucket, strict engages,
/// or stays engaged, on this CPU. Inline: a spread flood's every packet comes here, and a
/// call would cost it more than the checks.
#[inline(always)]
pub fn note(cfg: &Config, class: u32, now: u64) {
    if cfg.flags & flags::TRIGGER == 0 {
        return;
    }
    // Hidden from LLVM, which knows every caller's class is in range and would drop the
    // bounds checks the verifier needs.
    let c = core::hint::black_box(class) as usize;
    let (Some(&cost), Some(&burst)) = (cfg.trigger_cost_ns.get(c), cfg.trigger_burst_ns.get(c))
    else {
        return;
    };
    if cost == 0 {
        return;
    }
    let Some(t) = TRIGGER.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let t = unsafe { &mut *t };
    let (Some(tat), Some(until), Some(since), Some(n)) = (
        t.tat.get_mut(c),
        t.engaged_until.get_mut(c),
        t.since.get_mut(c),
        t.engagements.get_mut(c),
    ) else {
        return;
    };
    match gcra(*tat, now, cost, burst) {
        Some(next) => *tat = next,
        None => {
            if *until <= now {
                *since = now;
                *n += 1;
            }
            *until = now + cfg.trigger_hold_ns;
            if t.held_until < *until {
                t.held_until = *until;
            }
        }
    }
}

/// A packet strict refused while the trigger holds: counted as [`note`] counts one.
#[inline(always)]
pub fn renew(cfg: &Config, class: u32) {
    note(cfg, class, Clock::new(cfg).now());
}
