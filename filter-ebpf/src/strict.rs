//! Strict: while engaged, TCP and UDP pass only if something of this host asked for them.
//!
//! - A packet of a flow the host started or answered (FLOWS, written by the egress program)
//!   is known.
//! - A SYN to a served port is answered here with a SYN cookie; the listener never sees it.
//! - Another TCP segment needs a socket (an accepted connection the egress program has not
//!   seen yet) or a valid cookie in its ACK; anything else is dropped, so no RST is ever sent
//!   to a spoofed source.
//! - UDP to a served port passes; an unknown source shares the service's budget while the
//!   UDP class is under attack (after the per-source limiter, so a heavy source is
//!   penalised and leaves the budget to the crowd).
//! - TCP or UDP to a port no service and no flow accounts for is dropped.

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple},
    helpers::{bpf_sk_release, bpf_skc_lookup_tcp},
    maps::lpm_trie::Key,
};
use filter_common::{
    abi::{
        Class, Config, FlowKey, Mode, Reason, SERVICE_KEY_BITS, flags, service_key_v4,
        service_key_v6,
    },
    limit::admit,
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, TCP_ACK, TCP_SYN},
};

use crate::{
    cookie, familiar,
    frame::XdpFrame,
    limiter::Clock,
    maps::{FLOWS, NET_BUDGET, SCRATCH, SERVICES_V4, SERVICES_V6, SVC_BUDGET},
    trigger,
};

/// `state` of a listening socket (the kernel's TCP_LISTEN).
pub const TCP_LISTEN: u32 = 10;

/// What strict says of a packet.
pub enum Strict {
    /// Nothing of the host accounts for it, nor objects: the later stages decide.
    Unknown,
    /// Known (a flow, a valid cookie): it goes on to the limiter with this pass reason.
    Known(Reason),
    /// Refused with this reason (for [`Reason::SynCookie`] the frame is now our SYN-ACK).
    Refuse(Reason),
    /// UDP from an unknown source to a service whose budget applies (UDP under attack): the
    /// limiter judges it first, so a heavy source is penalised rather than eating the
    /// crowd's budget, then it takes a token of budget `slot` ([`within_budget`]).
    Budget(u32),
}

/// A function of its own (a BPF-to-BPF call), so its lookups' buffers get their own frame.
#[inline(never)]
pub fn check(frame: &XdpFrame, cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> Strict {
    let tcp = pkt.proto == IPPROTO_TCP;
    if !tcp && pkt.proto != IPPROTO_UDP {
        return Strict::Unknown;
    }
    // Fragments have a program of their own (`fragment`), which the entry hands them to on
    // this reason: a first one judged as its whole datagram, a later one by its first.
    if pkt.fragment != Fragment::No {
        return Strict::Refuse(Reason::Fragment);
    }
    if flow_known(cfg, pkt, clock) {
        return Strict::Known(Reason::Flow);
    }
    if tcp {
        return if pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            // With SYN flood signatures in force, the signature program judges it first,
            // unless its source is familiar (a signature never matches a familiar source).
            if cfg.flags & flags::SIGNATURES_SYN != 0 && !familiar::known(cfg, pkt, clock.now()) {
                return Strict::Refuse(Reason::FloodSignature);
            }
            syn(frame, trigger::mode(cfg, trigger::held_any()), pkt)
        } else {
            segment(frame, pkt)
        };
    }
    let Some(slot) = service(pkt) else {
        return Strict::Refuse(Reason::NoService);
    };
    // The controller engages the budget for a spread UDP flood; the program's trigger for
    // one it saw first.
    if cfg.flags & flags::UDP_BUDGET != 0 || trigger::holds(cfg, Class::Udp, clock) {
        // A source that sent within its limits while calm passes before the budget.
        if familiar::known(cfg, pkt, clock.now()) {
            return Strict::Known(Reason::Familiar);
        }
        // With flood signatures in force, the signature program judges it (a flood's
        // fingerprint is dropped before it spends the budget the crowd's newcomers need).
        if cfg.flags & flags::SIGNATURES != 0 {
            return Strict::Refuse(Reason::FloodSignature);
        }
        return Strict::Budget(slot);
    }
    Strict::Unknown
}

/// Whether a UDP packet from an amplification port (DNS, NTP...) answers a query the host
/// itself sent (a recorded flow), so the amplification signature lets it through. Looked up
/// only for packets from those ports. A function of its own, so the main program's walk
/// does not grow by a map lookup.
#[inline(never)]
pub fn answers_the_host(cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> bool {
    cfg.flags & flags::TRACK_FLOWS != 0
        && pkt.fragment == Fragment::No
        && flow_known(cfg, pkt, clock)
}

/// The FLOWS key of an arriving packet: its source is the remote end. UDP flows are kept per
/// remote address (port zero), so a client that got an answer is known whatever its port.
#[inline(always)]
pub fn flow_key(
    remote: &[u8; 16],
    local: &[u8; 16],
    rport: u16,
    lport: u16,
    pkt: &IpPacket,
) -> FlowKey {
    FlowKey {
        remote: *remote,
        local: *local,
        remote_port: if pkt.proto == IPPROTO_UDP { 0 } else { rport },
        local_port: lport,
        proto: pkt.proto,
        family: if pkt.v6 { 6 } else { 4 },
        _pad: [0; 2],
    }
}

#[inline(always)]
pub fn flow_known(cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> bool {
    let key = flow_key(&pkt.src, &pkt.dst, pkt.src_port, pkt.dst_port, pkt);
    // SAFETY: a plain read of a map value.
    match unsafe { FLOWS.get(&key) } {
        Some(f) => clock.now().wrapping_sub(f.seen_ns) < cfg.flow_timeout_ns,
        None => false,
    }
}

/// The budget slot of the service the packet is addressed to, if any.
#[inline(always)]
pub fn service(pkt: &IpPacket) -> Option<u32> {
    let entry = if pkt.v6 {
        SERVICES_V6.get(Key::new(
            SERVICE_KEY_BITS + 128,
            service_key_v6(pkt.proto, pkt.dst_port, &pkt.dst),
        ))
    } else {
        SERVICES_V4.get(Key::new(
            SERVICE_KEY_BITS + 32,
            service_key_v4(
                pkt.proto,
                pkt.dst_port,
                [pkt.dst[0], pkt.dst[1], pkt.dst[2], pkt.dst[3]],
            ),
        ))
    };
    entry.map(|e| e.slot)
}

/// Takes a token of the service's budget for an unknown source: the second bucket if the
/// source's network is familiar.
#[inline(always)]
pub fn within_budget(cfg: &Config, pkt: &IpPacket, slot: u32, clock: &mut Clock) -> bool {
    let budgets = if familiar::net_known(cfg, pkt, clock.now()) {
        &NET_BUDGET
    } else {
        &SVC_BUDGET
    };
    let Some(b) = budgets.get_ptr_mut(slot) else {
        return true;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let b = unsafe { &mut *b };
    admit(
        &mut b.pkt_tat,
        &mut b.byte_tat,
        &cfg.unknown_budget,
        0,
        clock.now(),
    )
}

/// Hands a SYN the limiter refused to the cookie program instead (the entry tail-calls it on
/// [`Reason::PenaltyCookie`]): true if its headers are plain, so the program can answer it.
/// A function of its own, so the main program's walk grows by a call, not by its checks.
#[inline(never)]
pub fn penalty_cookie(pkt: &IpPacket, reason: Reason) -> bool {
    let ip_len = if pkt.v6 { 40 } else { 20 };
    if pkt.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN || pkt.l4 != pkt.l3 + ip_len {
        return false;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
    unsafe {
        (*scratch).handover = cookie::Handover {
            l3: u32::from(pkt.l3),
            v6: u32::from(pkt.v6),
            penalty: reason as u32,
        };
    }
    true
}

/// A connection attempt: refused if nothing serves the port, else handed to the cookie
/// program (by the entry, through [`Reason::SynCookie`]).
#[inline(always)]
pub fn syn(frame: &XdpFrame, mode: Mode, pkt: &IpPacket) -> Strict {
    if service(pkt).is_none() {
        return Strict::Refuse(Reason::NoService);
    }
    // Monitor counts what it would do and leaves the SYN to the kernel.
    if mode != Mode::Enforce {
        return Strict::Refuse(Reason::SynCookie);
    }
    let ip_len = if pkt.v6 { 40 } else { 20 };
    // Plain headers only (the cookie program's SYN-ACK is built for them), and a local
    // listener; else (a service behind this host) the limiter decides.
    if pkt.l4 != pkt.l3 + ip_len || !listening(frame, pkt) {
        return Strict::Unknown;
    }
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Strict::Unknown;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
    unsafe {
        (*scratch).handover = cookie::Handover {
            l3: u32::from(pkt.l3),
            v6: u32::from(pkt.v6),
            penalty: 0,
        };
    }
    // The entry hands the frame to the cookie program.
    Strict::Refuse(Reason::SynCookie)
}

/// Whether a local socket listens for the SYN. A function of its own, so its socket tuple
/// gets a stack frame apart from the stages'.
#[inline(never)]
fn listening(frame: &XdpFrame, pkt: &IpPacket) -> bool {
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
    // SAFETY: a socket the lookup returned, released just after.
    let state = unsafe { (*sk).state };
    // SAFETY: sk came from bpf_skc_lookup_tcp and is released once.
    unsafe { bpf_sk_release(sk.cast()) };
    state == TCP_LISTEN
}

/// A segment outside any recorded flow: it needs a socket or a valid cookie. A function of
/// its own, so its socket tuple gets a stack frame apart from the stages'.
#[inline(never)]
fn segment(frame: &XdpFrame, pkt: &IpPacket) -> Strict {
    let mut tuple = tuple_of(pkt);
    let size = tuple_size(pkt);
    // SAFETY: ctx is the program's context; the tuple lives on the stack for the call.
    let sk = unsafe {
        bpf_skc_lookup_tcp(
            frame.ctx().cast(),
            &mut tuple,
            size,
            BPF_F_CURRENT_NETNS as u64,
            0,
        )
    };
    if sk.is_null() {
        return Strict::Refuse(Reason::NoFlow);
    }
    // SAFETY: a socket the lookup returned, released below on every path.
    let state = unsafe { (*(sk as *const bpf_sock)).state };
    let verdict = if state != TCP_LISTEN {
        // A connection the kernel holds (accepted, or closing): the host asked for it.
        Strict::Known(Reason::Flow)
    } else if pkt.tcp_flags & TCP_ACK != 0 && cookie::check_ack(frame, pkt, sk) {
        Strict::Known(Reason::CookieAck)
    } else {
        Strict::Refuse(Reason::NoFlow)
    };
    // SAFETY: sk came from bpf_skc_lookup_tcp and is released once.
    unsafe { bpf_sk_release(sk.cast()) };
    verdict
}

/// The socket-lookup tuple of an arriving packet (source = remote, destination = local).
#[inline(always)]
pub fn tuple_of(pkt: &IpPacket) -> bpf_sock_tuple {
    // SAFETY: an all-zero tuple is valid; the fields used are written below.
    let mut t: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let sport = pkt.src_port.to_be();
    let dport = pkt.dst_port.to_be();
    if pkt.v6 {
        // SAFETY: writing the union's IPv6 member.
        unsafe {
            let v6 = &mut t.__bindgen_anon_1.ipv6;
            v6.saddr = words(&pkt.src);
            v6.daddr = words(&pkt.dst);
            v6.sport = sport;
            v6.dport = dport;
        }
    } else {
        // SAFETY: writing the union's IPv4 member.
        unsafe {
            let v4 = &mut t.__bindgen_anon_1.ipv4;
            v4.saddr = u32::from_ne_bytes([pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]]);
            v4.daddr = u32::from_ne_bytes([pkt.dst[0], pkt.dst[1], pkt.dst[2], pkt.dst[3]]);
            v4.sport = sport;
            v4.dport = dport;
        }
    }
    t
}

#[inline(always)]
pub fn tuple_size(pkt: &IpPacket) -> u32 {
    if pkt.v6 { 36 } else { 12 }
}

#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}
