//! What counts as a service under strict (issue 21): only sockets of root and the allowed
//! owners open a port, and a full services table is loud and never freezes the set.

use std::{net::UdpSocket, thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{addr, drain, send_udp, udp_receiver, warm_up},
};

/// A process of its own, in the protected namespace, owned by `uid`, holding a UDP socket
/// bound to `port` until dropped.
struct ForeignSocket(libc::pid_t);

impl ForeignSocket {
    fn bind(d: &DaemonLab, uid: u32, port: u16) -> ForeignSocket {
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: a pipe into a two-int array.
        assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
        let pid = d.lab.protected.run(|| {
            // SAFETY: the child makes only system calls (async-signal-safe) and never returns.
            unsafe {
                let pid = libc::fork();
                if pid == 0 {
                    let ok = libc::setgroups(0, std::ptr::null()) == 0
                        && libc::setresgid(uid, uid, uid) == 0
                        && libc::setresuid(uid, uid, uid) == 0;
                    let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                    let mut sa: libc::sockaddr_in = std::mem::zeroed();
                    sa.sin_family = libc::AF_INET as u16;
                    sa.sin_port = port.to_be();
                    sa.sin_addr.s_addr = u32::from_ne_bytes([198, 18, 0, 1]);
                    let bound = libc::bind(
                        fd,
                        (&sa as *const libc::sockaddr_in).cast(),
                        size_of::<libc::sockaddr_in>() as u32,
                    ) == 0;
                    let byte = [u8::from(ok && bound)];
                    libc::write(ready[1], byte.as_ptr().cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
                pid
            }
        });
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        let mut byte = [0u8];
        // SAFETY: reading one byte into a one-byte buffer.
        let n = unsafe { libc::read(ready[0], byte.as_mut_ptr().cast(), 1) };
        // SAFETY: closing our pipe ends.
        unsafe {
            libc::close(ready[0]);
            libc::close(ready[1]);
        }
        let socket = ForeignSocket(pid);
        assert!(
            n == 1 && byte[0] == 1,
            "uid {uid} could not bind UDP {port}"
        );
        socket
    }
}

impl Drop for ForeignSocket {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), 0);
        }
    }
}

fn no_service(d: &DaemonLab) -> u64 {
    packets(&d.stats(), Action::Drop, Some(Reason::NoService))
}

/// A user who logs in (uid 1000) binds UDP 7100: its port is not a service, and datagrams to
/// it are dropped as `no_service`; root's UDP 7101 beside it is served.
#[test]
fn a_socket_of_an_owner_not_allowed_opens_no_port() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    let _user = ForeignSocket::bind(&d, 1000, 7100);
    let root = udp_receiver(&d.lab.protected, PROTECTED_V4, 7101);
    sleep(Duration::from_millis(2500));
    let services = d.cli_ok(&["services"]);
    assert!(!services.contains(" 7100 "), "{services}");
    assert!(services.contains(" 7101 "), "{services}");
    warm_up(&d.lab.client, CLIENT_V4[0], &root);
    let before = no_service(&d);
    send_udp(&d.lab, CLIENT_V4[0], addr(PROTECTED_V4, 7100));
    sleep(Duration::from_millis(100));
    let dropped = no_service(&d) - before;
    assert!(
        dropped >= 190,
        "{dropped} of 200 to uid 1000's port dropped as no_service"
    );
    send_udp(&d.lab, CLIENT_V4[0], addr(PROTECTED_V4, 7101));
    sleep(Duration::from_millis(100));
    let got = drain(&root)
        .get(&CLIENT_V4[0].parse().unwrap())
        .copied()
        .unwrap_or(0);
    assert!(got >= 190, "{got} of 200 reached root's service");
    assert!(d.stop());
}

/// 5,000 bound sockets overfill the services table (4,096 rules a family): the status, the
/// metric and the log say so, and the ports left out get `no_service`. Once they close, a
/// service started afterwards is served.
#[test]
fn a_full_services_table_is_loud_and_frees_up() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    // SAFETY: raising our own soft limit to the hard one.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(65_536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    let many: Vec<UdpSocket> = d.lab.protected.run(|| {
        (20_000..25_000)
            .map(|port| UdpSocket::bind(addr(PROTECTED_V4, port)).expect("bind"))
            .collect()
    });
    sleep(Duration::from_millis(2500));
    let strict = d.status().strict;
    assert!(
        strict.services_left_out >= 5000 - 4096,
        "{strict:?}\n{}",
        d.log()
    );
    assert!(
        d.cli_ok(&["status"])
            .contains("left out: the table is full")
    );
    let metrics = crate::metrics::scrape(&d);
    let left_out: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("levee_services_left_out "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no levee_services_left_out in\n{metrics}"));
    assert!(left_out >= 5000 - 4096, "{left_out}");
    assert!(d.log().contains("services table full"), "{}", d.log());

    drop(many);
    sleep(Duration::from_millis(2500));
    assert_eq!(d.status().strict.services_left_out, 0, "{}", d.log());
    let later = udp_receiver(&d.lab.protected, PROTECTED_V4, 7200);
    sleep(Duration::from_millis(2500));
    warm_up(&d.lab.client, CLIENT_V4[0], &later);
    send_udp(&d.lab, CLIENT_V4[0], addr(PROTECTED_V4, 7200));
    sleep(Duration::from_millis(100));
    let got = drain(&later)
        .get(&CLIENT_V4[0].parse().unwrap())
        .copied()
        .unwrap_or(0);
    assert!(
        got >= 190,
        "{got} of 200 reached the service started afterwards"
    );
    assert!(d.stop());
}
