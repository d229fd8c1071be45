//! Records for user space: offences on the OFFENCES ring, sampled headers on the EVENTS ring,
//! apart so samples never crowd out the offences that drive blocking. A full ring drops the
//! record (counted in EVENTS_LOST), never the packet decision.

use aya_ebpf::helpers::{bpf_get_prandom_u32, bpf_ktime_get_coarse_ns};
use filter_common::{
    abi::{Action, Config, Event, HELD_SAMPLE_EVERY, Reason, Sample, event, lost},
    parse::IpPacket,
};

use crate::{
    Verdict,
    frame::XdpFrame,
    maps::{CONFIG, EVENTS, EVENTS_LOST, OFFENCES, SAMPLE_COUNTDOWN, SAMPLE_FACTS},
    signature,
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
        dst: pkt.dst,
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

/// Whether this packet is one of the one in `every` sampled: a per-CPU countdown, reset to a
/// random gap of 1 to 2 x `every` - 1 packets (`every` on average, never in step with a
/// periodic sender); one decrement a packet, the random number only once a sample. Called
/// right after the parser, where few verifier states meet: a due packet's signature facts
/// are noted then, and the countdown waits at 0 until [`take_due`] sends the sample with
/// its verdict.
#[inline(always)]
pub fn note_if_due(frame: &XdpFrame, pkt: &IpPacket) {
    let Some(left) = SAMPLE_COUNTDOWN.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let left = unsafe { &mut *left };
    if *left > 1 {
        *left -= 1;
        return;
    }
    *left = 0;
    note_facts(frame, pkt);
}

/// A function of its own: its reads stay out of the callers' walk.
#[inline(never)]
fn note_facts(frame: &XdpFrame, pkt: &IpPacket) {
    if let Some(f) = SAMPLE_FACTS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, as above.
        signature::facts(frame, pkt, unsafe { &mut *f });
    }
}

/// One in how many packets is sampled: the controller's rate, sparser while the trigger
/// holds strict (`held`, a constant of each program).
#[inline(always)]
fn every(cfg: &Config, held: bool) -> u32 {
    if held {
        cfg.sample_every.max(HELD_SAMPLE_EVERY)
    } else {
        cfg.sample_every
    }
}

/// Whether a sample is pending ([`note_if_due`]); if so the countdown starts again.
#[inline(always)]
pub fn take_due(cfg: &Config, held: bool) -> bool {
    let every = every(cfg, held);
    let Some(left) = SAMPLE_COUNTDOWN.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let left = unsafe { &mut *left };
    if *left != 0 {
        return false;
    }
    // SAFETY: a helper without arguments.
    *left = 1 + unsafe { bpf_get_prandom_u32() } % (2 * every - 1);
    true
}

/// Sends the packet's header, with the signature facts noted for it, as a sample. A
/// function of its own: the record is built in its own stack frame.
#[inline(never)]
pub fn sample(pkt: &IpPacket, v: &Verdict, len: u64, held: bool) {
    let every = CONFIG.get(0).map_or(0, |cfg| every(cfg, held));
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let s = Sample {
        event: record(event::SAMPLE, pkt, v.action, v.reason, len, now),
        facts: SAMPLE_FACTS.get(0).copied().unwrap_or_default(),
        every,
    };
    if EVENTS.output::<Sample>(&s, 0).is_err() {
        count_lost(lost::SAMPLE);
    }
}
