//! Strict for TCP and UDP fragments, in a program of its own (`levee_fragment`, reached by
//! tail call when strict hands a fragment over), so the main program's verifier walk does not
//! grow. A first fragment carries the ports: strict judges it as its whole datagram (a flow of
//! the host, or a service, and while its budget applies a familiar source, a flood signature,
//! the budget), and if every later stage passes it too, the
//! datagram is remembered (FRAGMENTS). A later fragment passes on to the later stages only if
//! its datagram's first fragment passed; else (its first was refused, or not seen: out of
//! order, or more than 30 s before) it is refused as its datagram was, `no_service`.

use filter_common::{
    abi::{Class, Config, FRAGMENT_TIMEOUT_NS, FragKey, Reason, flags},
    parse::{Fragment, IPPROTO_UDP, IpPacket},
};

use crate::{
    Verdict, familiar,
    frame::XdpFrame,
    judge, later_stages,
    limiter::Clock,
    maps::FRAGMENTS,
    parse_handed_over, pass, signature,
    strict::{self, Strict},
    trigger,
};

/// The verdict on a fragment strict handed over, in the mode the main program judged it in
/// (the trigger's, while it holds).
#[inline(always)]
pub fn judge_fragment(frame: &XdpFrame, cfg: &Config, len: u64) -> Verdict {
    let held = trigger::held_any();
    let mode = trigger::mode(cfg, held);
    // The main program parsed it as a TCP or UDP fragment.
    let Some(pkt) = parse_handed_over(frame) else {
        return pass(Reason::Clean, Class::Other);
    };
    let mut clock = Clock::new(cfg);
    if pkt.fragment == Fragment::Later {
        if !first_passed(pkt, clock.now()) {
            return judge(mode, Reason::NoService, pkt.class);
        }
        return later_stages(cfg, mode, pkt, len, Reason::Clean, None);
    }
    let (known, budget) = match first_fragment(frame, cfg, pkt) {
        Strict::Refuse(reason) => return judge(mode, reason, pkt.class),
        Strict::Known(reason) => (reason, None),
        Strict::Budget(slot) => (Reason::Clean, Some(slot)),
        Strict::Unknown => (Reason::Clean, None),
    };
    let verdict = later_stages(cfg, mode, pkt, len, known, budget);
    if verdict.action == filter_common::abi::Action::Pass {
        remember(pkt, clock.now());
    }
    verdict
}

/// Strict's say on a first fragment, as on its whole datagram, by the rules `strict::check`
/// and `signature` apply to an unfragmented one: a flow, a service, and while its budget
/// applies a familiar source before a flood signature before the budget (taken after the
/// limiter, as in the main program). Functions of their own (this one and the two below), so
/// their keys are off the frame the later stages are called from: the verifier allows 512
/// bytes of stack for all the frames of a call chain.
#[inline(never)]
fn first_fragment(frame: &XdpFrame, cfg: &Config, pkt: &IpPacket) -> Strict {
    let mut clock = Clock::new(cfg);
    if strict::flow_known(cfg, pkt, &mut clock) {
        return Strict::Known(Reason::Flow);
    }
    if pkt.proto != IPPROTO_UDP {
        // A fragmented TCP segment outside any flow: no cookie can answer it.
        return Strict::Refuse(Reason::NoFlow);
    }
    let Some(slot) = strict::service(pkt) else {
        return Strict::Refuse(Reason::NoService);
    };
    if cfg.flags & flags::UDP_BUDGET == 0 && !trigger::holds(cfg, Class::Udp, &mut clock) {
        return Strict::Unknown;
    }
    if familiar::known(cfg, pkt, clock.now()) {
        return Strict::Known(Reason::Familiar);
    }
    // The first fragment carries the datagram's first payload bytes, which a signature reads.
    if cfg.flags & flags::SIGNATURES != 0 && signature::matching(frame, pkt) {
        return Strict::Refuse(Reason::FloodSignature);
    }
    Strict::Budget(slot)
}

/// Whether the datagram's first fragment passed, less than 30 s ago.
#[inline(never)]
fn first_passed(pkt: &IpPacket, now: u64) -> bool {
    // SAFETY: a plain read of a map value.
    unsafe { FRAGMENTS.get(&key(pkt)) }.is_some_and(|t| now.wrapping_sub(*t) < FRAGMENT_TIMEOUT_NS)
}

/// Remembers that the datagram's first fragment passed.
#[inline(never)]
fn remember(pkt: &IpPacket, now: u64) {
    let _ = FRAGMENTS.insert(&key(pkt), &now, 0);
}

#[inline(always)]
fn key(pkt: &IpPacket) -> FragKey {
    FragKey {
        src: pkt.src,
        dst: pkt.dst,
        id: pkt.frag_id,
        proto: pkt.proto,
        family: if pkt.v6 { 6 } else { 4 },
        _pad: [0; 2],
    }
}
