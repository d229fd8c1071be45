//! The parser on frames of every shape. Well-formed ones (VLAN tags, IPv4 options, IPv6
//! extension headers) pass as clean; each kind of malformed frame gets its own reason in every
//! mode and is never counted as anything else; a frame cut anywhere still gets a defined
//! verdict.

use filter_common::{
    abi::{Action, Class, Mode, Reason},
    frames::{FrameSpec, L4, VLAN_AD, VLAN_Q, l3_offset},
    parse::{TCP_ACK, TCP_PSH, TCP_SYN},
};
use levee_tests::{Case, XDP_DROP, ip, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, clean, enforce, objected};

#[test]
fn clean_traffic_passes_v4_v6_and_vlan_tagged() {
    let h = enforce();
    h.expect_all(&[
        clean("udp v4", udp(SRC4, DST4, 40000, 443), Class::Udp),
        clean("udp v6", udp(SRC6, DST6, 40000, 443), Class::Udp),
        clean("syn v4", tcp(SRC4, DST4, TCP_SYN), Class::TcpSyn),
        clean("syn v6", tcp(SRC6, DST6, TCP_SYN), Class::TcpSyn),
        clean(
            "ack v4",
            tcp(SRC4, DST4, TCP_ACK | TCP_PSH),
            Class::TcpOther,
        ),
        clean(
            "icmp v4",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp).build(),
            Class::Icmp,
        ),
        clean(
            "icmpv6",
            FrameSpec::new(ip(SRC6), ip(DST6), L4::Icmp).build(),
            Class::Icmp,
        ),
        clean(
            "gre",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Raw(47)).build(),
            Class::Other,
        ),
        clean(
            "802.1Q udp v4",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_Q)
                .build(),
            Class::Udp,
        ),
        clean(
            "QinQ syn v6",
            FrameSpec::new(
                ip(SRC6),
                ip(DST6),
                L4::Tcp {
                    sport: 1,
                    dport: 2,
                    flags: TCP_SYN,
                },
            )
            .vlan(VLAN_AD)
            .vlan(VLAN_Q)
            .build(),
            Class::TcpSyn,
        ),
        clean(
            "ipv4 options",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .ipv4_options(12)
                .build(),
            Class::Udp,
        ),
        clean(
            "ipv6 ext headers",
            FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
                .ipv6_ext(0, 8)
                .ipv6_ext(43, 24)
                .ipv6_ext(60, 16)
                .build(),
            Class::Udp,
        ),
    ]);
}

/// Malformed frames: each gets its own reason, in every mode, and never passes as anything else.
#[test]
fn malformed_frames_in_every_mode() {
    let l3 = l3_offset(0);
    let good4 = udp(SRC4, DST4, 1, 2);
    let good6 = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
        .ipv6_ext(0, 16)
        .payload(8)
        .build();
    let syn = tcp(SRC4, DST4, TCP_SYN);
    let with = |f: &[u8], edits: &[(usize, u8)]| {
        let mut f = f.to_vec();
        for (i, b) in edits {
            f[*i] = *b;
        }
        f
    };
    let malformed: Vec<(&str, Vec<u8>, Reason)> = vec![
        (
            "truncated vlan tag",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_Q)
                .build()[..16]
                .to_vec(),
            Reason::VlanTruncated,
        ),
        (
            "three vlan tags",
            FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
                .vlan(VLAN_AD)
                .vlan(VLAN_Q)
                .vlan(VLAN_Q)
                .build(),
            Reason::VlanTooDeep,
        ),
        (
            "truncated ipv4",
            good4[..l3 + 19].to_vec(),
            Reason::Ipv4Truncated,
        ),
        (
            "ipv4 bad version",
            with(&good4, &[(l3, 0x65)]),
            Reason::Ipv4BadVersion,
        ),
        (
            "ihl below 5",
            with(&good4, &[(l3, 0x44)]),
            Reason::Ipv4BadIhl,
        ),
        (
            "ihl past the end",
            with(&good4[..l3 + 28], &[(l3, 0x4f)]),
            Reason::Ipv4Truncated,
        ),
        (
            "total length lies",
            with(&good4, &[(l3 + 2, 0x02)]),
            Reason::Ipv4BadLength,
        ),
        (
            "total length below ihl",
            with(&good4, &[(l3 + 2, 0), (l3 + 3, 8)]),
            Reason::Ipv4BadLength,
        ),
        (
            "truncated udp",
            with(&good4[..l3 + 24], &[(l3 + 2, 0), (l3 + 3, 24)]),
            Reason::UdpTruncated,
        ),
        (
            "udp length lies",
            with(&good4, &[(l3 + 24, 0x7f)]),
            Reason::UdpBadLength,
        ),
        (
            "truncated tcp",
            with(&syn[..l3 + 30], &[(l3 + 2, 0), (l3 + 3, 30)]),
            Reason::TcpTruncated,
        ),
        (
            "tcp offset below 5",
            with(&syn, &[(l3 + 32, 0x30)]),
            Reason::TcpBadOffset,
        ),
        (
            "tcp offset past end",
            with(&syn, &[(l3 + 32, 0xf0)]),
            Reason::TcpTruncated,
        ),
        (
            "truncated icmp",
            with(
                &FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp).build()[..l3 + 22],
                &[(l3 + 2, 0), (l3 + 3, 22)],
            ),
            Reason::IcmpTruncated,
        ),
        (
            "truncated ipv6",
            good6[..l3 + 39].to_vec(),
            Reason::Ipv6Truncated,
        ),
        (
            "ipv6 bad version",
            with(&good6, &[(l3, 0x40)]),
            Reason::Ipv6BadVersion,
        ),
        (
            "ipv6 payload length lies",
            with(&good6, &[(l3 + 4, 0x40)]),
            Reason::Ipv6BadLength,
        ),
        (
            "truncated ipv6 extension chain",
            with(&good6[..l3 + 48], &[(l3 + 4, 0), (l3 + 5, 8)]),
            Reason::Ipv6ExtTruncated,
        ),
        (
            "too many ipv6 extension headers",
            {
                let mut s = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 });
                for _ in 0..7 {
                    s = s.ipv6_ext(60, 8);
                }
                s.build()
            },
            Reason::Ipv6ExtTooMany,
        ),
        (
            "hop-by-hop after another extension header",
            FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
                .ipv6_ext(60, 8)
                .ipv6_ext(0, 8)
                .build(),
            Reason::Ipv6ExtBadOrder,
        ),
        (
            "ipv6 ah too short for its own fields",
            with(
                &FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
                    .ipv6_ext(51, 12)
                    .build(),
                &[(l3 + 41, 0)],
            ),
            Reason::Ipv6ExtTruncated,
        ),
        (
            "udp length zero over ipv4",
            with(&good4, &[(l3 + 24, 0), (l3 + 25, 0)]),
            Reason::UdpBadLength,
        ),
        (
            "icmp shorter than its 8-byte header",
            with(
                &FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp).build()[..l3 + 26],
                &[(l3 + 3, 26)],
            ),
            Reason::IcmpTruncated,
        ),
        (
            "truncated udp in ipv6",
            with(
                &FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 }).build()
                    [..l3 + 44],
                &[(l3 + 4, 0), (l3 + 5, 4)],
            ),
            Reason::UdpTruncated,
        ),
    ];
    let mut h = enforce();
    for mode in Mode::ALL {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let cases: Vec<Case> = malformed
            .iter()
            .map(|(what, frame, reason)| Case {
                what: format!("{what} in {}", mode.name()),
                frame: frame.clone(),
                xdp,
                action,
                reason: *reason,
                class: Class::Other,
            })
            .collect();
        h.expect_all(&cases);
    }
}

/// A valid IPv6 packet with an extension chain and a zero UDP length (the whole payload, RFC
/// 2675; Linux takes it) from an allowlisted source was dropped as malformed: found by the
/// differential test against etherparse (filter-common/tests/differential.rs). It passes,
/// allowlisted or not.
#[test]
fn valid_ipv6_shapes_pass_allowlisted_or_not() {
    let l3 = l3_offset(0);
    let mut frame = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
        .ipv6_ext(0, 8)
        .ipv6_ext(60, 16)
        .ipv6_ext(51, 12)
        .payload(16)
        .build();
    let udp_len = l3 + 40 + 8 + 16 + 12 + 4;
    frame[udp_len..udp_len + 2].copy_from_slice(&[0, 0]);
    let mut h = enforce();
    h.expect_all(&[clean(
        "zero udp length behind extensions",
        frame.clone(),
        Class::Udp,
    )]);
    h.dp.allow(format!("{SRC6}/128").parse().unwrap())
        .unwrap_or_else(|e| panic!("allow: {e:#}"));
    h.expect_all(&[Case {
        what: "the same, allowlisted".into(),
        frame,
        xdp: levee_tests::XDP_PASS,
        action: Action::Pass,
        reason: Reason::Allowlisted,
        class: Class::Udp,
    }]);
}

/// Frames shorter than an Ethernet header never reach an XDP program: drivers drop runts, and
/// BPF_PROG_TEST_RUN refuses them (net/bpf/test_run.c, bpf_test_init: `size < ETH_HLEN` is
/// EINVAL). The parser's host tests cover the empty and truncated-Ethernet cases; here we show
/// the kernel never hands such a frame to the program.
#[test]
fn runt_frames_never_reach_the_program() {
    let h = enforce();
    let good = udp(SRC4, DST4, 1, 2);
    for cut in [0, 1, 6, 13] {
        let before = h.counters();
        assert!(
            h.dp.test_run(&good[..cut], 1).is_err(),
            "kernel ran a {cut}-byte frame"
        );
        assert_eq!(
            h.counters(),
            before,
            "nothing counted for a {cut}-byte frame"
        );
    }
    h.expect(
        "exactly an Ethernet header",
        &good[..14],
        XDP_DROP,
        Action::Drop,
        Reason::Ipv4Truncated,
        Class::Other,
    );
}

/// Truncations at every length of good frames: the program never fails, and a cut frame is
/// never counted as clean.
#[test]
fn every_truncation_is_a_defined_verdict() {
    let h = enforce();
    let frames = [
        udp(SRC4, DST4, 1, 2),
        udp(SRC6, DST6, 1, 2),
        tcp(SRC4, DST4, TCP_SYN),
        FrameSpec::new(
            ip(SRC6),
            ip(DST6),
            L4::Tcp {
                sport: 1,
                dport: 2,
                flags: TCP_SYN,
            },
        )
        .vlan(VLAN_AD)
        .vlan(VLAN_Q)
        .ipv6_ext(0, 8)
        .ipv6_ext(44, 8)
        .build(),
        FrameSpec::new(ip(SRC4), ip(DST4), L4::Icmp)
            .vlan(VLAN_Q)
            .ipv4_options(8)
            .build(),
    ];
    for frame in frames {
        for cut in 14..frame.len() {
            let before = h.counters();
            let xdp = h.run(&frame[..cut]);
            let after = h.counters();
            assert_eq!(xdp, XDP_DROP, "cut at {cut} of {}", frame.len());
            assert_eq!(
                after.action_packets(Action::Drop) - before.action_packets(Action::Drop),
                1
            );
            let malformed: u64 = filter_common::abi::Reason::ALL
                .iter()
                .filter(|r| r.is_malformed())
                .map(|r| after.packets(Action::Drop, *r) - before.packets(Action::Drop, *r))
                .sum();
            assert_eq!(malformed, 1, "cut at {cut}: counted as malformed");
        }
    }
}
