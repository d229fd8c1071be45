//! Flood signatures (`filter_common::signature`): the facts a signature looks at, read from
//! the frame, and `levee_signature`, the program strict hands an unknown, unfamiliar source's
//! UDP to while signatures are in force (by tail call, so the main program's verifier walk
//! does not grow by the match).

use aya_ebpf::helpers::bpf_xdp_load_bytes;
use filter_common::{
    abi::{Class, Config, Reason},
    parse::{IPPROTO_TCP, IPPROTO_UDP, IpPacket},
    signature::{Facts, PAYLOAD_BYTES, SIGNATURE_SLOTS},
};

use crate::{
    Verdict,
    frame::XdpFrame,
    judge as judge_with, later_stages,
    limiter::Clock,
    maps::{SIGNATURE_HITS, SIGNATURES},
    parse_handed_over, pass,
    strict::{self, Strict},
    trigger,
};

/// Writes what a signature can match of this packet into `out` (also what a sample carries,
/// for the miner). Bytes the parser did not keep are read with `bpf_xdp_load_bytes`: a helper
/// call, but no packet bounds for the verifier to follow on every path that samples.
#[inline(always)]
pub fn facts(frame: &XdpFrame, pkt: &IpPacket, out: &mut Facts) {
    let l3 = pkt.l3 as u32;
    out.dst_port = pkt.dst_port;
    out.src_port = pkt.src_port;
    out.ip_id = if pkt.v6 { 0 } else { pkt.frag_id as u16 };
    out.proto = pkt.proto;
    // The IP header's first 12 bytes: its length and TTL (hop limit), as sent; a frame's
    // padding is not the datagram's.
    let mut ip = [0u8; 12];
    // SAFETY: the helper writes at most the given length into the buffer.
    let read = unsafe { bpf_xdp_load_bytes(frame.ctx(), l3, ip.as_mut_ptr() as *mut _, 12) };
    (out.ip_len, out.ttl) = match (read, pkt.v6) {
        (0, false) => (u16::from_be_bytes([ip[2], ip[3]]), ip[8]),
        (0, true) => (u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(40), ip[7]),
        _ => (0, 0),
    };
    // Past the transport header's first 8 bytes: a UDP datagram's payload, a TCP segment's
    // ACK number, header length, flags and window.
    out.payload_len = 0;
    if (pkt.proto == IPPROTO_UDP || pkt.proto == IPPROTO_TCP)
        // SAFETY: as above, straight into `out`.
        && unsafe {
            bpf_xdp_load_bytes(
                frame.ctx(),
                pkt.l4 as u32 + 8,
                out.payload.as_mut_ptr() as *mut _,
                PAYLOAD_BYTES as u32,
            )
        } == 0
    {
        out.payload_len = PAYLOAD_BYTES as u8;
    } else {
        out.payload = [0; PAYLOAD_BYTES];
    }
}

/// The verdict on a packet strict handed over: dropped if it matches a signature; else a
/// datagram goes on through the stages after strict, its service's budget among them, and a
/// SYN on to strict's own SYN stage (a cookie, most often).
#[inline(always)]
pub fn judge(frame: &XdpFrame, cfg: &Config, len: u64) -> Verdict {
    // The main program parsed it as UDP to a served port, or a SYN.
    let Some(pkt) = parse_handed_over(frame) else {
        return pass(Reason::Clean, Class::Other);
    };
    let held = trigger::held_any();
    let mode = trigger::mode(cfg, held);
    let verdict = if matching(frame, pkt) {
        judge_with(mode, Reason::FloodSignature, pkt.class)
    } else {
        match strict::no_signature(frame, cfg, pkt, &mut Clock::new(cfg)) {
            Strict::Refuse(reason) => judge_with(mode, reason, pkt.class),
            Strict::Budget(slot) => later_stages(cfg, mode, pkt, len, Reason::Clean, Some(slot)),
            _ => later_stages(cfg, mode, pkt, len, Reason::Clean, None),
        }
    };
    // What strict refuses keeps the trigger's hold alive while the flood lasts.
    if held
        && matches!(
            verdict.reason,
            Reason::FloodSignature | Reason::UnknownBudget | Reason::SynCookie
        )
    {
        trigger::renew(cfg, verdict.class as u32);
    }
    verdict
}

/// Whether the datagram matches a flood signature (counted in SIGNATURE_HITS). The slots
/// are filled from the first; the first empty one ends the search.
#[inline(never)]
pub fn matching(frame: &XdpFrame, pkt: &IpPacket) -> bool {
    let mut facts = Facts::default();
    self::facts(frame, pkt, &mut facts);
    for slot in 0..SIGNATURE_SLOTS {
        let Some(sig) = SIGNATURES.get(slot) else {
            return false;
        };
        if sig.fields == 0 {
            return false;
        }
        if sig.matches(&facts) {
            if let Some(hits) = SIGNATURE_HITS.get_ptr_mut(slot) {
                // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
                unsafe { *hits += 1 };
            }
            return true;
        }
    }
    false
}
