//! The program's SYN cookies against the host's own TCP settings (issue 21): the SYN-ACK
//! offers only what the kernel will take when the client's ACK comes back, follows the
//! settings when an operator changes them while Levee runs, and offers each interface's own
//! MSS.

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread::sleep,
    time::Duration,
};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, CLIENT2_V4, PROTECTED_V4, PROTECTED2_V4},
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
            .filter(|i| exchange(CLIENT_V4[0], PROTECTED_V4, *i).is_some())
            .count()
    })
}

/// One connection from `src` to `dst`: a line sent and echoed. Returns the client's MSS
/// (`TCP_MAXSEG`: what the SYN-ACK offered, less the timestamps) if it completed.
fn exchange(src: &str, dst: &str, i: usize) -> Option<u32> {
    use std::os::fd::AsRawFd;
    let mut s = tcp_connect(src, addr(dst, PORT), Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let line = format!("client {i:04}\n");
    let mut back = [0u8; 12];
    s.write_all(line.as_bytes()).ok()?;
    s.read_exact(&mut back).ok()?;
    if back != line.as_bytes() {
        return None;
    }
    let mut mss: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a connected socket and a c_int of the given size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&mut mss as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
    Some(mss as u32)
}

/// An echo service on `ip`, answering one 12-byte line per connection.
fn echo_service(d: &DaemonLab, ip: &str) {
    let listener = d
        .lab
        .protected
        .run(|| TcpListener::bind(addr(ip, PORT)).unwrap());
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
    echo_service(&d, PROTECTED_V4);
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
        // Most through the program's cookies: a client port the kernel reuses from an earlier
        // connection can still be a recorded flow, whose SYN goes to the listener itself.
        assert!(
            answered >= 15,
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

/// Issue 21, item 4: each interface's SYN-ACKs offer the MSS of that interface's MTU. A
/// second link with an MTU of 3000 (as large as native XDP on veth takes without
/// multi-buffer programs) beside the lab's 1500 one: a client on each connects through a
/// cookie, and the MSS it was offered is its own link's (2960 and 1460, less 12 bytes of
/// timestamps); before, every interface offered the first one's.
#[test]
fn each_interface_offers_its_own_mss() {
    use filter_common::abi::{Config, Mode};
    use levee::dataplane::{AttachMode, Dataplane, LoadOptions};
    let mut d = DaemonLab::new();
    let second = d.lab.second_link();
    d.lab.protected.ip(&["link", "set", "lv2", "mtu", "3000"]);
    second.client.ip(&["link", "set", "lv3", "mtu", "3000"]);
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("interfaces = [\"lv0\"]", "interfaces = [\"lv0\", \"lv2\"]");
    std::fs::write(&d.config, text).unwrap();
    d.start();
    // The SYN-ACKs leave by XDP_TX, which a veth delivers only to an end with XDP.
    let _client_xdp = d.lab.pass_all_on_client_end();
    let _second_client_xdp = second.client.run(|| {
        let mut dp = Dataplane::load(&LoadOptions::default(), Config::new(Mode::Off))
            .expect("load a pass-all program");
        dp.attach("lv3", AttachMode::Native)
            .expect("attach to the second client's end");
        dp
    });
    echo_service(&d, PROTECTED_V4);
    echo_service(&d, PROTECTED2_V4);
    sleep(Duration::from_millis(2500));
    assert!(d.status().strict.engaged, "{:?}", d.status().strict);
    let before = packets(&d.stats(), Action::Drop, Some(Reason::SynCookie));
    let narrow = d.lab.client.run(|| exchange(CLIENT_V4[0], PROTECTED_V4, 1));
    let wide = second.client.run(|| exchange(CLIENT2_V4, PROTECTED2_V4, 2));
    let answered = packets(&d.stats(), Action::Drop, Some(Reason::SynCookie)) - before;
    assert!(answered >= 2, "{answered} SYNs answered with cookies");
    assert_eq!(
        narrow,
        Some(1460 - 12),
        "the 1500 link's client\n{}",
        d.log()
    );
    assert_eq!(wide, Some(2960 - 12), "the 3000 link's client\n{}", d.log());
    assert!(d.stop());
}
