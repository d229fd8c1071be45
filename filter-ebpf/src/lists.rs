//! Allowlist, blocklist and the amplification-port bitmap. A stage whose map is empty is
//! skipped by a flag in CONFIG, so it costs nothing until the operator uses it; and a source
//! whose address block holds no entry of a list (the list summary) skips that list's trie;
//! the blocklist's answer for an IPv4 source is found again in a per-CPU array before its
//! trie.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{
    abi::{
        BGP_PORT, BLOCKED_V4_NONE, BLOCKED_V4_PENDING, Config, blocked_v4_slot, blocked_v4_tag,
        flags, summary, verified_key,
    },
    parse::{Fragment, IPPROTO_TCP, IpPacket},
    stage::signatures::SignatureMaps,
};

use crate::{limiter::Clock, maps, strict};

#[inline(always)]
fn v4(pkt: &IpPacket) -> [u8; 4] {
    [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]]
}

/// The source's bit in the list summary (allowlist's half; add `summary::BLOCK` for the
/// blocklist's).
#[inline(always)]
pub fn summary_bit(pkt: &IpPacket) -> u32 {
    if pkt.v6 {
        summary::bit_v6(&pkt.src)
    } else {
        summary::bit_v4(v4(pkt))
    }
}

/// Whether the list whose summary bit is `bit` may hold the source: one load (the verifier
/// inlines the array lookup), where a trie lookup is a kernel call.
#[inline(always)]
fn may_hold(bit: u32) -> bool {
    match maps::LIST_SUMMARY.get(bit >> 6) {
        Some(word) => (word >> (bit & 63)) & 1 != 0,
        None => true,
    }
}

#[inline(always)]
pub fn allowlisted(f: u32, pkt: &IpPacket, bit: u32) -> bool {
    let listed = if pkt.v6 {
        f & flags::HAS_ALLOW_V6 != 0
    } else {
        f & flags::HAS_ALLOW_V4 != 0
    };
    if !listed || !may_hold(bit) {
        return false;
    }
    if pkt.v6 {
        maps::ALLOW_V6.get(Key::new(128, pkt.src)).is_some()
    } else {
        maps::ALLOW_V4.get(Key::new(32, v4(pkt))).is_some()
    }
}

/// A blocklist entry applies until it expires; the data plane checks the expiry itself, so a
/// TTL holds even while the controller is down.
#[inline(always)]
pub fn blocklisted(f: u32, pkt: &IpPacket, bit: u32, clock: &mut Clock) -> bool {
    let listed = if pkt.v6 {
        f & flags::HAS_BLOCK_V6 != 0
    } else {
        f & flags::HAS_BLOCK_V4 != 0
    };
    if !listed || !may_hold(summary::BLOCK + bit) {
        return false;
    }
    if pkt.v6 {
        return match maps::BLOCK_V6.get(Key::new(128, pkt.src)) {
            Some(e) => in_force(e.expires_ns, clock),
            None => false,
        };
    }
    // BLOCKED_V4 first, BLOCK_V4 on a miss. The generation is read before the trie, and a
    // miss marks its slot pending under it: the answer is filled in after the trie's call,
    // under the generation it was asked in. Only the trie's key (in memory for the call)
    // outlives the call: the main program's frame and the parser's meet 512 bytes.
    let key = Key::new(32, v4(pkt));
    let addr = u32::from_ne_bytes(key.data);
    if let Some(generation) = maps::LIST_GENERATION.get(0)
        && let Some(s) = maps::BLOCKED_V4.get_ptr_mut(blocked_v4_slot(addr))
    {
        let tag = blocked_v4_tag(*generation);
        // SAFETY: a per-CPU value, only this CPU touches it while the program runs.
        let s = unsafe { &mut *s };
        if s.tag == tag && s.addr == addr && s.expires_ns != BLOCKED_V4_PENDING {
            return s.expires_ns != BLOCKED_V4_NONE && in_force(s.expires_ns, clock);
        }
        s.tag = tag;
        s.addr = addr;
        s.expires_ns = BLOCKED_V4_PENDING;
    }
    let expires_ns = match maps::BLOCK_V4.get(&key) {
        Some(entry) => entry.expires_ns,
        None => BLOCKED_V4_NONE,
    };
    let addr = u32::from_ne_bytes(key.data);
    if let Some(s) = maps::BLOCKED_V4.get_ptr_mut(blocked_v4_slot(addr)) {
        // SAFETY: as above.
        let s = unsafe { &mut *s };
        if s.addr == addr && s.expires_ns == BLOCKED_V4_PENDING {
            s.expires_ns = expires_ns;
        }
    }
    expires_ns != BLOCKED_V4_NONE && in_force(expires_ns, clock)
}

#[inline(always)]
fn in_force(expires_ns: u64, clock: &mut Clock) -> bool {
    expires_ns == 0 || clock.now() < expires_ns
}

/// What the static signatures read (`filter_common::stage::signatures`).
pub struct SignatureReads<'a> {
    pub cfg: &'a Config,
    pub pkt: &'a IpPacket,
    pub clock: &'a mut Clock,
}

impl SignatureMaps for SignatureReads<'_> {
    #[inline(always)]
    fn amp_port(&mut self, port: u16) -> bool {
        amp_port(port)
    }
    #[inline(always)]
    fn answers_the_host(&mut self) -> bool {
        strict::answers_the_host(self.cfg, self.pkt, self.clock)
    }
}

#[inline(always)]
pub fn amp_port(port: u16) -> bool {
    match maps::AMP_PORTS.get(u32::from(port >> 6)) {
        Some(word) => (word >> (port & 63)) & 1 != 0,
        None => false,
    }
}

/// Whether the packet belongs to a BGP session with a configured neighbour: TCP to or from
/// port 179 whose source is in BGP_PEERS. Only such packets pay a call, for the lookup.
#[inline(always)]
pub fn bgp_session(f: u32, pkt: &IpPacket) -> bool {
    (pkt.src_port == BGP_PORT || pkt.dst_port == BGP_PORT) && bgp_peer(f, pkt)
}

/// The rest of [`bgp_session`]'s checks and the lookup, in a function of its own so the
/// main program's frame does not grow (its stack and the parser's meet the verifier's 512
/// bytes).
#[inline(never)]
fn bgp_peer(f: u32, pkt: &IpPacket) -> bool {
    f & flags::BGP_PEERS != 0
        && pkt.proto == IPPROTO_TCP
        && pkt.fragment == Fragment::No
        // SAFETY: a plain read of a map value.
        && unsafe { maps::BGP_PEERS.get(&verified_key(&pkt.src, pkt.v6)) }.is_some()
}
