//! Records for user space: offences on the OFFENCES ring, sampled headers on the EVENTS ring,
//! apart so samples never crowd out the offences that drive blocking. A full ring drops the
//! record (counted in EVENTS_LOST), never the packet decision.

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns};
use filter_common::{
    abi::{Action, Event, Reason, event, lost},
    parse::IpPacket,
};

use crate::{
    Verdict,
    maps::{EVENTS, EVENTS_LOST, OFFENCES},
};

/// Counts a record lost to a full ring.
#[inline(always)]
fn count_lost(slot: u32) {
    if let Some(n) = EVENTS_LOST.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *n += 1 };
    }
}

#[inline(always)]
fn record(kind: u32, pkt: &IpPacket, action: Action, reason: Reason, len: u64, now: u64) -> Event {
    Event {
        kind,
        action: action as u32,
        reason: reason as u32,
        class: pkt.class as u32,
        src: pkt.src,
        timestamp_ns: now,
        family: if pkt.v6 { 6 } else { 4 },
        proto: pkt.proto,
        tcp_flags: pkt.tcp_flags,
        _pad: 0,
        len: len as u32,
        src_port: pkt.src_port,
        dst_port: pkt.dst_port,
        offences: 0,
    }
}

#[inline(always)]
pub fn offence(pkt: &IpPacket, offences: u32, len: u64, now: u64) {
    let mut e = record(
        event::OFFENCE,
        pkt,
        Action::Drop,
        Reason::SourceRate,
        len,
        now,
    );
    e.offences = offences;
    if OFFENCES.output::<Event>(&e, 0).is_err() {
        count_lost(lost::OFFENCE);
    }
}

/// A function of its own: the record is built in its own stack frame.
#[inline(never)]
pub fn maybe_sample(every: u32, pkt: &IpPacket, v: &Verdict, len: u64) {
    // SAFETY: helpers without arguments.
    if unsafe { bpf_get_prandom_u32() } % every != 0 {
        return;
    }
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let e = record(event::SAMPLE, pkt, v.action, v.reason, len, now);
    if EVENTS.output::<Event>(&e, 0).is_err() {
        count_lost(lost::SAMPLE);
    }
}
