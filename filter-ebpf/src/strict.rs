//! Strict's reads of the maps and the host's sockets; the rules themselves are
//! `filter_common::stage::strict`, which `levee explain` calls too.

use aya_ebpf::{
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock, bpf_sock_tuple},
    helpers::{bpf_sk_release, bpf_skc_lookup_tcp},
    maps::lpm_trie::Key,
};
pub use filter_common::stage::strict::Strict;
use filter_common::{
    abi::{Class, Config, FlowKey, Mode, Reason, SERVICE_KEY_BITS, service_key_v4, service_key_v6},
    limit::admit,
    parse::{IPPROTO_UDP, IpPacket, TCP_ACK, TCP_SYN},
    stage::strict::{self as rules, Socket, StrictMaps, plain_headers},
};

use crate::{
    cookie, familiar,
    frame::XdpFrame,
    limiter::Clock,
    maps::{FLOW_CACHE, FLOWS, NET_BUDGET, SCRATCH, SERVICES_V4, SERVICES_V6, SVC_BUDGET},
    trigger,
};

/// `state` of a listening socket (the kernel's TCP_LISTEN).
pub const TCP_LISTEN: u32 = 10;

/// What strict reads for one packet: the program's maps and the host's sockets.
pub struct Reads<'a> {
    pub frame: &'a XdpFrame,
    pub cfg: &'a Config,
    pub pkt: &'a IpPacket,
    pub clock: &'a mut Clock,
}

impl StrictMaps for Reads<'_> {
    #[inline(always)]
    fn flow_known(&mut self) -> bool {
        flow_known(self.cfg, self.pkt, self.clock)
    }
    #[inline(always)]
    fn service(&mut self) -> Option<u32> {
        service(self.pkt)
    }
    #[inline(always)]
    fn familiar(&mut self) -> bool {
        familiar::known(self.cfg, self.pkt, self.clock.now())
    }
    #[inline(always)]
    fn trigger_holds_udp(&mut self) -> bool {
        trigger::holds(self.cfg, Class::Udp, self.clock)
    }
    #[inline(always)]
    fn syn_mode(&mut self) -> Mode {
        trigger::mode(self.cfg, trigger::held_any())
    }
    #[inline(always)]
    fn hand_to_cookie(&mut self) -> bool {
        listening(self.frame, self.pkt) && hand_over(self.pkt, 0)
    }
    #[inline(always)]
    fn socket(&mut self) -> Socket {
        segment(self.frame, self.pkt)
    }
}

/// Strict's say (`filter_common::stage::strict`). A function of its own (a BPF-to-BPF
/// call), so its lookups' buffers get their own frame.
#[inline(never)]
pub fn check(frame: &XdpFrame, cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> Strict {
    rules::judge(
        cfg.flags,
        pkt,
        &mut Reads {
            frame,
            cfg,
            pkt,
            clock,
        },
    )
}

/// Strict's say of a packet the signature program found no signature for.
#[inline(always)]
pub fn no_signature(frame: &XdpFrame, cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> Strict {
    rules::no_signature(
        pkt,
        &mut Reads {
            frame,
            cfg,
            pkt,
            clock,
        },
    )
}

/// Whether a UDP packet from an amplification port (DNS, NTP...) answers a query the host
/// itself sent (a recorded flow), so the amplification signature lets it through. Looked up
/// only for packets from those ports. A function of its own, so the main program's walk
/// does not grow by a map lookup.
#[inline(never)]
pub fn answers_the_host(cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> bool {
    flow_known(cfg, pkt, clock)
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

/// FLOW_CACHE first (an array lookup, inlined), then FLOWS. The egress program writes the
/// slot with the entry, so a slot that holds the flow holds its time; it may lag FLOWS by a
/// racing write, so an old time there is looked up in FLOWS too.
#[inline(always)]
pub fn flow_known(cfg: &Config, pkt: &IpPacket, clock: &mut Clock) -> bool {
    let key = flow_key(&pkt.src, &pkt.dst, pkt.src_port, pkt.dst_port, pkt);
    if cached_flow(&key, cfg.flow_timeout_ns, clock.now()) {
        return true;
    }
    // SAFETY: a plain read of a map value.
    match unsafe { FLOWS.get(&key) } {
        Some(f) => clock.now().wrapping_sub(f.seen_ns) < cfg.flow_timeout_ns,
        None => false,
    }
}

/// Whether FLOW_CACHE holds the flow, seen within `timeout` of `now`.
#[inline(always)]
fn cached_flow(key: &FlowKey, timeout: u64, now: u64) -> bool {
    match FLOW_CACHE.get(key.cache_slot()) {
        Some(c) => c.key.same(key) && now.wrapping_sub(c.seen_ns) < timeout,
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
    if pkt.tcp_flags & (TCP_SYN | TCP_ACK) != TCP_SYN || !plain_headers(pkt) {
        return false;
    }
    hand_over(pkt, reason as u32)
}

/// Leaves the cookie program what it needs of the SYN (`penalty`: the limiter's reason, or
/// 0); false if the scratch slot cannot be had.
#[inline(always)]
fn hand_over(pkt: &IpPacket, penalty: u32) -> bool {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU scratch, only this CPU touches it while the program runs.
    unsafe {
        (*scratch).handover = cookie::Handover {
            l3: u32::from(pkt.l3),
            v6: u32::from(pkt.v6),
            penalty,
        };
    }
    true
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

/// What the host's sockets say of a segment outside any recorded flow. A function of its
/// own, so its socket tuple gets a stack frame apart from the stages'.
#[inline(never)]
fn segment(frame: &XdpFrame, pkt: &IpPacket) -> Socket {
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
        return Socket::Nothing;
    }
    // SAFETY: a socket the lookup returned, released below on every path.
    let state = unsafe { (*(sk as *const bpf_sock)).state };
    let say = if state != TCP_LISTEN {
        Socket::Connection
    } else if pkt.tcp_flags & TCP_ACK != 0 && cookie::check_ack(frame, pkt, sk) {
        Socket::CookieAck
    } else {
        Socket::Nothing
    };
    // SAFETY: sk came from bpf_skc_lookup_tcp and is released once.
    unsafe { bpf_sk_release(sk.cast()) };
    say
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
