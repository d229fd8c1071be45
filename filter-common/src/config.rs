//! Encoding of the operator's settings into the data plane's [`Config`], and the source-key
//! derivation both sides must agree on.

use crate::abi::{Class, Config, Limit, Mode, flags};

/// UDP source ports of well-known reflection/amplification floods: QOTD, chargen, DNS, TFTP,
/// portmap, NTP, NetBIOS, SNMP, CLDAP, SLP, RIP, SSDP, ARD, WS-Discovery, mDNS, CoAP,
/// Ubiquiti discovery, memcached, DVR DHCPDiscover.
pub const DEFAULT_AMP_PORTS: [u16; 19] = [
    17, 19, 53, 69, 111, 123, 137, 161, 389, 427, 520, 1900, 3283, 3702, 5353, 5683, 10001, 11211,
    37810,
];

const NS_PER_SEC: u64 = 1_000_000_000;

/// How long a flow admits replies after the host's last packet on it: long enough for a TCP
/// keepalive-less idle stream and a slow DNS answer, short enough that a spoofer cannot
/// count on one.
pub const DEFAULT_FLOW_TIMEOUT_NS: u64 = 300 * NS_PER_SEC;

/// A rate limit as an operator writes it. Zero rates mean "no limit" on that dimension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Packets per second.
    pub pps: u64,
    /// Packets that may arrive at once after an idle time (at least 1).
    pub burst_packets: u64,
    /// Bits per second.
    pub bits_per_sec: u64,
    /// Bytes that may arrive at once after an idle time (at least one full frame).
    pub burst_bytes: u64,
}

impl Rate {
    /// The encoded form the data plane uses.
    pub fn encode(&self) -> Limit {
        let mut limit = Limit::default();
        if let Some(cost) = NS_PER_SEC.checked_div(self.pps) {
            let cost = cost.max(1);
            limit.pkt_cost_ns = cost;
            limit.pkt_burst_ns = cost.saturating_mul(self.burst_packets.max(1));
        }
        if self.bits_per_sec > 0 {
            // ns per byte in 1/65536 ns: 8e9 * 65536 / bits_per_sec.
            let fp = ((8 * NS_PER_SEC as u128) << 16) / self.bits_per_sec as u128;
            limit.byte_cost_fp16 = (fp as u64).max(1);
            let burst = self.burst_bytes.max(1514) as u128;
            limit.byte_burst_ns = ((burst * fp) >> 16).min(u64::MAX as u128) as u64;
        }
        limit
    }

    /// The encoded share of one CPU when `cpus` CPUs enforce this rate between them.
    pub fn encode_per_cpu(&self, cpus: u32) -> Limit {
        let cpus = cpus.max(1) as u64;
        Rate {
            pps: self.pps.div_ceil(cpus),
            burst_packets: self.burst_packets.div_ceil(cpus),
            bits_per_sec: self.bits_per_sec.div_ceil(cpus),
            burst_bytes: self.burst_bytes.div_ceil(cpus),
        }
        .encode()
    }
}

/// The nominal jiffy length closest to a measured one: CONFIG_HZ is one of 100, 250, 300 or
/// 1000, and a jiffy is 1e9 / HZ ns (rounded as the kernel's TICK_NSEC).
pub fn nominal_jiffy_ns(measured_ns: u64) -> u64 {
    [100u64, 250, 300, 1000]
        .iter()
        .map(|hz| (NS_PER_SEC + hz / 2) / hz)
        .min_by_key(|tick| tick.abs_diff(measured_ns))
        .unwrap_or(NS_PER_SEC / 250)
}

/// Mask of an IPv4 prefix length, as stored in [`Config::source_mask_v4`].
pub fn source_mask_v4(prefix_len: u8) -> u32 {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    u32::from_ne_bytes(bits.to_be_bytes())
}

/// Mask of an IPv6 prefix length (up to 64), as stored in [`Config::source_mask_v6`].
pub fn source_mask_v6(prefix_len: u8) -> u64 {
    let bits = u64::MAX
        .checked_shl(64 - u32::from(prefix_len.min(64)))
        .unwrap_or(0);
    u64::from_ne_bytes(bits.to_be_bytes())
}

/// The SOURCES key of an IPv4 source.
#[inline(always)]
pub fn source_key_v4(addr: [u8; 4], mask: u32) -> u64 {
    let a = (u32::from_ne_bytes(addr) & mask).to_ne_bytes();
    u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, a[0], a[1], a[2], a[3]])
}

/// The source a SOURCES key stands for (masked), for listing.
pub fn source_of_key(key: u64) -> SourceOfKey {
    let b = key.to_ne_bytes();
    if b[..4] == [0xff; 4] {
        SourceOfKey::V4([b[4], b[5], b[6], b[7]])
    } else {
        SourceOfKey::V6Prefix(b)
    }
}

/// What [`source_of_key`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOfKey {
    V4([u8; 4]),
    /// The upper 8 bytes of the IPv6 address.
    V6Prefix([u8; 8]),
}

/// The one SOURCES key every multicast IPv6 source (ff00::/8) shares.
pub const MULTICAST_V6_KEY: [u8; 8] = [0xff, 0, 0, 0, 0, 0, 0, 0];

/// The SOURCES key of an IPv6 source: its upper 64 bits, masked. Multicast addresses are
/// never a packet's source (RFC 4291, 2.7), so a "source" in ff00::/8 is spoofed: all of them
/// share one key, which also keeps them clear of the IPv4 keys (ffff:ffff:... in the upper
/// 32 bits), so no IPv6 source can spend an IPv4 source's tokens.
#[inline(always)]
pub fn source_key_v6(addr: &[u8; 16], mask: u64) -> u64 {
    if addr[0] == 0xff {
        return u64::from_ne_bytes(MULTICAST_V6_KEY);
    }
    let hi = [
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ];
    u64::from_ne_bytes(hi) & mask
}

impl Config {
    /// A configuration in `mode` with no limits, per-source keys of /32 and /64, the
    /// amplification-port and TCP-flag signatures on and fragments allowed.
    pub fn new(mode: Mode) -> Config {
        Config {
            mode: mode as u32,
            flags: flags::SIG_AMP_PORTS | flags::SIG_TCP_FLAGS,
            source_mask_v4: source_mask_v4(32),
            sketch_threshold: 8,
            source_mask_v6: source_mask_v6(64),
            sketch_seed: 0,
            penalty_ns: 0,
            sketch_window_shift: 24,
            sample_every: 0,
            clock_ns_per_jiffy: 0,
            clock_offset_ns: 0,
            source: [Limit::default(); Class::COUNT],
            aggregate: [Limit::default(); Class::COUNT],
            flow_timeout_ns: DEFAULT_FLOW_TIMEOUT_NS,
            unknown_budget: Limit::default(),
            new_source_cost_ns: 0,
            new_source_burst_ns: 0,
            trigger_cost_ns: [0; Class::COUNT],
            trigger_burst_ns: [0; Class::COUNT],
            trigger_hold_ns: 0,
            familiar_ttl_ns: 0,
            familiar_new_cost_ns: 0,
            familiar_new_burst_ns: 0,
            synack_mss_v4: 1460,
            synack_mss_v6: 1440,
            synack_wscale: 7,
            synack_ttl: 64,
            _pad: [0; 2],
        }
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u32(self.mode)
    }

    /// Turns the operator-set flag bits on or off, leaving the map-content bits alone.
    pub fn set_flag(&mut self, flag: u32, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keys_never_meet_ipv4_keys() {
        let v4 = source_key_v4([198, 18, 0, 3], source_mask_v4(32));
        let mut v6 = [0u8; 16];
        v6[..8].copy_from_slice(&v4.to_ne_bytes());
        assert_eq!(
            &v6[..4],
            &[0xff; 4],
            "an IPv4 key looks like ffff:ffff::/32"
        );
        let key = source_key_v6(&v6, source_mask_v6(64));
        assert_ne!(key, v4);
        assert_eq!(key.to_ne_bytes(), MULTICAST_V6_KEY);
        let unicast: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            source_key_v6(&unicast, source_mask_v6(64)).to_ne_bytes()[..8],
            unicast[..8]
        );
    }

    #[test]
    fn rate_encodes_costs_and_bursts() {
        let l = Rate {
            pps: 1000,
            burst_packets: 10,
            bits_per_sec: 8_000_000,
            burst_bytes: 15_000,
        }
        .encode();
        assert_eq!(l.pkt_cost_ns, 1_000_000);
        assert_eq!(l.pkt_burst_ns, 10_000_000);
        // 1 MB/s: 1000 ns a byte.
        assert_eq!(l.byte_cost_fp16, 1000 << 16);
        assert_eq!(l.byte_burst_ns, 15_000_000);
    }

    #[test]
    fn zero_rate_means_unlimited_and_burst_has_a_floor() {
        assert_eq!(Rate::default().encode(), Limit::default());
        let l = Rate {
            pps: 10,
            burst_packets: 0,
            bits_per_sec: 1_000_000_000,
            burst_bytes: 0,
        }
        .encode();
        assert_eq!(
            l.pkt_burst_ns, l.pkt_cost_ns,
            "a burst of at least one packet"
        );
        assert_eq!(l.byte_burst_ns, 1514 * 8, "a burst of at least one frame");
    }

    #[test]
    fn per_cpu_share_divides_the_rate() {
        let r = Rate {
            pps: 1000,
            burst_packets: 100,
            ..Rate::default()
        };
        let l = r.encode_per_cpu(4);
        assert_eq!(l.pkt_cost_ns, 4_000_000);
        assert_eq!(l.pkt_burst_ns, 25 * 4_000_000);
    }

    #[test]
    fn jiffy_length_snaps_to_a_kernel_hz() {
        assert_eq!(nominal_jiffy_ns(4_100_000), 4_000_000);
        assert_eq!(nominal_jiffy_ns(3_900_000), 4_000_000);
        assert_eq!(nominal_jiffy_ns(3_400_000), 3_333_333);
        assert_eq!(nominal_jiffy_ns(9_000_000), 10_000_000);
        assert_eq!(nominal_jiffy_ns(1_050_000), 1_000_000);
    }

    #[test]
    fn masks_and_keys() {
        let a = [192, 0, 2, 77];
        assert_eq!(
            source_of_key(source_key_v4(a, source_mask_v4(32))),
            SourceOfKey::V4(a)
        );
        assert_eq!(
            source_key_v4(a, source_mask_v4(24)),
            source_key_v4([192, 0, 2, 1], source_mask_v4(24))
        );
        assert_ne!(
            source_key_v4(a, source_mask_v4(32)),
            source_key_v4([192, 0, 2, 1], source_mask_v4(32))
        );
        assert_eq!(source_mask_v4(0), 0);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]);
        let mut c = b;
        c[15] = 9;
        assert_eq!(
            source_key_v6(&b, source_mask_v6(64)),
            source_key_v6(&c, source_mask_v6(64))
        );
        c[7] = 3;
        assert_ne!(
            source_key_v6(&b, source_mask_v6(64)),
            source_key_v6(&c, source_mask_v6(64))
        );
        assert_eq!(
            source_key_v6(&b, source_mask_v6(48)),
            source_key_v6(&c, source_mask_v6(48))
        );
        // An IPv6 key is never read as IPv4: only ffff:ffff::/32 (multicast) would be.
        assert_eq!(
            source_of_key(source_key_v6(&b, source_mask_v6(64))),
            SourceOfKey::V6Prefix([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2])
        );
    }
}
