//! Fragmented UDP under strict (issue 21), as a host's stack sends it: 2,000-byte datagrams
//! over a 1,500-byte link leave the client in two fragments each. To a closed port, every
//! fragment is dropped; to a served port, the service receives every datagram whole.

use std::{net::UdpSocket, thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, CLIENT_V6, PROTECTED_V4, PROTECTED_V6},
    traffic::{addr, force_receive_buffer},
};

const DATAGRAMS: usize = 200;
const SIZE: usize = 2000;

/// Sends `DATAGRAMS` datagrams of `SIZE` bytes from `src` to `dst`, paced.
fn send_big(d: &DaemonLab, src: &str, dst: std::net::SocketAddr) {
    d.lab.client.run(|| {
        let s = UdpSocket::bind(addr(src, 0)).expect("bind client");
        let payload = vec![0x5a; SIZE];
        for i in 0..DATAGRAMS {
            s.send_to(&payload, dst).expect("send");
            if i % 10 == 9 {
                sleep(Duration::from_millis(2));
            }
        }
    });
}

#[test]
fn fragmented_udp_is_dropped_to_a_closed_port_and_whole_to_a_served_one() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    let served: Vec<UdpSocket> = [PROTECTED_V4, PROTECTED_V6]
        .iter()
        .map(|ip| {
            d.lab.protected.run(|| {
                let s = UdpSocket::bind(addr(ip, 7000)).expect("bind service");
                s.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                force_receive_buffer(&s, 8 << 20);
                s
            })
        })
        .collect();
    // Discovery runs every tick.
    sleep(Duration::from_millis(2500));
    for (i, (src, dst)) in [(CLIENT_V4[0], PROTECTED_V4), (CLIENT_V6[0], PROTECTED_V6)]
        .into_iter()
        .enumerate()
    {
        let before = packets(&d.stats(), Action::Drop, Some(Reason::NoService));
        send_big(&d, src, addr(dst, 7777));
        sleep(Duration::from_millis(200));
        let dropped = packets(&d.stats(), Action::Drop, Some(Reason::NoService)) - before;
        let frames = (2 * DATAGRAMS) as u64;
        assert!(
            dropped * 100 >= frames * 99,
            "{dst}: {dropped} of {frames} fragments to a closed port dropped as no_service"
        );

        send_big(&d, src, addr(dst, 7000));
        let mut whole = 0;
        let mut buf = vec![0u8; 4096];
        while let Ok((n, _)) = served[i].recv_from(&mut buf) {
            assert_eq!(n, SIZE, "{dst}: a datagram reassembled whole");
            whole += 1;
        }
        assert!(
            whole * 100 >= DATAGRAMS * 99,
            "{dst}: {whole} of {DATAGRAMS} fragmented datagrams reached the service"
        );
    }
    assert!(d.stop());
}
