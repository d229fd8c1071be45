//! Header parsing shared by the XDP program and the host tests.
//!
//! The parser reads through a [`Frame`], which the XDP program implements over packet memory
//! (every read bounds-checked against `data_end`, as the verifier demands) and the host
//! implements over a byte slice. Every loop is bounded by a small constant.
//!
//! A frame is either not IP (passed untouched), a parsed IP packet, or malformed with exactly
//! one [`Reason`]; a malformed frame is never reported as something it is not.

use crate::abi::{Class, Reason};

/// Read access to a frame's bytes.
pub trait Frame {
    /// Total length of the frame in bytes.
    fn size(&self) -> usize;
    /// The `N` bytes at `offset`, or `None` if they run past the end of the frame.
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Frame for [u8] {
    #[inline(always)]
    fn size(&self) -> usize {
        <[u8]>::len(self)
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let end = offset.checked_add(N)?;
        self.get(offset..end)?.try_into().ok()
    }
}

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// VLAN tags the parser walks (802.1Q and 802.1ad double tagging).
pub const VLAN_MAX_DEPTH: usize = 2;
/// IPv6 extension headers the parser walks before it gives up.
pub const IPV6_EXT_MAX: usize = 6;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// A whole datagram.
    No,
    /// The first fragment: it carries the transport header.
    First,
    /// A later fragment: no transport header, ports unknown.
    Later,
}

/// What the filter needs to know of an IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket {
    /// True for IPv6.
    pub v6: bool,
    /// Source address: IPv4 in the first 4 bytes, or IPv6.
    pub src: [u8; 16],
    /// Destination address, laid out as `src`.
    pub dst: [u8; 16],
    /// Offsets of the IP header and of the transport header in the frame.
    pub l3: u16,
    pub l4: u16,
    /// Transport protocol (after IPv6 extension headers).
    pub proto: u8,
    pub class: Class,
    pub fragment: Fragment,
    /// Ports in host byte order, zero when unknown.
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP flags byte, zero for other protocols.
    pub tcp_flags: u8,
    /// The datagram's identification (IPv4's 16 bits, or the IPv6 Fragment header's 32),
    /// which its fragments share; zero when there is none.
    pub frag_id: u32,
}

/// The parse result of a well-formed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    NonIp,
    Ip(IpPacket),
}

#[inline(always)]
fn be16(b0: u8, b1: u8) -> u16 {
    u16::from_be_bytes([b0, b1])
}

/// Parses a frame from its Ethernet header down to the transport header.
#[inline(always)]
pub fn parse<F: Frame + ?Sized>(frame: &F) -> Result<Parsed, Reason> {
    let eth: [u8; ETH_HLEN] = frame.load(0).ok_or(Reason::EthTruncated)?;
    let mut ethertype = be16(eth[12], eth[13]);
    let mut off = ETH_HLEN;
    for _ in 0..VLAN_MAX_DEPTH {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: [u8; 4] = frame.load(off).ok_or(Reason::VlanTruncated)?;
        ethertype = be16(tag[2], tag[3]);
        off += 4;
    }
    match ethertype {
        ETH_P_IP => parse_ipv4(frame, off).map(Parsed::Ip),
        ETH_P_IPV6 => parse_ipv6(frame, off).map(Parsed::Ip),
        ETH_P_8021Q | ETH_P_8021AD => Err(Reason::VlanTooDeep),
        _ => Ok(Parsed::NonIp),
    }
}

#[inline(always)]
fn parse_ipv4<F: Frame + ?Sized>(frame: &F, off: usize) -> Result<IpPacket, Reason> {
    let h: [u8; 20] = frame.load(off).ok_or(Reason::Ipv4Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(Reason::Ipv4BadVersion);
    }
    let ihl = ((h[0] & 0x0f) as usize) * 4;
    if ihl < 20 {
        return Err(Reason::Ipv4BadIhl);
    }
    if off + ihl > frame.size() {
        return Err(Reason::Ipv4Truncated);
    }
    let total = be16(h[2], h[3]) as usize;
    // Shorter than the frame is fine (Ethernet pads to 60 bytes); longer is a lie.
    if total < ihl || off + total > frame.size() {
        return Err(Reason::Ipv4BadLength);
    }
    let frag = be16(h[6], h[7]);
    let more_fragments = frag & 0x2000 != 0;
    let frag_offset = frag & 0x1fff;
    let fragment = if frag_offset != 0 {
        Fragment::Later
    } else if more_fragments {
        Fragment::First
    } else {
        Fragment::No
    };
    let mut pkt = IpPacket {
        v6: false,
        src: [
            h[12], h[13], h[14], h[15], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        dst: [
            h[16], h[17], h[18], h[19], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
        l3: off as u16,
        l4: (off + ihl) as u16,
        proto: h[9],
        class: Class::Other,
        fragment,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        frag_id: be16(h[4], h[5]) as u32,
    };
    parse_l4(frame, off + ihl, off + total, &mut pkt)?;
    Ok(pkt)
}

#[inline(always)]
fn parse_ipv6<F: Frame + ?Sized>(frame: &F, off: usize) -> Result<IpPacket, Reason> {
    let h: [u8; 40] = frame.load(off).ok_or(Reason::Ipv6Truncated)?;
    if h[0] >> 4 != 6 {
        return Err(Reason::Ipv6BadVersion);
    }
    let end = off + 40 + be16(h[4], h[5]) as usize;
    if end > frame.size() {
        return Err(Reason::Ipv6BadLength);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    let l3 = off;
    let mut next = h[6];
    let mut off = off + 40;
    let mut fragment = Fragment::No;
    let mut frag_id = 0u32;
    let mut done = false;
    // Set by a later fragment's Fragment header: what follows it is data, not headers (the
    // header it names starts in the first fragment; Linux queues the rest for reassembly).
    let mut data_follows = false;
    for i in 0..IPV6_EXT_MAX {
        // Hop-by-Hop options may only come first (RFC 8200, 4.1); Linux drops them elsewhere.
        if next == IPPROTO_HOPOPTS && i > 0 {
            return Err(Reason::Ipv6ExtBadOrder);
        }
        let len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH => {
                let e: [u8; 2] = frame.load(off).ok_or(Reason::Ipv6ExtTruncated)?;
                // AH counts its length in 4-byte units less 2, the others in 8-byte units less 1.
                let len = if next == IPPROTO_AH {
                    // Its fixed fields alone take 12 bytes: a length of 0 cuts them short.
                    if e[1] == 0 {
                        return Err(Reason::Ipv6ExtTruncated);
                    }
                    (e[1] as usize + 2) * 4
                } else {
                    (e[1] as usize + 1) * 8
                };
                next = e[0];
                len
            }
            IPPROTO_FRAGMENT => {
                let e: [u8; 8] = frame.load(off).ok_or(Reason::Ipv6ExtTruncated)?;
                next = e[0];
                let frag = be16(e[2], e[3]);
                frag_id = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                if frag & 0xfff8 != 0 {
                    fragment = Fragment::Later;
                    data_follows = true;
                } else if frag & 1 != 0 {
                    fragment = Fragment::First;
                }
                8
            }
            _ => {
                done = true;
                0
            }
        };
        if done {
            break;
        }
        off += len;
        if off > end {
            return Err(Reason::Ipv6ExtTruncated);
        }
        if data_follows {
            done = true;
            break;
        }
    }
    if !done && next == IPPROTO_HOPOPTS {
        return Err(Reason::Ipv6ExtBadOrder);
    }
    if !done && is_ext_header(next) {
        return Err(Reason::Ipv6ExtTooMany);
    }
    let mut pkt = IpPacket {
        v6: true,
        src,
        dst,
        l3: l3 as u16,
        l4: off as u16,
        proto: next,
        class: Class::Other,
        fragment,
        src_port: 0,
        dst_port: 0,
        tcp_flags: 0,
        frag_id,
    };
    parse_l4(frame, off, end, &mut pkt)?;
    Ok(pkt)
}

#[inline(always)]
fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
    )
}

/// Fills in class, ports and flags from the transport header at `off`; `end` is where the IP
/// payload ends, so a header must fit before it as well as in the frame.
#[inline(always)]
fn parse_l4<F: Frame + ?Sized>(
    frame: &F,
    off: usize,
    end: usize,
    pkt: &mut IpPacket,
) -> Result<(), Reason> {
    let later_fragment = pkt.fragment == Fragment::Later;
    match pkt.proto {
        IPPROTO_TCP => {
            pkt.class = Class::TcpOther;
            if later_fragment {
                return Ok(());
            }
            if off + 20 > end {
                return Err(Reason::TcpTruncated);
            }
            let t: [u8; 20] = frame.load(off).ok_or(Reason::TcpTruncated)?;
            let data_offset = ((t[12] >> 4) as usize) * 4;
            if data_offset < 20 {
                return Err(Reason::TcpBadOffset);
            }
            if off + data_offset > end {
                return Err(Reason::TcpTruncated);
            }
            pkt.src_port = be16(t[0], t[1]);
            pkt.dst_port = be16(t[2], t[3]);
            pkt.tcp_flags = t[13];
            if t[13] & (TCP_SYN | TCP_ACK) == TCP_SYN {
                pkt.class = Class::TcpSyn;
            }
        }
        IPPROTO_UDP => {
            pkt.class = Class::Udp;
            if later_fragment {
                return Ok(());
            }
            if off + 8 > end {
                return Err(Reason::UdpTruncated);
            }
            let u: [u8; 8] = frame.load(off).ok_or(Reason::UdpTruncated)?;
            let mut udp_len = be16(u[4], u[5]) as usize;
            // Over IPv6 a zero length means the rest of the payload (RFC 2675; Linux takes it).
            if pkt.v6 && udp_len == 0 {
                udp_len = end - off;
            }
            // A first fragment's UDP length covers the whole datagram, not this fragment.
            if udp_len < 8 || (pkt.fragment == Fragment::No && off + udp_len > end) {
                return Err(Reason::UdpBadLength);
            }
            pkt.src_port = be16(u[0], u[1]);
            pkt.dst_port = be16(u[2], u[3]);
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            pkt.class = Class::Icmp;
            // The ICMP and ICMPv6 headers are 8 bytes; Linux pulls that much before anything.
            if !later_fragment && off + 8 > end {
                return Err(Reason::IcmpTruncated);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether a TCP flag set is impossible in legitimate traffic: SYN+FIN, SYN+RST, no flags at
/// all (NULL scan) or FIN+PSH+URG (XMAS scan).
#[inline(always)]
pub fn impossible_tcp_flags(flags: u8) -> bool {
    let f = flags & 0x3f;
    f == 0
        || f & (TCP_SYN | TCP_FIN) == TCP_SYN | TCP_FIN
        || f & (TCP_SYN | TCP_RST) == TCP_SYN | TCP_RST
        || f & (TCP_FIN | TCP_PSH | TCP_URG) == TCP_FIN | TCP_PSH | TCP_URG
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::{FrameSpec, L4, VLAN_AD, VLAN_Q, arp, l3_offset};
    use std::net::IpAddr;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn udp4() -> FrameSpec {
        FrameSpec::new(
            v4("192.0.2.1"),
            v4("198.51.100.1"),
            L4::Udp {
                sport: 4000,
                dport: 53,
            },
        )
        .payload(18)
    }

    fn udp6() -> FrameSpec {
        FrameSpec::new(
            v4("2001:db8::1"),
            v4("2001:db8::2"),
            L4::Udp {
                sport: 4000,
                dport: 53,
            },
        )
        .payload(10)
    }

    fn ip(frame: &[u8]) -> IpPacket {
        match parse(frame) {
            Ok(Parsed::Ip(p)) => p,
            other => panic!("expected an IP packet, got {other:?}"),
        }
    }

    #[test]
    fn udp_over_ipv4() {
        let p = ip(&udp4().build());
        assert!(!p.v6);
        assert_eq!(&p.src[..4], &[192, 0, 2, 1]);
        assert_eq!(&p.dst[..4], &[198, 51, 100, 1]);
        assert_eq!((p.l3, p.l4), (14, 34));
        assert_eq!((p.class, p.src_port, p.dst_port), (Class::Udp, 4000, 53));
        assert_eq!(p.fragment, Fragment::No);
    }

    #[test]
    fn tcp_syn_and_other_tcp() {
        let spec = |flags| {
            FrameSpec::new(
                v4("192.0.2.1"),
                v4("198.51.100.1"),
                L4::Tcp {
                    sport: 1,
                    dport: 80,
                    flags,
                },
            )
        };
        assert_eq!(ip(&spec(TCP_SYN).build()).class, Class::TcpSyn);
        assert_eq!(ip(&spec(TCP_SYN | TCP_ACK).build()).class, Class::TcpOther);
        let p = ip(&spec(TCP_ACK | TCP_PSH).build());
        assert_eq!(
            (p.class, p.tcp_flags, p.dst_port),
            (Class::TcpOther, 0x18, 80)
        );
    }

    #[test]
    fn icmp_and_other_protocols() {
        let icmp = FrameSpec::new(v4("192.0.2.1"), v4("198.51.100.1"), L4::Icmp);
        assert_eq!(ip(&icmp.build()).class, Class::Icmp);
        let icmp6 = FrameSpec::new(v4("2001:db8::1"), v4("2001:db8::2"), L4::Icmp);
        assert_eq!(ip(&icmp6.build()).class, Class::Icmp);
        let gre = FrameSpec::new(v4("192.0.2.1"), v4("198.51.100.1"), L4::Raw(47));
        assert_eq!(ip(&gre.build()).class, Class::Other);
    }

    #[test]
    fn vlan_tags_one_and_two_but_not_three() {
        let p = ip(&udp4().vlan(VLAN_Q).build());
        assert_eq!(p.class, Class::Udp);
        let p = ip(&udp6().vlan(VLAN_AD).vlan(VLAN_Q).build());
        assert!(p.v6);
        let f = udp4().vlan(VLAN_AD).vlan(VLAN_Q).vlan(VLAN_Q).build();
        assert_eq!(parse(&f[..]), Err(Reason::VlanTooDeep));
        let f = udp4().vlan(VLAN_Q).build();
        assert_eq!(parse(&f[..16]), Err(Reason::VlanTruncated));
    }

    #[test]
    fn non_ip_passes_as_non_ip() {
        assert_eq!(parse(&arp()[..]), Ok(Parsed::NonIp));
    }

    #[test]
    fn ipv4_options_and_fragments() {
        let p = ip(&udp4().ipv4_options(8).build());
        assert_eq!((p.class, p.dst_port), (Class::Udp, 53));
        let p = ip(&udp4().fragment(0, true).build());
        assert_eq!((p.fragment, p.dst_port), (Fragment::First, 53));
        let p = ip(&udp4().fragment(185, false).build());
        assert_eq!(
            (p.fragment, p.class, p.dst_port),
            (Fragment::Later, Class::Udp, 0)
        );
    }

    /// Shapes a differential test against etherparse found (see tests/differential.rs), each
    /// settled as Linux receives it.
    #[test]
    fn shapes_the_reference_parser_taught_us() {
        // Hop-by-Hop options only directly after the IPv6 header (RFC 8200, 4.1).
        let late_hop = udp6().ipv6_ext(60, 8).ipv6_ext(0, 8).build();
        assert_eq!(parse(&late_hop[..]), Err(Reason::Ipv6ExtBadOrder));
        assert_eq!(
            ip(&udp6().ipv6_ext(0, 8).ipv6_ext(60, 8).build()).dst_port,
            53
        );
        // An AH header whose length cannot hold its own fixed fields.
        let mut ah = udp6().ipv6_ext(51, 12).build();
        ah[l3_offset(0) + 40 + 1] = 0;
        assert_eq!(parse(&ah[..]), Err(Reason::Ipv6ExtTruncated));
        // A zero UDP length is the whole payload over IPv6 (RFC 2675), refused over IPv4.
        let mut v6 = udp6().build();
        v6[l3_offset(0) + 40 + 4..l3_offset(0) + 40 + 6].copy_from_slice(&[0, 0]);
        assert_eq!(ip(&v6).dst_port, 53);
        let mut over_v4 = udp4().build();
        over_v4[l3_offset(0) + 20 + 4..l3_offset(0) + 20 + 6].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&over_v4[..]), Err(Reason::UdpBadLength));
        // ICMP needs its whole 8-byte header.
        let icmp = FrameSpec::new(v4("192.0.2.1"), v4("198.51.100.1"), L4::Icmp).build();
        let mut short = icmp[..l3_offset(0) + 20 + 6].to_vec();
        short[l3_offset(0) + 3] = 26;
        assert_eq!(parse(&short[..]), Err(Reason::IcmpTruncated));
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        let p = ip(&udp6()
            .ipv6_ext(0, 8)
            .ipv6_ext(60, 16)
            .ipv6_ext(43, 24)
            .build());
        assert_eq!(
            (p.proto, p.class, p.dst_port),
            (IPPROTO_UDP, Class::Udp, 53)
        );
        let p = ip(&udp6().ipv6_ext(51, 12).build());
        assert_eq!(p.dst_port, 53);
        let p = ip(&udp6().fragment(0, true).build());
        assert_eq!((p.fragment, p.dst_port), (Fragment::First, 53));
        let p = ip(&udp6().fragment(100, false).build());
        assert_eq!(
            (p.fragment, p.class, p.dst_port),
            (Fragment::Later, Class::Udp, 0)
        );
        let mut deep = udp6();
        for _ in 0..=IPV6_EXT_MAX {
            deep = deep.ipv6_ext(60, 8);
        }
        assert_eq!(parse(&deep.build()[..]), Err(Reason::Ipv6ExtTooMany));
        let mut ok = udp6();
        for _ in 0..IPV6_EXT_MAX {
            ok = ok.ipv6_ext(60, 8);
        }
        assert_eq!(ip(&ok.build()).dst_port, 53);
    }

    #[test]
    fn malformed_frames_get_their_own_reason() {
        let l3 = l3_offset(0);
        let good4 = udp4().build();
        let good6 = udp6().ipv6_ext(0, 16).build();
        let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
            ("empty", vec![], Reason::EthTruncated),
            (
                "truncated ethernet",
                good4[..10].to_vec(),
                Reason::EthTruncated,
            ),
            (
                "truncated ipv4",
                good4[..l3 + 12].to_vec(),
                Reason::Ipv4Truncated,
            ),
            (
                "ipv4 version 5",
                {
                    let mut f = good4.clone();
                    f[l3] = 0x55;
                    f
                },
                Reason::Ipv4BadVersion,
            ),
            (
                "ihl below 5",
                {
                    let mut f = good4.clone();
                    f[l3] = 0x44;
                    f
                },
                Reason::Ipv4BadIhl,
            ),
            (
                "ihl past the end",
                {
                    let mut f = good4[..l3 + 24].to_vec();
                    f[l3] = 0x4f;
                    f
                },
                Reason::Ipv4Truncated,
            ),
            (
                "total length lies",
                {
                    let mut f = good4.clone();
                    f[l3 + 2] = 0x05;
                    f
                },
                Reason::Ipv4BadLength,
            ),
            (
                "total length below header",
                {
                    let mut f = good4.clone();
                    f[l3 + 2] = 0;
                    f[l3 + 3] = 10;
                    f
                },
                Reason::Ipv4BadLength,
            ),
            (
                "truncated udp",
                {
                    let mut f = good4[..l3 + 24].to_vec();
                    f[l3 + 3] = 24;
                    f
                },
                Reason::UdpTruncated,
            ),
            (
                "udp length lies",
                {
                    let mut f = good4.clone();
                    f[l3 + 24] = 0x04;
                    f
                },
                Reason::UdpBadLength,
            ),
            (
                "udp length below 8",
                {
                    let mut f = good4.clone();
                    f[l3 + 24] = 0;
                    f[l3 + 25] = 4;
                    f
                },
                Reason::UdpBadLength,
            ),
            (
                "truncated ipv6",
                good6[..l3 + 30].to_vec(),
                Reason::Ipv6Truncated,
            ),
            (
                "ipv6 version 4",
                {
                    let mut f = good6.clone();
                    f[l3] = 0x40;
                    f
                },
                Reason::Ipv6BadVersion,
            ),
            (
                "ipv6 payload lies",
                {
                    let mut f = good6.clone();
                    f[l3 + 4] = 0x10;
                    f
                },
                Reason::Ipv6BadLength,
            ),
            (
                "ipv6 ext chain truncated",
                {
                    let mut f = good6[..l3 + 40 + 8].to_vec();
                    f[l3 + 4] = 0;
                    f[l3 + 5] = 8;
                    f
                },
                Reason::Ipv6ExtTruncated,
            ),
            (
                "ipv6 ext header cut at the frame end",
                good6[..l3 + 41].to_vec(),
                Reason::Ipv6BadLength,
            ),
        ];
        for (name, frame, reason) in cases {
            assert_eq!(parse(&frame[..]), Err(reason), "{name}");
            assert!(reason.is_malformed(), "{name}");
        }
    }

    #[test]
    fn truncated_tcp_and_bad_offset() {
        let l3 = l3_offset(0);
        let syn = FrameSpec::new(
            v4("192.0.2.1"),
            v4("198.51.100.1"),
            L4::Tcp {
                sport: 1,
                dport: 80,
                flags: TCP_SYN,
            },
        )
        .build();
        let mut short = syn[..l3 + 30].to_vec();
        short[l3 + 3] = 30;
        assert_eq!(parse(&short[..]), Err(Reason::TcpTruncated));
        let mut bad = syn.clone();
        bad[l3 + 20 + 12] = 0x40;
        assert_eq!(parse(&bad[..]), Err(Reason::TcpBadOffset));
        let mut long = syn.clone();
        long[l3 + 20 + 12] = 0xf0;
        assert_eq!(parse(&long[..]), Err(Reason::TcpTruncated));
        let icmp = FrameSpec::new(v4("192.0.2.1"), v4("198.51.100.1"), L4::Icmp).build();
        let mut short = icmp[..l3 + 22].to_vec();
        short[l3 + 3] = 22;
        assert_eq!(parse(&short[..]), Err(Reason::IcmpTruncated));
    }

    #[test]
    fn ethernet_padding_is_not_a_lie() {
        let mut f = udp4().payload(0).build();
        f.resize(60, 0);
        assert_eq!(ip(&f).class, Class::Udp);
    }

    #[test]
    fn impossible_flags() {
        for f in [
            0,
            TCP_SYN | TCP_FIN,
            TCP_SYN | TCP_RST,
            TCP_FIN | TCP_PSH | TCP_URG,
        ] {
            assert!(impossible_tcp_flags(f), "{f:#x}");
        }
        for f in [
            TCP_SYN,
            TCP_SYN | TCP_ACK,
            TCP_ACK,
            TCP_FIN | TCP_ACK,
            TCP_RST,
            TCP_PSH | TCP_ACK,
        ] {
            assert!(!impossible_tcp_flags(f), "{f:#x}");
        }
    }
}
