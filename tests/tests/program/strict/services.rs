//! Strict by service: what no service accounts for is dropped, and unknown sources share a
//! service's budget while its class is under attack.

use super::*;

#[test]
fn no_service_drops_tcp_and_udp_and_nothing_else() {
    let mut h = Harness::new(strict(Mode::Enforce));
    let mut cases = Vec::new();
    for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
        cases.extend([
            dropped(
                format!("syn {dst}"),
                tcp(src, dst, TCP_SYN),
                Reason::NoService,
                Class::TcpSyn,
            ),
            dropped(
                format!("udp {dst}"),
                udp(src, dst, 40000, 5000),
                Reason::NoService,
                Class::Udp,
            ),
            dropped(
                format!("ack without flow or socket {dst}"),
                tcp(src, dst, TCP_ACK),
                Reason::NoFlow,
                Class::TcpOther,
            ),
            clean(
                format!("icmp is not strict's {dst}"),
                FrameSpec::new(ip(src), ip(dst), L4::Icmp).build(),
                Class::Icmp,
            ),
            // Issue 21: a later fragment whose first never passed (`fragments`).
            dropped(
                format!("a later fragment without its first {dst}"),
                FrameSpec::new(ip(src), ip(dst), L4::Raw(IPPROTO_UDP))
                    .payload(16)
                    .fragment(8, false)
                    .build(),
                Reason::NoService,
                Class::Udp,
            ),
        ]);
    }
    h.expect_all(&cases);

    // A service for another port or another address serves nothing here.
    h.dp.set_services(&[
        rule(IPPROTO_UDP, 5001, "0.0.0.0/0"),
        rule(IPPROTO_TCP, 5000, "0.0.0.0/0"),
        rule(IPPROTO_UDP, 5000, "198.18.9.0/24"),
        rule(IPPROTO_UDP, 5000, "2001:db8:99::/48"),
    ])
    .unwrap();
    h.expect_all(&[
        dropped(
            "udp: only tcp or another prefix serves the port",
            udp(SRC4, DST4, 40000, 5000),
            Reason::NoService,
            Class::Udp,
        ),
        dropped(
            "udp6: another prefix",
            udp(SRC6, DST6, 40000, 5000),
            Reason::NoService,
            Class::Udp,
        ),
        passed(
            "udp, served port",
            udp(SRC4, DST4, 40000, 5001),
            Reason::Clean,
            Class::Udp,
        ),
    ]);
    h.dp.set_services(&[]).unwrap();

    // Monitor only counts.
    h.set_mode(Mode::Monitor);
    h.expect_all(&[
        case(
            "monitor syn",
            tcp(SRC4, DST4, TCP_SYN),
            XDP_PASS,
            Action::WouldDrop,
            Reason::NoService,
            Class::TcpSyn,
        ),
        case(
            "monitor udp6",
            udp(SRC6, DST6, 1, 5000),
            XDP_PASS,
            Action::WouldDrop,
            Reason::NoService,
            Class::Udp,
        ),
    ]);

    // Without the STRICT flag the same frames are clean.
    let mut cfg = strict(Mode::Enforce);
    cfg.set_flag(flags::STRICT, false);
    h.dp.set_config(cfg).unwrap();
    let mut cases = Vec::new();
    for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
        cases.extend([
            clean(
                format!("no strict: syn {dst}"),
                tcp(src, dst, TCP_SYN),
                Class::TcpSyn,
            ),
            clean(
                format!("no strict: udp {dst}"),
                udp(src, dst, 40000, 5000),
                Class::Udp,
            ),
            clean(
                format!("no strict: ack {dst}"),
                tcp(src, dst, TCP_ACK),
                Class::TcpOther,
            ),
        ]);
    }
    h.expect_all(&cases);
}

#[test]
fn udp_budget_for_unknown_sources() {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_this_cpu();
            let mut cfg = strict(Mode::Enforce);
            cfg.set_flag(flags::UDP_BUDGET, true);
            cfg.unknown_budget = Rate {
                pps: 2,
                burst_packets: 2,
                ..Rate::default()
            }
            .encode();
            let mut h = Harness::new(cfg);
            h.dp.set_services(&[
                rule(IPPROTO_UDP, 5000, "0.0.0.0/0"),
                rule(IPPROTO_UDP, 5001, "0.0.0.0/0"),
            ])
            .unwrap();
            // The host answered 198.18.7.7 from the service's port.
            assert_eq!(
                h.dp.test_run_egress(&udp(HOST4, "198.18.7.7", 5000, 1234))
                    .unwrap(),
                TCX_NEXT
            );
            h.expect_all(&[
                passed(
                    "first unknown source",
                    udp("198.18.3.1", HOST4, 1000, 5000),
                    Reason::Clean,
                    Class::Udp,
                ),
                passed(
                    "second unknown source",
                    udp("198.18.3.2", HOST4, 1000, 5000),
                    Reason::Clean,
                    Class::Udp,
                ),
                dropped(
                    "third unknown source: over budget",
                    udp("198.18.3.3", HOST4, 1000, 5000),
                    Reason::UnknownBudget,
                    Class::Udp,
                ),
                dropped(
                    "first source again: over budget",
                    udp("198.18.3.1", HOST4, 1000, 5000),
                    Reason::UnknownBudget,
                    Class::Udp,
                ),
                passed(
                    "known client, any port",
                    udp("198.18.7.7", HOST4, 999, 5000),
                    Reason::Flow,
                    Class::Udp,
                ),
                passed(
                    "another service has its own budget",
                    udp("198.18.3.4", HOST4, 1000, 5001),
                    Reason::Clean,
                    Class::Udp,
                ),
            ]);
            // Without UDP_BUDGET the service takes everything.
            let mut off = cfg;
            off.set_flag(flags::UDP_BUDGET, false);
            h.dp.set_config(off).unwrap();
            h.expect_all(&[
                passed(
                    "no budget",
                    udp("198.18.3.5", HOST4, 1000, 5000),
                    Reason::Clean,
                    Class::Udp,
                ),
                passed(
                    "no budget",
                    udp("198.18.3.6", HOST4, 1000, 5000),
                    Reason::Clean,
                    Class::Udp,
                ),
            ]);
            // Refill: half a second buys one packet at 2 pps.
            h.dp.set_config(cfg).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(600));
            h.expect(
                "refilled",
                &udp("198.18.3.7", HOST4, 1000, 5000),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::Udp,
            );
        });
    });
}
