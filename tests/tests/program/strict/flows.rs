//! Strict by flow: the egress program's records admit the replies to the host's own flows,
//! the amplification signature lets the host's own answers through, and an accepted
//! connection is known by its socket.

use super::*;

/// Remote ends of the host's own flows (documentation prefixes; these frames never leave the
/// test run).
const RESOLVER4: &str = "198.51.100.53";
const WEB4: &str = "198.51.100.80";
const RESOLVER6: &str = "2001:db8:53::53";

#[test]
fn flows_recorded_on_egress_admit_their_replies() {
    let host = Host::new();
    host.run(|| {
        let mut cfg = strict(Mode::Enforce);
        // Here the stage of flows alone (the amplification signature has its own test).
        cfg.set_flag(flags::SIG_AMP_PORTS, false);
        let mut h = Harness::new(cfg);
        // The host asks, over UDP and TCP.
        for out in [
            udp(HOST4, RESOLVER4, 40000, 53),
            udp(HOST6, RESOLVER6, 40000, 53),
            segment(HOST4, WEB4, 40001, 443, TCP_SYN, 7, 0, &[]),
        ] {
            assert_eq!(
                h.dp.test_run_egress(&out).unwrap(),
                TCX_NEXT,
                "egress never drops"
            );
        }
        h.expect_all(&[
            passed(
                "dns answer",
                udp(RESOLVER4, HOST4, 53, 40000),
                Reason::Flow,
                Class::Udp,
            ),
            passed(
                "dns6 answer",
                udp(RESOLVER6, HOST6, 53, 40000),
                Reason::Flow,
                Class::Udp,
            ),
            passed(
                "udp flows are per remote address: another remote port",
                udp(RESOLVER4, HOST4, 5353, 40000),
                Reason::Flow,
                Class::Udp,
            ),
            dropped(
                "answer from another address",
                udp("198.51.100.54", HOST4, 53, 40000),
                Reason::NoService,
                Class::Udp,
            ),
            dropped(
                "answer to another local port",
                udp(RESOLVER4, HOST4, 53, 40002),
                Reason::NoService,
                Class::Udp,
            ),
            dropped(
                "answer to another local address",
                udp(RESOLVER4, "198.18.0.2", 53, 40000),
                Reason::NoService,
                Class::Udp,
            ),
            dropped(
                "dns6 answer from another address",
                udp("2001:db8:53::54", HOST6, 53, 40000),
                Reason::NoService,
                Class::Udp,
            ),
            passed(
                "syn-ack of the host's connection",
                segment(WEB4, HOST4, 443, 40001, TCP_SYN | TCP_ACK, 99, 8, &[]),
                Reason::Flow,
                Class::TcpOther,
            ),
            passed(
                "data of the host's connection",
                segment(WEB4, HOST4, 443, 40001, TCP_ACK | TCP_PSH, 100, 8, &[]),
                Reason::Flow,
                Class::TcpOther,
            ),
            dropped(
                "tcp flows keep ports: another remote port",
                segment(WEB4, HOST4, 444, 40001, TCP_ACK, 100, 8, &[]),
                Reason::NoFlow,
                Class::TcpOther,
            ),
            dropped(
                "ack from an unrelated address",
                segment("198.51.100.81", HOST4, 443, 40001, TCP_ACK, 100, 8, &[]),
                Reason::NoFlow,
                Class::TcpOther,
            ),
            dropped(
                "tcp is not udp: the resolver's tcp",
                segment(RESOLVER4, HOST4, 53, 40000, TCP_ACK, 1, 1, &[]),
                Reason::NoFlow,
                Class::TcpOther,
            ),
        ]);

        // The flow's age is measured against flow_timeout_ns.
        let mut aged = cfg;
        aged.flow_timeout_ns = 1;
        h.dp.set_config(aged).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        h.expect(
            "flow older than the timeout",
            &udp(RESOLVER4, HOST4, 53, 40000),
            XDP_DROP,
            Action::Drop,
            Reason::NoService,
            Class::Udp,
        );

        // Without TRACK_FLOWS the egress program records nothing.
        let mut off = cfg;
        off.set_flag(flags::TRACK_FLOWS, false);
        let h = Harness::new(off);
        assert_eq!(
            h.dp.test_run_egress(&udp(HOST4, RESOLVER4, 40000, 53))
                .unwrap(),
            TCX_NEXT
        );
        assert_eq!(
            h.dp.test_run_egress(&segment(HOST4, WEB4, 40001, 443, TCP_SYN, 7, 0, &[]))
                .unwrap(),
            TCX_NEXT
        );
        h.expect_all(&[
            dropped(
                "untracked: dns answer",
                udp(RESOLVER4, HOST4, 53, 40000),
                Reason::NoService,
                Class::Udp,
            ),
            dropped(
                "untracked: syn-ack",
                segment(WEB4, HOST4, 443, 40001, TCP_SYN | TCP_ACK, 99, 8, &[]),
                Reason::NoFlow,
                Class::TcpOther,
            ),
        ]);
    });
}

/// A reply to the host's own DNS or NTP query comes from an amplification port: with flows
/// tracked, the signature lets a recorded flow's packets through (strict engaged or not), and
/// still drops every other packet from those ports.
#[test]
fn amp_signature_lets_the_hosts_own_answers_through() {
    let mut h = Harness::new(strict(Mode::Enforce));
    for query in [
        udp(HOST4, RESOLVER4, 40000, 53),
        udp(HOST4, RESOLVER4, 40123, 123),
    ] {
        assert_eq!(h.dp.test_run_egress(&query).unwrap(), TCX_NEXT);
    }
    let cases = |strict_engaged: bool| {
        let unflowed = if strict_engaged {
            Reason::Flow
        } else {
            Reason::Clean
        };
        vec![
            passed(
                format!("dns answer of a recorded flow (strict {strict_engaged})"),
                udp(RESOLVER4, HOST4, 53, 40000),
                unflowed,
                Class::Udp,
            ),
            passed(
                format!("ntp answer of a recorded flow (strict {strict_engaged})"),
                udp(RESOLVER4, HOST4, 123, 40123),
                unflowed,
                Class::Udp,
            ),
            dropped(
                format!("port 53 to another local port (strict {strict_engaged})"),
                udp(RESOLVER4, HOST4, 53, 40002),
                Reason::AmpPort,
                Class::Udp,
            ),
            dropped(
                format!("port 53 from another address (strict {strict_engaged})"),
                udp("198.51.100.54", HOST4, 53, 40000),
                Reason::AmpPort,
                Class::Udp,
            ),
        ]
    };
    h.expect_all(&cases(true));
    let mut cfg = strict(Mode::Enforce);
    cfg.set_flag(flags::STRICT, false);
    h.dp.set_config(cfg).unwrap();
    h.expect_all(&cases(false));
    // Without flow tracking (strict off) the signature drops them all, as it always did.
    cfg.set_flag(flags::TRACK_FLOWS, false);
    h.dp.set_config(cfg).unwrap();
    h.expect(
        "dns answer, flows not tracked",
        &udp(RESOLVER4, HOST4, 53, 40000),
        XDP_DROP,
        Action::Drop,
        Reason::AmpPort,
        Class::Udp,
    );
}

/// An accepted connection the egress program has not seen yet is known by its socket.
#[test]
fn established_socket_is_a_flow() {
    let host = Host::new();
    host.run(|| {
        let (l, port) = listen(HOST4);
        let client = TcpStream::connect(SocketAddr::new(ip(HOST4), port)).expect("connect");
        let (_server, peer) = l.accept().expect("accept");
        assert_eq!(peer, client.local_addr().unwrap());
        let h = Harness::new(strict(Mode::Enforce));
        let peer_ip = peer.ip().to_string();
        h.expect_all(&[
            passed(
                "segment of an established connection",
                segment(
                    &peer_ip,
                    HOST4,
                    peer.port(),
                    port,
                    TCP_ACK | TCP_PSH,
                    1,
                    1,
                    &[],
                ),
                Reason::Flow,
                Class::TcpOther,
            ),
            dropped(
                "same ports, listener only: no cookie",
                segment(CLIENT4, HOST4, peer.port(), port, TCP_ACK, 1, 1, &[]),
                Reason::NoFlow,
                Class::TcpOther,
            ),
        ]);
        drop(client);
    });
}

/// Two flows of the host whose FLOW_CACHE slot is the same (found by search): the second
/// recorded takes the slot, and the first is still found in FLOWS. An old time in a slot
/// is not a flow.
#[test]
fn flows_that_share_a_cache_slot_are_both_known() {
    use filter_common::abi::FlowKey;
    let key = |remote: [u8; 4], port: u16| {
        let mut k = FlowKey {
            local_port: port,
            proto: filter_common::parse::IPPROTO_UDP,
            family: 4,
            ..FlowKey::default()
        };
        k.remote[..4].copy_from_slice(&remote);
        k.local[..4].copy_from_slice(&HOST4.parse::<std::net::Ipv4Addr>().unwrap().octets());
        k
    };
    let first = key([198, 51, 100, 53], 40000);
    let (remote, port) = (1..=254u8)
        .flat_map(|b| (40001..41000u16).map(move |p| ([198, 51, 100, b], p)))
        .find(|(r, p)| key(*r, *p).cache_slot() == first.cache_slot())
        .expect("a tuple sharing the first's slot");
    let second = std::net::Ipv4Addr::from(remote).to_string();
    let host = Host::new();
    host.run(|| {
        let mut cfg = strict(Mode::Enforce);
        cfg.set_flag(flags::SIG_AMP_PORTS, false);
        let mut h = Harness::new(cfg);
        for out in [
            udp(HOST4, RESOLVER4, 40000, 53),
            udp(HOST4, &second, port, 53),
        ] {
            assert_eq!(h.dp.test_run_egress(&out).unwrap(), TCX_NEXT);
        }
        h.expect_all(&[
            passed(
                "the first flow, its slot taken by the second",
                udp(RESOLVER4, HOST4, 53, 40000),
                Reason::Flow,
                Class::Udp,
            ),
            passed(
                "the second flow, in the slot",
                udp(&second, HOST4, 53, port),
                Reason::Flow,
                Class::Udp,
            ),
        ]);
        let mut aged = cfg;
        aged.flow_timeout_ns = 1;
        h.dp.set_config(aged).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        h.expect(
            "the slot's flow, older than the timeout",
            &udp(&second, HOST4, 53, port),
            XDP_DROP,
            Action::Drop,
            Reason::NoService,
            Class::Udp,
        );
    });
}
