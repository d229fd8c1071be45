//! End to end: two network namespaces joined by veth, the program attached in native mode on
//! the protected side, real UDP and TCP traffic from the client side.

use std::{
    io::{Read, Write},
    net::TcpListener,
    time::Duration,
};

use filter_common::abi::{Action, Class, Config, Mode, Reason};
use levee::dataplane::{AttachMode, Attached, Dataplane, LoadOptions};
use levee_tests::{
    netns::{CLIENT_V4, CLIENT_V6, Lab, PROTECTED_V4, PROTECTED_V6},
    traffic::{DATAGRAMS, addr, drain, send_udp, tcp_connect, udp_receiver, warm_up},
};

#[test]
fn blocklisted_source_dropped_while_another_sources_tcp_works() {
    let lab = Lab::new();
    let options = LoadOptions {
        max_sources: 1 << 14,
        ..LoadOptions::default()
    };
    let mut dp =
        Dataplane::load(&options, Config::new(Mode::Enforce)).unwrap_or_else(|e| panic!("{e:#}"));
    let blocked_v4 = CLIENT_V4[1];
    let blocked_v6 = CLIENT_V6[1];
    dp.block(format!("{blocked_v4}/32").parse().unwrap(), None)
        .unwrap();
    dp.block("2001:db8:18:1::/64".parse().unwrap(), None)
        .unwrap();
    let attached = lab
        .protected
        .run(|| dp.attach(&lab.iface, AttachMode::Native))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(attached, Attached::Native);

    // Services on the protected side; the sockets live in its namespace.
    let udp4 = udp_receiver(&lab.protected, PROTECTED_V4, 9000);
    let udp6 = udp_receiver(&lab.protected, PROTECTED_V6, 9000);
    let listener = lab
        .protected
        .run(|| TcpListener::bind(addr(PROTECTED_V4, 8080)).unwrap());
    let echo = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).expect("read");
        conn.write_all(&buf[..n]).expect("echo");
        peer
    });

    // A TCP connection from an allowed source works end to end.
    let reply = lab.client.run(|| {
        let mut s = tcp_connect(
            CLIENT_V4[0],
            addr(PROTECTED_V4, 8080),
            Duration::from_secs(5),
        )
        .expect("TCP connect from an allowed source");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"hello levee").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("echo reply");
        buf[..n].to_vec()
    });
    assert_eq!(reply, b"hello levee");
    assert_eq!(echo.join().unwrap().ip().to_string(), CLIENT_V4[0]);

    // A TCP connection from the blocklisted source never gets through.
    let syn_drops = dp
        .counters()
        .unwrap()
        .get(Action::Drop, Reason::Blocklisted, Class::TcpSyn)
        .packets;
    let blocked = lab.client.run(|| {
        tcp_connect(
            blocked_v4,
            addr(PROTECTED_V4, 8080),
            Duration::from_millis(1500),
        )
    });
    assert!(
        blocked.is_err(),
        "TCP connect from a blocklisted source succeeded"
    );
    let syn_drops_after = dp
        .counters()
        .unwrap()
        .get(Action::Drop, Reason::Blocklisted, Class::TcpSyn)
        .packets;
    assert!(syn_drops_after > syn_drops, "the blocked SYNs were counted");

    // Resolve neighbours first (ARP, NDP), so no measured datagram waits in an unresolved queue.
    warm_up(&lab.client, CLIENT_V4[0], &udp4);
    warm_up(&lab.client, CLIENT_V6[0], &udp6);

    let before = dp.counters().unwrap();
    let mut delivered = Vec::new();
    for (src, sock, dst) in [
        (CLIENT_V4[0], &udp4, PROTECTED_V4),
        (blocked_v4, &udp4, PROTECTED_V4),
        (CLIENT_V6[0], &udp6, PROTECTED_V6),
        (blocked_v6, &udp6, PROTECTED_V6),
    ] {
        send_udp(&lab, src, addr(dst, 9000));
        let got = drain(sock);
        delivered.push(got.get(&src.parse().unwrap()).copied().unwrap_or(0));
        assert_eq!(
            got.len(),
            delivered.last().map_or(0, |n| usize::from(*n > 0)),
            "only {src} sent"
        );
    }
    let after = dp.counters().unwrap();
    assert_eq!(
        delivered,
        [DATAGRAMS, 0, DATAGRAMS, 0],
        "delivered from allowed v4, blocked v4, allowed v6, blocked v6"
    );

    let delta = |a, r, c| after.get(a, r, c).packets - before.get(a, r, c).packets;
    assert_eq!(
        delta(Action::Drop, Reason::Blocklisted, Class::Udp),
        2 * DATAGRAMS,
        "drops counted"
    );
    assert_eq!(
        delta(Action::Pass, Reason::Clean, Class::Udp),
        2 * DATAGRAMS,
        "passes counted"
    );
}
