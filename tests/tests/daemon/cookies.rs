//! The program's SYN cookies against the host's own TCP settings (issue 21): the SYN-ACK
//! offers only what the kernel will take when the client's ACK comes back, and follows the
//! settings when an operator changes them while Levee runs.

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread::sleep,
    time::Duration,
};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{addr, tcp_connect},
};

const PORT: u16 = 8080;

fn set(d: &DaemonLab, name: &str, value: &str) {
    d.lab.protected.run(|| {
        std::fs::write(format!("/proc/sys/net/ipv4/{name}"), value)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    });
}

/// Connects `n` times from a lab client; each client sends a line, the service answers it
/// back, and the client reads it. Returns how many exchanges completed.
fn exchanges(d: &DaemonLab, n: usize) -> usize {
    d.lab.client.run(|| {
        (0..n)
            .filter(|i| {
                let Ok(mut s) = tcp_connect(
                    CLIENT_V4[0],
                    addr(PROTECTED_V4, PORT),
                    Duration::from_secs(3),
                ) else {
                    return false;
                };
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                let line = format!("client {i:04}\n");
                let mut back = [0u8; 12];
                s.write_all(line.as_bytes()).is_ok()
                    && s.read_exact(&mut back).is_ok()
                    && back == line.as_bytes()
            })
            .count()
    })
}

/// Issue 21, item 4: with `tcp_sack=0` (the published mitigation of CVE-2019-11477), then
/// with `tcp_window_scaling=0`, both set while Levee runs, 20 of 20 clients connect through
/// the program's cookies and exchange data; before, every one was reset.
#[test]
fn cookies_follow_tcp_sack_and_window_scaling() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    // The SYN-ACKs leave by XDP_TX, which a veth delivers only to an end with XDP.
    let _client_xdp = d.lab.pass_all_on_client_end();
    let listener = d
        .lab
        .protected
        .run(|| TcpListener::bind(addr(PROTECTED_V4, PORT)).unwrap());
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut line = [0u8; 12];
                if s.read_exact(&mut line).is_ok() {
                    let _ = s.write_all(&line);
                }
            });
        }
    });
    // Discovery runs every tick.
    sleep(Duration::from_millis(2500));
    assert!(d.status().strict.engaged, "{:?}", d.status().strict);
    let cookies = |d: &DaemonLab| packets(&d.stats(), Action::Drop, Some(Reason::SynCookie));
    assert_eq!(exchanges(&d, 20), 20, "calm, every option on");

    for (name, what) in [
        ("tcp_sack", "tcp_sack=0"),
        ("tcp_window_scaling", "tcp_window_scaling=0 (tcp_sack=1)"),
    ] {
        set(&d, "tcp_sack", "1");
        set(&d, "tcp_window_scaling", "1");
        set(&d, name, "0");
        // Followed within two ticks.
        sleep(Duration::from_millis(2500));
        let shown = d.status().strict.kernel;
        assert!(
            shown
                .iter()
                .any(|k| k.name == format!("net.ipv4.{name}") && k.value == "0"),
            "{what}: levee status shows {shown:?}"
        );
        let before = cookies(&d);
        let made = exchanges(&d, 20);
        let answered = cookies(&d) - before;
        assert_eq!(made, 20, "{what}: {made} of 20 exchanges\n{}", d.log());
        assert!(
            answered >= 20,
            "{what}: {answered} SYNs answered with cookies"
        );
    }
    assert!(
        d.log()
            .contains("kernel TCP settings changed: the SYN-ACK now offers what the kernel takes"),
        "{}",
        d.log()
    );
    set(&d, "tcp_window_scaling", "1");
    assert!(d.stop());
}
