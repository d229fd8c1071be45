//! The egress half of strict: a TC program on the same interfaces records each flow the host
//! sends on (its own connections and queries, and its answers to clients), so replies and
//! known clients are recognised on the way in (strict not off). It never changes or drops a
//! packet. It runs whatever strict's mode, for the verified sources below.
//!
//! A SYN-ACK or a RST is no flow: the kernel sends them to whatever address a SYN or a stray
//! segment carried, spoofed or not. A TCP segment past the handshake is proof the remote end
//! completed one, so its address is also recorded as verified (VERIFIED), for detection.

use aya_ebpf::{bindings::tcx_action_base::TCX_NEXT, programs::TcContext};
use filter_common::{
    abi::{FlowEntry, VERIFIED_REFRESH_NS, flags, verified_key},
    parse::{
        Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, Parsed, TCP_ACK, TCP_RST, TCP_SYN, parse,
    },
};

use crate::{diag, limiter::Clock, maps, strict::flow_key};

/// [`filter_common::parse::Frame`] over a socket buffer, through bpf_skb_load_bytes (the
/// headers need not be in the linear part).
pub struct SkbFrame<'a> {
    ctx: &'a TcContext,
}

impl filter_common::parse::Frame for SkbFrame<'_> {
    #[inline(always)]
    fn size(&self) -> usize {
        self.ctx.len() as usize
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.ctx.load::<[u8; N]>(offset).ok()
    }
}

#[inline(always)]
pub fn record(ctx: &TcContext) -> i32 {
    let Some(cfg) = maps::CONFIG.get(0) else {
        return TCX_NEXT;
    };
    let Ok(Parsed::Ip(pkt)) = parse(&SkbFrame { ctx }) else {
        return TCX_NEXT;
    };
    if (pkt.proto != IPPROTO_TCP && pkt.proto != IPPROTO_UDP) || pkt.fragment != Fragment::No {
        return TCX_NEXT;
    }
    let tcp = pkt.proto == IPPROTO_TCP;
    if tcp
        && (pkt.tcp_flags & TCP_RST != 0
            || pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK)
    {
        return TCX_NEXT;
    }
    let now = Clock::new(cfg).now();
    // Verified sources are recorded whatever strict's mode: detection needs them.
    if tcp && pkt.tcp_flags & TCP_SYN == 0 {
        verify(&pkt, now);
    }
    if cfg.flags & flags::TRACK_FLOWS == 0 {
        return TCX_NEXT;
    }
    // Leaving the host, the destination is the remote end.
    let key = flow_key(&pkt.dst, &pkt.src, pkt.dst_port, pkt.src_port, &pkt);
    // The slot first: the XDP program looks there before FLOWS. Rewritten when it holds
    // another flow (the last recorded wins) or has aged a little. A reader racing this write
    // may see the new key with the old time or the reverse: both are flows of the host.
    if let Some(c) = maps::FLOW_CACHE.get_ptr_mut(key.cache_slot()) {
        // SAFETY: an array slot; racing writers only leave one of two real flows.
        let c = unsafe { &mut *c };
        if !c.key.same(&key) || now.wrapping_sub(c.seen_ns) > cfg.flow_timeout_ns / 8 {
            c.key = key;
            c.seen_ns = now;
        }
    }
    // Rewrite an entry only when it has aged a little, not on every packet of a stream.
    if let Some(f) = maps::FLOWS.get_ptr_mut(&key) {
        // SAFETY: a live map value; a racing writer only blurs the time.
        let f = unsafe { &mut *f };
        if now.wrapping_sub(f.seen_ns) > cfg.flow_timeout_ns / 8 {
            f.seen_ns = now;
        }
        return TCX_NEXT;
    }
    // A full LRU evicts; a failure (rare, under contention) leaves the flow unrecorded.
    if let Err(e) = maps::FLOWS.insert(&key, &FlowEntry { seen_ns: now }, 0) {
        diag::flow_insert_failed(e.into());
    }
    TCX_NEXT
}

/// Records the remote end of a connection past its handshake (the packet's destination),
/// rewriting its time at most every [`VERIFIED_REFRESH_NS`], not on every packet of a stream.
#[inline(never)]
fn verify(pkt: &IpPacket, now: u64) {
    let key = verified_key(&pkt.dst, pkt.v6);
    if let Some(seen) = maps::VERIFIED.get_ptr_mut(&key) {
        // SAFETY: a live map value; a racing writer only blurs the time.
        let seen = unsafe { &mut *seen };
        if now.wrapping_sub(*seen) > VERIFIED_REFRESH_NS {
            *seen = now;
        }
        return;
    }
    // A full LRU evicts; a failure only leaves the address unverified for now.
    let _ = maps::VERIFIED.insert(&key, &now, 0);
}
