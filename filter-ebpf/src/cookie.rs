//! SYN cookies in the driver: a SYN to a local listener is turned, in place, into the
//! SYN-ACK the kernel would send, with a cookie the kernel itself made
//! (`bpf_tcp_gen_syncookie`, which also marks the listener so it takes the cookie's ACK), and
//! sent back with XDP_TX. The listener never sees the SYN; the valid ACK that follows passes
//! (`bpf_tcp_check_syncookie`) and the kernel makes the connection from it.
//!
//! Only plain headers take this path (IPv4 without options, IPv6 without extension headers);
//! anything else goes on to the limiter. The SYN-ACK carries timestamps (and with them window
//! scale and SACK) when the client offered them and the frame has or can get room for it;
//! else the short SYN-ACK with the MSS alone.

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock},
    helpers::{
        bpf_ktime_get_ns, bpf_sk_release, bpf_skc_lookup_tcp, bpf_tcp_check_syncookie,
        bpf_tcp_gen_syncookie, bpf_xdp_adjust_tail,
    },
};
use filter_common::{
    abi::{Class, Config},
    parse::{Fragment, IPPROTO_TCP, IpPacket, TCP_CWR, TCP_ECE},
    synack::{
        SYNACK_TCP_LEN, SYNACK_TCP_LEN_SHORT, SynAck, parse_syn_options, ts_cookie, write_synack,
    },
};

use crate::{
    frame::XdpFrame,
    maps::{COOKIE_PKT, SCRATCH, Scratch},
    strict::{TCP_LISTEN, tuple_of, tuple_size},
};

/// What bpf_tcp_gen_syncookie returns (negated) when the kernel makes no cookie now.
const ENOENT: i64 = 2;

/// Reads the context's packet bounds afresh (after a helper that may move them).
#[inline(always)]
fn bounds(frame: &XdpFrame) -> (usize, usize) {
    let ctx = frame.ctx();
    // SAFETY: ctx is the program's context pointer.
    unsafe {
        (
            core::ptr::read_volatile(&(*ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx).data_end) as usize,
        )
    }
}

/// The SYN the main program hands over: where its IP header starts, its family, and for a
/// penalty cookie the limiter's reason (0 for strict's cookie). The main program has checked
/// that the headers are plain (and for strict that a local listener takes the port).
#[repr(C)]
pub struct Handover {
    pub l3: u32,
    pub v6: u32,
    pub penalty: u32,
}

/// Answers the SYN with a cookie SYN-ACK written over the frame. A program of its own, reached
/// by tail call: the verifier walks it once, from a clean state, instead of once per path of
/// the main program that leads here. Returns false (frame untouched or the SYN still intact)
/// when the kernel makes no cookie; COOKIE_PKT then holds the SYN (its `proto` TCP) if it
/// could be read, for the stages after strict.
#[inline(always)]
pub fn answer_syn(frame: &XdpFrame, cfg: &Config) -> bool {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let Some(pkt) = COOKIE_PKT.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let pkt = unsafe { &mut *pkt };
    // Not read yet (set to TCP once it is).
    pkt.proto = 0;
    // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
    let scratch = unsafe { &mut *scratch };
    let v6 = scratch.handover.v6 != 0;
    let ip_len: usize = if v6 { 40 } else { 20 };
    // Masked so the verifier sees it bounded: at most two VLAN tags put IP at 22.
    let l3 = (scratch.handover.l3 & 0x1f) as usize;
    let (data, end) = bounds(frame);
    let ip = data + l3;
    if ip + ip_len + 20 > end {
        return false;
    }
    // The SYN's addresses and ports, in per-CPU memory rather than on this program's stack,
    // which is close to its 512 bytes.
    // SAFETY: the IP and fixed TCP headers are inside the frame (checked above).
    unsafe {
        let th = ip + ip_len;
        if v6 {
            pkt.src = core::ptr::read_unaligned((ip + 8) as *const [u8; 16]);
            pkt.dst = core::ptr::read_unaligned((ip + 24) as *const [u8; 16]);
        } else {
            let s: [u8; 4] = core::ptr::read_unaligned((ip + 12) as *const _);
            let d: [u8; 4] = core::ptr::read_unaligned((ip + 16) as *const _);
            pkt.src = [s[0], s[1], s[2], s[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            pkt.dst = [d[0], d[1], d[2], d[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        pkt.src_port = u16::from_be(core::ptr::read_unaligned(th as *const u16));
        pkt.dst_port = u16::from_be(core::ptr::read_unaligned((th + 2) as *const u16));
        pkt.tcp_flags = *((th + 13) as *const u8);
    }
    pkt.v6 = v6;
    pkt.l3 = l3 as u16;
    pkt.l4 = (l3 + ip_len) as u16;
    pkt.proto = IPPROTO_TCP;
    pkt.class = Class::TcpSyn;
    pkt.fragment = Fragment::No;
    let pkt: &IpPacket = pkt;
    let mut tuple = tuple_of(pkt);
    // SAFETY: ctx is the program's context; the tuple lives on the stack for the call.
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            frame.ctx().cast(),
            &mut tuple,
            tuple_size(pkt),
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return false;
    }
    let answered = answer_with(frame, cfg, pkt, scratch, sk, l3, ip_len);
    // SAFETY: sk came from bpf_skc_lookup_tcp and is released once.
    unsafe { bpf_sk_release(sk.cast()) };
    answered
}

/// Asks the kernel for a cookie for the SYN at `th` (header length `doff`), and copies its
/// options into scratch. The helper wants the exact header length and proof that it lies in
/// the frame: one arm per possible length, each checked with a constant.
#[inline(always)]
fn cookie_for(
    sk: *mut bpf_sock,
    ip: usize,
    ip_len: usize,
    th: usize,
    doff: u32,
    end: usize,
    scratch: &mut Scratch,
) -> Option<u32> {
    macro_rules! arms {
        ($($n:literal),*) => {
            match doff {
                $($n => {
                    if th + $n > end {
                        return None;
                    }
                    // SAFETY: th..th+$n lies in the frame (checked just above).
                    unsafe {
                        let opts: [u8; $n - 20] = core::ptr::read_unaligned((th + 20) as *const _);
                        scratch.opts[..$n - 20].copy_from_slice(&opts);
                        bpf_tcp_gen_syncookie(sk.cast(), ip as *mut _, ip_len as u32, th as *mut _, $n)
                    }
                })*
                _ => return None,
            }
        };
    }
    let value = arms!(20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60);
    if value < 0 {
        // ENOENT: no cookie now (syncookies off, no recent SYN queue overflow), expected.
        // Anything else is unexpected and logged.
        if value != -ENOENT {
            crate::diag::cookie_failed(value);
        }
        None
    } else {
        Some(value as u32)
    }
}

#[inline(always)]
fn answer_with(
    frame: &XdpFrame,
    cfg: &Config,
    pkt: &IpPacket,
    scratch: &mut Scratch,
    sk: *mut bpf_sock,
    l3: usize,
    ip_len: usize,
) -> bool {
    // SAFETY: a socket the lookup returned.
    if unsafe { (*sk).state } != TCP_LISTEN {
        return false;
    }
    let (data, end) = bounds(frame);
    let ip = data + l3;
    if data + 14 > end || ip + ip_len + 20 > end {
        return false;
    }
    let th = ip + ip_len;
    // SAFETY: the fixed TCP header lies in the frame (checked above).
    let (doff, client_seq) = unsafe {
        (
            (*((th + 12) as *const u8) >> 4) as u32 * 4,
            u32::from_be(core::ptr::read_unaligned((th + 4) as *const u32)),
        )
    };
    let Some(cookie) = cookie_for(sk, ip, ip_len, th, doff, end, scratch) else {
        return false;
    };
    let ecn_asked = pkt.tcp_flags & (TCP_ECE | TCP_CWR) == TCP_ECE | TCP_CWR;
    let mut options = parse_syn_options(&scratch.opts, (doff - 20) as usize, &mut scratch.found)
        .agreed(cfg.flags, ecn_asked);
    // SAFETY: a helper without arguments. The kernel's TCP timestamps count ms of this clock.
    let now_ms = (unsafe { bpf_ktime_get_ns() } / 1_000_000) as u32;
    // Room for the SYN-ACK: grown if need be; a frame that cannot grow enough for the
    // timestamps still takes the short SYN-ACK (MSS only) when it can.
    let have = end - data;
    let short = l3 + ip_len + SYNACK_TCP_LEN_SHORT;
    let long = l3 + ip_len + SYNACK_TCP_LEN;
    if options.tsval.is_some() && have < long && !grow(frame, long - have) {
        options.tsval = None;
    }
    if options.tsval.is_none() && have < short && !grow(frame, short - have) {
        return false;
    }
    let s = SynAck {
        local: pkt.dst,
        remote: pkt.src,
        local_port: pkt.dst_port,
        remote_port: pkt.src_port,
        client_seq,
        cookie,
        mss: if pkt.v6 {
            cfg.synack_mss_v6
        } else {
            cfg.synack_mss_v4
        },
        wscale: cfg.synack_wscale,
        ttl: cfg.synack_ttl,
        options,
        tsval: ts_cookie(now_ms, &options),
    };
    let len = write_synack(&s, pkt.v6, &mut scratch.synack);
    let (data, end) = bounds(frame);
    let ip = data + l3;
    if data + 14 > end {
        return false;
    }
    // SAFETY: data + 12 lies in the frame; each copy below is checked against the frame end
    // with its own constant length.
    unsafe {
        let dst: [u8; 6] = core::ptr::read_unaligned(data as *const _);
        let src: [u8; 6] = core::ptr::read_unaligned((data + 6) as *const _);
        macro_rules! copy {
            ($n:expr) => {{
                if ip + $n > end {
                    return false;
                }
                let head: &[u8; $n] = &*(scratch.synack.as_ptr() as *const _);
                core::ptr::write_unaligned(ip as *mut [u8; $n], *head);
            }};
        }
        match (pkt.v6, s.options.tsval.is_some()) {
            (true, true) => copy!(40 + SYNACK_TCP_LEN),
            (true, false) => copy!(40 + SYNACK_TCP_LEN_SHORT),
            (false, true) => copy!(20 + SYNACK_TCP_LEN),
            (false, false) => copy!(20 + SYNACK_TCP_LEN_SHORT),
        }
        core::ptr::write_unaligned(data as *mut [u8; 6], src);
        core::ptr::write_unaligned((data + 6) as *mut [u8; 6], dst);
    }
    // Cut the frame to the SYN-ACK. Should the kernel refuse, the IP length still says where
    // the packet ends and the receiver ignores the rest.
    let delta = (l3 + len) as i64 - (end - data) as i64;
    if delta != 0 {
        // SAFETY: ctx is the program's context.
        unsafe { bpf_xdp_adjust_tail(frame.ctx().cast(), delta as i32) };
    }
    true
}

/// Grows the frame by `by` bytes; false if the driver has no room.
#[inline(always)]
fn grow(frame: &XdpFrame, by: usize) -> bool {
    // SAFETY: ctx is the program's context.
    unsafe { bpf_xdp_adjust_tail(frame.ctx().cast(), by as i32) == 0 }
}

/// Whether an ACK to the listener `sk` carries a valid cookie. Plain headers only, as for
/// the SYN.
#[inline(always)]
pub fn check_ack(frame: &XdpFrame, pkt: &IpPacket, sk: *mut bpf_sock) -> bool {
    let ip_len: usize = if pkt.v6 { 40 } else { 20 };
    let l3 = (pkt.l3 & 0x1f) as usize;
    if pkt.l4 as usize != l3 + ip_len {
        return false;
    }
    let (data, end) = bounds(frame);
    let ip = data + l3;
    if ip + ip_len + 20 > end {
        return false;
    }
    let th = ip + ip_len;
    // SAFETY: ip..th+20 lies in the frame (checked above).
    unsafe {
        bpf_tcp_check_syncookie(sk.cast(), ip as *mut _, ip_len as u32, th as *mut _, 20) == 0
    }
}
