//! Familiar sources: addresses that sent UDP within their limits while calm (strict not
//! engaged), as the per-source stage sees them. The host need not have answered them: a one-way crowd (telemetry, game input,
//! ingest) is familiar too. While strict's UDP budget applies, a familiar source passes
//! before the unknown sources' budget is spent; the per-source limiter still holds it.
//! A spoofed flood can make familiar only the addresses it sent from while calm. Each
//! familiar source's network (/24, /48) is remembered too: an unknown source from one takes
//! its service's second budget, apart from a random-source flood's.

use filter_common::{
    abi::{Config, FAMILIAR_REFRESH_NS, Familiar, familiar_net_key, flags, verified_key},
    limit::gcra,
    parse::IpPacket,
};

use crate::maps::{CPU_STATE, FAMILIAR, FAMILIAR_ADDED, SCRATCH};

/// The per-source stage counted a source's first packet of its sketch cell in this window
/// (about once a window per source, however fast it sends): the next clean datagram on this
/// CPU, this one unless a stage refuses it, records its source ([`take_sighted`]). So the
/// calm path pays a table lookup rarely, and only a clean datagram's source is recorded.
#[inline(always)]
pub fn sighted() {
    if let Some(s) = SCRATCH.get_ptr_mut(0) {
        // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
        unsafe { (*s).sighted = 1 };
    }
}

/// Whether a sighting waits (and takes it).
#[inline(always)]
pub fn take_sighted() -> bool {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
    unsafe {
        if (*s).sighted == 0 {
            return false;
        }
        (*s).sighted = 0;
    }
    true
}

/// Remembers the packet's source as seen now, rewriting its last time at most every
/// [`FAMILIAR_REFRESH_NS`]; from its second sighting on, its network too (a spoofed source
/// seen once, as a random-source flood's are, adds one entry, not two). New entries come
/// from this CPU's bucket of them, and while it is empty no sighting is even looked up: a
/// spread flood while calm, every packet of it a sighting, would otherwise pay a lookup, an
/// LRU insert and an eviction per packet and push the crowd out of the table. The crowd
/// already familiar stays so (a refresh only moves a time), and a newcomer is recorded at
/// a later sighting. The bucket is asked inline, so a sighting it refuses costs no call.
#[inline(always)]
pub fn record(cfg: &Config, pkt: &IpPacket, now: u64) {
    let Some(cpu) = CPU_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU state, only this CPU touches it while the program runs.
    if new_entry(cfg, unsafe { (*cpu).familiar_new_tat }, now).is_none() {
        count(UNRECORDED);
        return;
    }
    look_up(cfg, pkt, now);
}

/// The sighting looked up and recorded. A function of its own, so the table's updates add a
/// call to the main program's verifier walk.
#[inline(never)]
fn look_up(cfg: &Config, pkt: &IpPacket, now: u64) {
    let Some(cpu) = CPU_STATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU state, only this CPU touches it while the program runs.
    let tat = unsafe { &mut (*cpu).familiar_new_tat };
    if remember(cfg, tat, &verified_key(&pkt.src, pkt.v6), now) {
        // Its network too: a newcomer from where the crowd comes gets a budget of its own.
        remember(cfg, tat, &familiar_net_key(&pkt.src, pkt.v6), now);
    }
}

/// Records `key` as seen now, a new entry paid from the bucket whose time is `tat`; whether
/// it was known before.
#[inline(always)]
fn remember(cfg: &Config, tat: &mut u64, key: &[u8; 16], now: u64) -> bool {
    if let Some(seen) = FAMILIAR.get_ptr_mut(key) {
        // SAFETY: a live LRU value; a race with another CPU only blurs a time.
        let seen = unsafe { &mut *seen };
        if now.wrapping_sub(seen.last_ns) > FAMILIAR_REFRESH_NS {
            seen.last_ns = now;
        }
        return true;
    }
    let Some(next) = new_entry(cfg, *tat, now) else {
        count(UNRECORDED);
        return false;
    };
    // A full table evicts its least recently used entry.
    let fresh = Familiar {
        first_ns: now,
        last_ns: now,
    };
    if FAMILIAR.insert(key, &fresh, 0).is_ok() {
        *tat = next;
        count(ADDED);
    }
    false
}

/// The bucket of new entries' time after paying for one, if it holds one.
#[inline(always)]
fn new_entry(cfg: &Config, tat: u64, now: u64) -> Option<u64> {
    if cfg.familiar_new_cost_ns == 0 {
        return Some(tat);
    }
    gcra(
        tat,
        now,
        cfg.familiar_new_cost_ns,
        cfg.familiar_new_burst_ns,
    )
}

/// FAMILIAR_ADDED's counts.
const ADDED: u32 = 0;
const UNRECORDED: u32 = 1;

/// Counts an entry added or a sighting left unrecorded on this CPU.
#[inline(always)]
fn count(index: u32) {
    if let Some(n) = FAMILIAR_ADDED.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *n += 1 };
    }
}

/// Whether the packet's source is familiar: it sent within its limits while calm in two
/// moments at least [`FAMILIAR_REFRESH_NS`] apart (a flood's first milliseconds, before strict
/// engages, make no source familiar), the last less than `familiar_ttl_ns` ago. A function
/// of its own: strict asks it of UDP under its budget and of SYNs under a SYN signature.
#[inline(never)]
pub fn known(cfg: &Config, pkt: &IpPacket, now: u64) -> bool {
    if cfg.flags & flags::FAMILIAR == 0 {
        return false;
    }
    let key = verified_key(&pkt.src, pkt.v6);
    // SAFETY: a plain read of a map value.
    match unsafe { FAMILIAR.get(&key) } {
        Some(seen) => seen.is_familiar(now, cfg.familiar_ttl_ns),
        None => false,
    }
}

/// Whether the packet's source is of a familiar network (an IPv4 /24 or IPv6 /48 a familiar
/// source sent from, by the same rule as [`known`]): its unknown sources take their service's
/// second budget, which a random-source flood from elsewhere does not spend. A function of
/// its own, asked only while a budget applies.
#[inline(never)]
pub fn net_known(cfg: &Config, pkt: &IpPacket, now: u64) -> bool {
    if cfg.flags & flags::FAMILIAR == 0 {
        return false;
    }
    let key = familiar_net_key(&pkt.src, pkt.v6);
    // SAFETY: a plain read of a map value.
    match unsafe { FAMILIAR.get(&key) } {
        Some(seen) => seen.is_familiar(now, cfg.familiar_ttl_ns),
        None => false,
    }
}
