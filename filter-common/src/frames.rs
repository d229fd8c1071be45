//! Builds Ethernet frames for tests and benchmarks: well-formed by default, with knobs for VLAN
//! tags, IPv4 options, IPv6 extension headers and fragments. Malformed frames are made by
//! building a good one and then breaking a byte or cutting it short.

use std::net::IpAddr;
use std::vec::Vec;

use crate::parse::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP,
    IPPROTO_UDP,
};

/// The transport part of a frame.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
    },
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    /// ICMP echo request (ICMPv6 for IPv6).
    Icmp,
    /// Any other protocol number, no header.
    Raw(u8),
}

/// A frame to build.
#[derive(Clone, Debug)]
pub struct FrameSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    /// Payload bytes after the transport header.
    pub payload: usize,
    /// VLAN TPIDs, outermost first (0x88a8, 0x8100).
    pub vlans: Vec<u16>,
    /// IPv4 option bytes (a multiple of 4, NOPs).
    pub ipv4_options: usize,
    /// IPv6 extension headers before the transport header: (next-header type, length in bytes).
    pub ipv6_ext: Vec<(u8, usize)>,
    /// (offset in 8-byte units, more fragments): makes an IP fragment.
    pub fragment: Option<(u16, bool)>,
}

impl FrameSpec {
    pub fn new(src: IpAddr, dst: IpAddr, l4: L4) -> FrameSpec {
        FrameSpec {
            src,
            dst,
            l4,
            payload: 0,
            vlans: Vec::new(),
            ipv4_options: 0,
            ipv6_ext: Vec::new(),
            fragment: None,
        }
    }

    pub fn payload(mut self, n: usize) -> Self {
        self.payload = n;
        self
    }

    pub fn vlan(mut self, tpid: u16) -> Self {
        self.vlans.push(tpid);
        self
    }

    pub fn ipv4_options(mut self, n: usize) -> Self {
        self.ipv4_options = n;
        self
    }

    pub fn ipv6_ext(mut self, kind: u8, len: usize) -> Self {
        self.ipv6_ext.push((kind, len));
        self
    }

    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        self.fragment = Some((offset, more));
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        let (proto, mut l4) = self.transport(v6);
        l4.resize(l4.len() + self.payload, 0xab);
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]); // dst MAC
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]); // src MAC
        for (i, tpid) in self.vlans.iter().enumerate() {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&(100 + i as u16).to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                let ihl = 20 + self.ipv4_options;
                let total = (ihl + l4.len()) as u16;
                let frag = self
                    .fragment
                    .map_or(0, |(off, more)| off | if more { 0x2000 } else { 0 });
                let mut h = Vec::new();
                h.push(0x40 | (ihl / 4) as u8);
                h.push(0);
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34]);
                h.extend_from_slice(&frag.to_be_bytes());
                h.extend_from_slice(&[64, proto, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h.resize(ihl, 1); // NOP options
                let sum = checksum(&h);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                let mut ext = Vec::new();
                let mut kinds: Vec<u8> = self.ipv6_ext.iter().map(|(k, _)| *k).collect();
                if self.fragment.is_some() {
                    kinds.push(44);
                }
                let chain_first = kinds.first().copied().unwrap_or(proto);
                for (i, kind) in kinds.iter().enumerate() {
                    let next = kinds.get(i + 1).copied().unwrap_or(proto);
                    if *kind == 44 {
                        let (off, more) = self.fragment.unwrap_or((0, false));
                        let fo = (off << 3) | u16::from(more);
                        ext.extend_from_slice(&[next, 0]);
                        ext.extend_from_slice(&fo.to_be_bytes());
                        ext.extend_from_slice(&[0, 0, 0, 7]);
                    } else {
                        let len = self.ipv6_ext[i].1.max(8);
                        let units = if *kind == 51 {
                            len / 4 - 2
                        } else {
                            len / 8 - 1
                        };
                        ext.push(next);
                        ext.push(units as u8);
                        ext.resize(ext.len() + len - 2, 0);
                    }
                }
                let payload_len = (ext.len() + l4.len()) as u16;
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&payload_len.to_be_bytes());
                f.push(chain_first);
                f.push(64);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&ext);
            }
            _ => panic!("source and destination must be of one family"),
        }
        f.extend_from_slice(&l4);
        f
    }

    fn transport(&self, v6: bool) -> (u8, Vec<u8>) {
        let payload = self.payload;
        match self.l4 {
            L4::Udp { sport, dport } => {
                let mut u = Vec::new();
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
                u.extend_from_slice(&[0, 0]);
                (IPPROTO_UDP, u)
            }
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut t = Vec::new();
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&1u32.to_be_bytes());
                t.extend_from_slice(&0u32.to_be_bytes());
                t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
                (IPPROTO_TCP, t)
            }
            L4::Icmp if v6 => (IPPROTO_ICMPV6, std::vec![128, 0, 0, 0, 0, 1, 0, 1]),
            L4::Icmp => (IPPROTO_ICMP, std::vec![8, 0, 0, 0, 0, 1, 0, 1]),
            L4::Raw(p) => (p, Vec::new()),
        }
    }
}

/// Offset of the IP header in a frame built with `vlans` tags.
pub fn l3_offset(vlans: usize) -> usize {
    14 + 4 * vlans
}

/// An ARP request frame (not IP).
pub fn arp() -> Vec<u8> {
    let mut f = std::vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.resize(42, 0);
    f
}

/// An 802.1Q and an 802.1ad TPID, for [`FrameSpec::vlan`].
pub const VLAN_Q: u16 = ETH_P_8021Q;
pub const VLAN_AD: u16 = ETH_P_8021AD;

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
