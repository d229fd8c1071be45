//! Allowlist, blocklist and the amplification-port bitmap. A stage whose map is empty is
//! skipped by a flag in CONFIG, so it costs nothing until the operator uses it; and a source
//! whose address block holds no list entry (the list summary) skips both tries.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{
    abi::{flags, summary},
    parse::IpPacket,
};

use crate::{limiter::Clock, maps};

#[inline(always)]
fn v4(pkt: &IpPacket) -> [u8; 4] {
    [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]]
}

/// Whether a list may hold the source: false only if neither list of its family can match.
/// Costs one load (the verifier inlines the array lookup), where a trie lookup is a call.
#[inline(always)]
pub fn may_be_listed(f: u32, pkt: &IpPacket) -> bool {
    let (lists, bit) = if pkt.v6 {
        (
            f & (flags::HAS_ALLOW_V6 | flags::HAS_BLOCK_V6),
            summary::bit_v6(&pkt.src),
        )
    } else {
        (
            f & (flags::HAS_ALLOW_V4 | flags::HAS_BLOCK_V4),
            summary::bit_v4(v4(pkt)),
        )
    };
    if lists == 0 {
        return false;
    }
    match maps::LIST_SUMMARY.get(bit >> 6) {
        Some(word) => (word >> (bit & 63)) & 1 != 0,
        None => true,
    }
}

#[inline(always)]
pub fn allowlisted(f: u32, pkt: &IpPacket) -> bool {
    if pkt.v6 {
        f & flags::HAS_ALLOW_V6 != 0 && maps::ALLOW_V6.get(Key::new(128, pkt.src)).is_some()
    } else {
        f & flags::HAS_ALLOW_V4 != 0 && maps::ALLOW_V4.get(Key::new(32, v4(pkt))).is_some()
    }
}

/// A blocklist entry applies until it expires; the data plane checks the expiry itself, so a
/// TTL holds even while the controller is down.
#[inline(always)]
pub fn blocklisted(f: u32, pkt: &IpPacket, clock: &mut Clock) -> bool {
    let entry = if pkt.v6 {
        if f & flags::HAS_BLOCK_V6 == 0 {
            return false;
        }
        maps::BLOCK_V6.get(Key::new(128, pkt.src))
    } else {
        if f & flags::HAS_BLOCK_V4 == 0 {
            return false;
        }
        maps::BLOCK_V4.get(Key::new(32, v4(pkt)))
    };
    match entry {
        Some(e) => e.expires_ns == 0 || clock.now() < e.expires_ns,
        None => false,
    }
}

#[inline(always)]
pub fn amp_port(port: u16) -> bool {
    match maps::AMP_PORTS.get(u32::from(port >> 6)) {
        Some(word) => (word >> (port & 63)) & 1 != 0,
        None => false,
    }
}
