//! The attack signatures, each switchable by a config flag: UDP from amplification ports,
//! impossible TCP flag combinations, and IP fragments (off by default). Each objects in
//! monitor and enforce alike and passes the look-alike traffic that is fine.

use filter_common::{
    abi::{Action, Class, Mode, Reason, flags},
    frames::{FrameSpec, L4},
    parse::{TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG},
};
use levee_tests::{Case, XDP_DROP, XDP_PASS, ip, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, clean, enforce, objected};

#[test]
fn amplification_ports_signature_switchable() {
    let mut h = enforce();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let m = mode.name();
        let from_amp_ports = [53, 123, 1900, 11211, 389, 19, 161].map(|port| Case {
            what: format!("udp from {port} in {m}"),
            frame: udp(SRC4, DST4, port, 40000),
            xdp,
            action,
            reason: Reason::AmpPort,
            class: Class::Udp,
        });
        h.expect_all(&from_amp_ports);
        h.expect_all(&[
            Case {
                what: format!("v6 ntp in {m}"),
                frame: udp(SRC6, DST6, 123, 40000),
                xdp,
                action,
                reason: Reason::AmpPort,
                class: Class::Udp,
            },
            clean(
                format!("to port 53 is fine in {m}"),
                udp(SRC4, DST4, 40000, 53),
                Class::Udp,
            ),
            clean(
                format!("tcp from 53 is fine in {m}"),
                FrameSpec::new(
                    ip(SRC4),
                    ip(DST4),
                    L4::Tcp {
                        sport: 53,
                        dport: 1,
                        flags: TCP_ACK,
                    },
                )
                .build(),
                Class::TcpOther,
            ),
        ]);
    }
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_AMP_PORTS, false);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "signature off",
        &udp(SRC4, DST4, 123, 40000),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    h.dp.set_amp_ports(&[4444]).unwrap();
    cfg.set_flag(flags::SIG_AMP_PORTS, true);
    h.dp.set_config(cfg).unwrap();
    h.expect_all(&[
        Case {
            what: "custom port".into(),
            frame: udp(SRC4, DST4, 4444, 1),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::AmpPort,
            class: Class::Udp,
        },
        clean(
            "default port no longer listed",
            udp(SRC4, DST4, 123, 1),
            Class::Udp,
        ),
    ]);
}

#[test]
fn impossible_tcp_flags_signature_switchable() {
    let mut h = enforce();
    let combinations = [
        ("syn+fin", TCP_SYN | TCP_FIN, Class::TcpSyn),
        ("syn+rst", TCP_SYN | TCP_RST, Class::TcpSyn),
        ("null", 0, Class::TcpOther),
        ("xmas", TCP_FIN | TCP_PSH | TCP_URG, Class::TcpOther),
    ];
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let cases: Vec<Case> = combinations
            .iter()
            .flat_map(|&(what, f, class)| {
                [(SRC4, DST4, "v4"), (SRC6, DST6, "v6")].map(|(src, dst, family)| Case {
                    what: format!("{what} {family} in {}", mode.name()),
                    frame: tcp(src, dst, f),
                    xdp,
                    action,
                    reason: Reason::TcpFlags,
                    class,
                })
            })
            .collect();
        h.expect_all(&cases);
    }
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_TCP_FLAGS, false);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "off",
        &tcp(SRC4, DST4, 0),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::TcpOther,
    );
}

#[test]
fn fragments_signature_switchable() {
    let mut h = enforce();
    let first4 = FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(0, true)
        .build();
    let later4 = FrameSpec::new(ip(SRC4), ip(DST4), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(100, false)
        .build();
    let later6 = FrameSpec::new(ip(SRC6), ip(DST6), L4::Udp { sport: 1, dport: 2 })
        .payload(32)
        .fragment(100, true)
        .build();
    h.expect(
        "fragments allowed by default",
        &later4,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
    let mut cfg = h.dp.config();
    cfg.set_flag(flags::SIG_FRAGMENTS, true);
    h.dp.set_config(cfg).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let m = mode.name();
        h.expect_all(&[
            Case {
                what: format!("first v4 in {m}"),
                frame: first4.clone(),
                xdp,
                action,
                reason: Reason::Fragment,
                class: Class::Udp,
            },
            Case {
                what: format!("later v4 in {m}"),
                frame: later4.clone(),
                xdp,
                action,
                reason: Reason::Fragment,
                class: Class::Udp,
            },
            Case {
                what: format!("later v6 in {m}"),
                frame: later6.clone(),
                xdp,
                action,
                reason: Reason::Fragment,
                class: Class::Udp,
            },
            clean(
                format!("whole datagram in {m}"),
                udp(SRC4, DST4, 1, 2),
                Class::Udp,
            ),
        ]);
    }
}

/// Issue 21: after a later IPv6 fragment's Fragment header comes data, whatever header it
/// names (that header starts in the first fragment; Linux queues the rest for reassembly).
/// One naming Destination Options, over data that would be a truncated one, was dropped as
/// `ipv6_ext_truncated`, even from an allowlisted source.
#[test]
fn a_later_ipv6_fragment_naming_an_extension_header_is_data() {
    let mut h = enforce();
    let mut later = FrameSpec::new(
        ip(SRC6),
        ip(DST6),
        L4::Udp {
            sport: 40000,
            dport: 2,
        },
    )
    .payload(32)
    .fragment(100, true)
    .build();
    let fragment_header = filter_common::frames::l3_offset(0) + 40;
    assert_eq!(later[fragment_header], 17, "the Fragment header names UDP");
    later[fragment_header] = 60;
    h.expect(
        "a later fragment naming Destination Options",
        &later,
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Other,
    );
    h.dp.allow(format!("{SRC6}/128").parse().unwrap()).unwrap();
    h.expect(
        "the same from an allowlisted source",
        &later,
        XDP_PASS,
        Action::Pass,
        Reason::Allowlisted,
        Class::Other,
    );
}
