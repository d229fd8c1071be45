//! Allowlist, blocklist and the amplification-port bitmap. A stage whose map is empty is
//! skipped by a flag in CONFIG, so it costs nothing until the operator uses it.

use aya_ebpf::maps::lpm_trie::Key;
use filter_common::{abi::flags, parse::IpPacket};

use crate::{limiter::Clock, maps};

#[inline(always)]
fn v4(pkt: &IpPacket) -> [u8; 4] {
    [pkt.src[0], pkt.src[1], pkt.src[2], pkt.src[3]]
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
