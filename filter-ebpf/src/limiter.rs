//! Per-source and aggregate rate limits.
//!
//! Every source is counted in a fixed-memory per-CPU count-min sketch; only a source whose
//! estimate reaches `sketch_threshold` packets in one window (or saturated the previous one)
//! is looked up in, or given an exact entry in, the per-source tables: its slot of
//! SOURCE_SLOTS (an array the verifier inlines) or, when another source holds that slot,
//! the SOURCES LRU. One-packet spoofed sources therefore do not churn the tables, and heavy
//! sources keep their buckets through a random-source flood. The controller shortens the
//! sketch's window as the rate per CPU rises (`controller::gate`), and new entries come from
//! a per-CPU bucket, so even the sources that slip through the gate before the controller
//! reacts cannot turn the LRU over. A tracked source over its limit is dropped and serves a
//! penalty held in its own entry; the offence goes to user space as an event.

use aya_ebpf::{
    helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns},
    maps::PerCpuArray,
};
use filter_common::{
    abi::{Class, Config, CpuState, Reason, SKETCH_WIDTH, SourceSlot, SourceState, source_slot},
    config::{source_key_v4, source_key_v6},
    limit::{
        admit, gcra, is_unlimited, sketch_bump, sketch_cell_first, sketch_cell_hot, sketch_epoch,
        sketch_slots,
    },
    parse::IpPacket,
    stage::source,
};

use crate::{
    events, familiar,
    maps::{FRESH_SOURCE, SLOTS_GIVEN, SOURCE_SLOTS, SOURCES, SOURCES_ADDED},
    trigger,
};

/// Reads the time at most once per packet, and only if a stage needs it, in the domain of
/// CLOCK_MONOTONIC_COARSE: from jiffies (the verifier inlines bpf_jiffies64 into a load),
/// scaled with the loader's calibration; see [`Config::clock_ns_per_jiffy`].
pub struct Clock {
    now: u64,
    ns_per_jiffy: u64,
    offset: u64,
}

impl Clock {
    #[inline(always)]
    pub fn new(cfg: &Config) -> Clock {
        Clock {
            now: 0,
            ns_per_jiffy: cfg.clock_ns_per_jiffy,
            offset: cfg.clock_offset_ns,
        }
    }

    #[inline(always)]
    pub fn now(&mut self) -> u64 {
        if self.now == 0 {
            // SAFETY: helpers without arguments.
            self.now = if self.ns_per_jiffy != 0 {
                let jiffies = unsafe { bpf_jiffies64() };
                jiffies
                    .wrapping_mul(self.ns_per_jiffy)
                    .wrapping_add(self.offset)
            } else {
                unsafe { bpf_ktime_get_coarse_ns() }
            };
        }
        self.now
    }
}

/// A class as an index the verifier sees checked: Rust knows a `Class` is below
/// `Class::COUNT` and drops the bounds check of `get`, but a class read back from memory is
/// any number to the verifier.
#[inline(always)]
fn class_index(class: Class) -> usize {
    core::hint::black_box(class as u32) as usize
}

/// Applies the source's limit for the packet's class; `Some(reason)` if it must be refused.
///
/// The sketch comes first: it is small and stays in cache, while the tables are large, so a
/// spoofed one-packet source costs a few cached cell updates and never touches them. A
/// tracked source's state is charged where it lives (its slot or its SOURCES entry), through
/// one path whichever table holds it.
#[inline(never)]
pub fn source(
    cfg: &Config,
    cpu: &mut CpuState,
    pkt: &IpPacket,
    len: u64,
    clock: &mut Clock,
) -> Option<Reason> {
    let c = class_index(pkt.class);
    let limit = cfg.source.get(c)?;
    let key = if pkt.v6 {
        source_key_v6(&pkt.src, cfg.source_mask_v6)
    } else {
        source_key_v4(
            [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]],
            cfg.source_mask_v4,
        )
    };
    let now = clock.now();
    if !sketch_hot(cfg, cpu, key, now) {
        // A source the stage has no state for: what a spread flood is made of.
        trigger::note(cfg, c as u32, now);
        return None;
    }
    // Its slot first (an array lookup, inlined), SOURCES (a call) only if another holds it.
    let slot = SOURCE_SLOTS.get_ptr_mut(source_slot(key));
    let state = match slot {
        // SAFETY: a live array value.
        Some(s) if unsafe { (*s).holds(key) } => unsafe { &raw mut (*s).state },
        _ => match SOURCES.get_ptr_mut(&key) {
            Some(state) => state,
            None => {
                if is_unlimited(limit) || !new_source_allowed(cfg, cpu, now) {
                    return None;
                }
                match claim(slot, key, now).or_else(|| track(key)) {
                    Some(state) => state,
                    None => return None,
                }
            }
        },
    };
    // SAFETY: a live map value; concurrent CPUs may race on it, which only blurs a count.
    let state = unsafe { &mut *state };
    let blocked_until = *state.blocked_until.get(c)?;
    let (pkt_tat, byte_tat) = (state.pkt_tat.get_mut(c)?, state.byte_tat.get_mut(c)?);
    let verdict = source::judge(blocked_until, pkt_tat, byte_tat, limit, len, now);
    if verdict == Some(Reason::SourceRate) {
        offend(cfg, state, pkt, len, now);
    }
    verdict
}

/// Gives a new source its slot if the slot is free or its source at rest: the state left
/// there then decides as a fresh one would, so only the offence count starts again (no
/// copy of a whole state, whose byte loop the verifier would walk). Two CPUs giving one
/// slot to two sources at once leave both on one state: a blurred count, as in any race
/// on an entry.
#[inline(always)]
fn claim(slot: Option<*mut SourceSlot>, key: u64, now: u64) -> Option<*mut SourceState> {
    let s = slot?;
    // SAFETY: a live array value.
    let free = unsafe {
        if key == 0 || !(*s).state.at_rest(now) {
            return None;
        }
        let free = (*s).key == 0;
        (*s).key = key;
        (*s).state.offences = 0;
        free
    };
    count_added();
    count(&SLOTS_GIVEN, 0);
    if free {
        count(&SLOTS_GIVEN, 1);
    }
    // SAFETY: as above.
    Some(unsafe { &raw mut (*s).state })
}

/// Gives a new source whose slot another holds a fresh entry in SOURCES, copied from
/// FRESH_SOURCE (a map value: no state built on the stack, no zeroing loop), and returns it
/// to be charged as any entry. A full LRU evicts its least recently used entry; failure
/// only means the source stays untracked.
#[inline(always)]
fn track(key: u64) -> Option<*mut SourceState> {
    let fresh = FRESH_SOURCE.get(0)?;
    SOURCES.insert(&key, fresh, 0).ok()?;
    count_added();
    SOURCES.get_ptr_mut(&key)
}

/// Counts a source given a slot or an entry.
#[inline(always)]
fn count_added() {
    count(&SOURCES_ADDED, 0);
}

#[inline(always)]
fn count(counts: &PerCpuArray<u64>, index: u32) {
    if let Some(n) = counts.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *n += 1 };
    }
}

/// Pays for a new SOURCES entry from this CPU's bucket of them. A source refused stays
/// untracked (it passes this stage, as one below the gate does) and is counted.
#[inline(always)]
fn new_source_allowed(cfg: &Config, cpu: &mut CpuState, now: u64) -> bool {
    if cfg.new_source_cost_ns == 0 {
        return true;
    }
    if let Some(tat) = gcra(
        cpu.new_source_tat,
        now,
        cfg.new_source_cost_ns,
        cfg.new_source_burst_ns,
    ) {
        cpu.new_source_tat = tat;
        return true;
    }
    count(&SOURCES_ADDED, 1);
    false
}

/// Counts the source in this CPU's sketch; true while it is heavy enough to track exactly.
/// The first packet of its cell in a window is a sighting for `familiar` (about once a window
/// per source, however fast it sends).
#[inline(always)]
fn sketch_hot(cfg: &Config, cpu: &mut CpuState, key: u64, now: u64) -> bool {
    let epoch = sketch_epoch(now, cfg.sketch_window_shift);
    let [s0, s1] = sketch_slots(key, cfg.sketch_seed);
    let mask = SKETCH_WIDTH - 1;
    let c0 = sketch_bump(cpu.sketch[0][s0 & mask], epoch);
    cpu.sketch[0][s0 & mask] = c0;
    let c1 = sketch_bump(cpu.sketch[1][s1 & mask], epoch);
    cpu.sketch[1][s1 & mask] = c1;
    if sketch_cell_first(c0) {
        familiar::sighted();
    }
    sketch_cell_hot(c0, cfg.sketch_threshold) && sketch_cell_hot(c1, cfg.sketch_threshold)
}

/// Starts a penalty and reports the offence (every penalty, or only the first offence when
/// there is no penalty time, so a steady excess cannot flood the ring buffer).
#[inline(always)]
fn offend(cfg: &Config, state: &mut SourceState, pkt: &IpPacket, len: u64, now: u64) {
    state.offences = state.offences.wrapping_add(1);
    if cfg.penalty_ns != 0
        && let Some(until) = state.blocked_until.get_mut(class_index(pkt.class))
    {
        *until = now + cfg.penalty_ns;
    }
    if cfg.penalty_ns != 0 || state.offences == 1 {
        events::offence(pkt, state.offences, len, now);
    }
}

/// Applies the per-CPU share of the class ceiling; false if the packet must be refused.
#[inline(always)]
pub fn aggregate(
    cfg: &Config,
    cpu: &mut CpuState,
    class: Class,
    len: u64,
    clock: &mut Clock,
) -> bool {
    let c = class_index(class);
    let Some(limit) = cfg.aggregate.get(c) else {
        return true;
    };
    if is_unlimited(limit) {
        return true;
    }
    let now = clock.now();
    match (cpu.agg_pkt_tat.get_mut(c), cpu.agg_byte_tat.get_mut(c)) {
        (Some(p), Some(b)) => admit(p, b, limit, len, now),
        _ => true,
    }
}
