//! Per-source and aggregate rate limits.
//!
//! Every source is counted in a fixed-memory per-CPU count-min sketch; only a source whose
//! estimate reaches `sketch_threshold` packets in one window (or saturated the previous one)
//! is looked up in, or given an exact entry in, the SOURCES LRU. One-packet spoofed sources
//! therefore do not churn the LRU, and heavy sources keep their buckets through a
//! random-source flood. The controller shortens the sketch's window as the rate per CPU
//! rises (`controller::gate`), and new entries come from a per-CPU bucket, so even the
//! sources that slip through the gate before the controller reacts cannot turn the LRU over. A tracked source over its limit is dropped and serves
//! a penalty held in its own entry; the offence goes to user space as an event.

use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};
use filter_common::{
    abi::{Class, Config, CpuState, Reason, SKETCH_WIDTH, SourceState},
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
    maps::{SOURCES, SOURCES_ADDED},
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
/// The sketch comes first: it is small and stays in cache, while the LRU table is large, so a
/// spoofed one-packet source costs a few cached cell updates and never touches the table.
/// A function of its own (a BPF-to-BPF call): a new source's state is built in its own stack
/// frame, apart from the strict stage's.
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
    if let Some(state) = SOURCES.get_ptr_mut(&key) {
        // SAFETY: a live LRU value; concurrent CPUs may race on it, which only blurs a count.
        let state = unsafe { &mut *state };
        let blocked_until = *state.blocked_until.get(c)?;
        let (pkt_tat, byte_tat) = (state.pkt_tat.get_mut(c)?, state.byte_tat.get_mut(c)?);
        let verdict = source::judge(blocked_until, pkt_tat, byte_tat, limit, len, now);
        if verdict == Some(Reason::SourceRate) {
            offend(cfg, state, pkt, len, now);
        }
        return verdict;
    }
    if is_unlimited(limit) || !new_source_allowed(cfg, cpu, now) {
        return None;
    }
    // Zeroing compiles to a memset call (a byte loop), paid only when a heavy source is
    // first tracked; hand-written zeroing made the verifier's walk explode.
    let mut state = SourceState::default();
    let admitted = match (state.pkt_tat.get_mut(c), state.byte_tat.get_mut(c)) {
        (Some(p), Some(b)) => admit(p, b, limit, len, now),
        _ => true,
    };
    if !admitted {
        offend(cfg, &mut state, pkt, len, now);
    }
    // A full LRU evicts its least recently used entry; failure only means we stay untracked.
    if SOURCES.insert(&key, &state, 0).is_ok()
        && let Some(added) = SOURCES_ADDED.get_ptr_mut(0)
    {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *added += 1 };
    }
    if admitted {
        None
    } else {
        Some(Reason::SourceRate)
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
    if let Some(refused) = SOURCES_ADDED.get_ptr_mut(1) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *refused += 1 };
    }
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
