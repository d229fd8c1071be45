//! Strict for TCP and UDP fragments, in a program of its own (`levee_fragment`, reached by
//! tail call when strict hands a fragment over), so the main program's verifier walk does not
//! grow. A first fragment carries the ports: strict judges it as its whole datagram (a flow of
//! the host, or a service and its budget), and if every later stage passes it too, the
//! datagram is remembered (FRAGMENTS). A later fragment passes on to the later stages only if
//! its datagram's first fragment passed; else (its first was refused, or not seen: out of
//! order, or more than 30 s before) it is refused as its datagram was, `no_service`.

use filter_common::{
    abi::{Class, Config, FRAGMENT_TIMEOUT_NS, FragKey, Mode, Reason, flags},
    parse::{Fragment, IPPROTO_UDP, IpPacket},
};

use crate::{
    PARSED_IP, Verdict,
    frame::XdpFrame,
    judge, later_stages,
    limiter::Clock,
    maps::{FRAG_PKT, FRAGMENTS},
    parse_into, pass,
    strict::{self, Strict},
};

/// The verdict on a fragment strict handed over.
#[inline(always)]
pub fn judge_fragment(frame: &XdpFrame, cfg: &Config, len: u64) -> Verdict {
    let mode = Mode::from_u32(cfg.mode);
    let Some(slot) = FRAG_PKT.get_ptr_mut(0) else {
        return pass(Reason::Clean, Class::Other);
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs; an IpPacket is
    // plain data, written whole by parse_into when it says PARSED_IP.
    let out = unsafe { &mut *(slot as *mut core::mem::MaybeUninit<IpPacket>) };
    // The main program parsed it as a TCP or UDP fragment.
    if parse_into(frame, out) != PARSED_IP {
        return pass(Reason::Clean, Class::Other);
    }
    // SAFETY: written by parse_into (PARSED_IP).
    let pkt: &IpPacket = unsafe { out.assume_init_ref() };
    let mut clock = Clock::new(cfg);
    if pkt.fragment == Fragment::Later {
        if !first_passed(pkt, clock.now()) {
            return judge(mode, Reason::NoService, pkt.class);
        }
        return later_stages(cfg, mode, pkt, len, Reason::Clean, None);
    }
    let (known, budget) = match first_fragment(cfg, pkt) {
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

/// Strict's say on a first fragment, as on its whole datagram (its budget, if any, is taken
/// after the limiter, as in the main program). Functions of their own (this one and the two
/// below), so their keys are off the frame the later stages are called from: the verifier
/// allows 512 bytes of stack for all the frames of a call chain.
#[inline(never)]
fn first_fragment(cfg: &Config, pkt: &IpPacket) -> Strict {
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
    if cfg.flags & flags::UDP_BUDGET != 0 {
        return Strict::Budget(slot);
    }
    Strict::Unknown
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
