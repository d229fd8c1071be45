//! Issue 22: a live UDP audio relay (RTP/WebRTC-like) flooded on the very port it serves, from
//! random sources, with a tool's fingerprint. Listeners who joined while calm keep their
//! stream; newcomers' JOINs get in fast because the flood's signature is mined and dropped
//! before it spends the budget of unknown sources.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::{
    abi::{Action, Reason},
    frames::L4,
};
use levee_tests::{
    daemon::{DaemonLab, packets},
    flood::flooding,
    netns::PROTECTED_V4,
    traffic::spoofed_frames,
};

const PORT: u16 = 5004;
const LISTENERS: usize = 100;
const JOINERS: usize = 50;
/// The relay streams a datagram to each listener this often.
const FRAME: Duration = Duration::from_millis(50);
/// Listeners send a receiver report this often (RTCP-like).
const REPORT: Duration = Duration::from_millis(200);

fn listener_addr(i: usize) -> String {
    format!("198.18.0.{}", 10 + i)
}

fn joiner_addr(i: usize) -> String {
    format!("198.18.0.{}", 10 + LISTENERS + i)
}

/// The relay: JOIN gets WELCOME and a place in the stream; reports are counted; anything
/// else is the flood reaching the service.
struct Relay {
    members: Mutex<Vec<SocketAddr>>,
    flood_got: AtomicU64,
    stop: AtomicBool,
}

impl Relay {
    fn serve(&self, sock: &UdpSocket) {
        let mut buf = [0u8; 2048];
        let mut next_frame = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if &buf[..n.min(4)] == b"JOIN" => {
                    let _ = sock.send_to(b"WELCOME", from);
                    let mut m = self.members.lock().unwrap();
                    if !m.contains(&from) {
                        m.push(from);
                    }
                }
                Ok((n, _)) if &buf[..n.min(2)] == b"RR" => {}
                Ok(_) => {
                    self.flood_got.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {}
            }
            if Instant::now() >= next_frame {
                next_frame += FRAME;
                for m in self.members.lock().unwrap().iter() {
                    let _ = sock.send_to(b"AUDIO", m);
                }
            }
        }
    }
}

/// Joins from `sock`, retrying every 100 ms: the time to WELCOME, if within 10 s.
fn join(sock: &UdpSocket, to: SocketAddr) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    while start.elapsed() < Duration::from_secs(10) {
        sock.send_to(b"JOIN", to).ok()?;
        let wait = Instant::now();
        while wait.elapsed() < Duration::from_millis(100) {
            if let Ok((n, _)) = sock.recv_from(&mut buf)
                && &buf[..n] == b"WELCOME"
            {
                return Some(start.elapsed());
            }
        }
    }
    None
}

/// Issue 22, the live UDP relay with joiners, fingerprinted phase: 100 listeners join while
/// calm; then a random-source flood of one tool's datagrams (64-byte frames, one source port,
/// one payload) on the served port. Its signature is mined and enforced; at least 99% of the
/// flood is stopped in the driver, every listener keeps audio (largest gap p99 at most
/// 0.5 s), at least 95% of 50 joiners get WELCOME within 10 s, with a median of at most
/// 0.2 s; the log names the signature. The operator lists it and refuses it: it leaves, and
/// is not mined again while the flood goes on.
#[test]
fn a_relays_joiners_get_in_past_a_fingerprinted_flood() {
    let mut d = DaemonLab::new();
    for i in 0..LISTENERS + JOINERS {
        d.lab.client.ip(&[
            "addr",
            "add",
            &format!("{}/24", listener_addr(i)),
            "dev",
            "lv1",
        ]);
    }
    d.write_config("mode = \"enforce\"");
    let server: SocketAddr = format!("{PROTECTED_V4}:{PORT}").parse().unwrap();
    let relay_sock = d.lab.protected.run(|| {
        let s = UdpSocket::bind(server).expect("bind the relay");
        s.set_read_timeout(Some(Duration::from_millis(2))).unwrap();
        s
    });
    d.start();
    let relay = Relay {
        members: Mutex::default(),
        flood_got: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    let socks = |addr: fn(usize) -> String, n: usize| -> Vec<UdpSocket> {
        d.lab.client.run(|| {
            (0..n)
                .map(|i| {
                    let s = UdpSocket::bind(format!("{}:0", addr(i))).expect("bind a client");
                    s.set_nonblocking(true).unwrap();
                    s
                })
                .collect()
        })
    };
    let listeners = socks(listener_addr, LISTENERS);
    let joiners: Vec<UdpSocket> = socks(joiner_addr, JOINERS)
        .into_iter()
        .inspect(|s| s.set_nonblocking(false).unwrap())
        .inspect(|s| {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        })
        .collect();
    let flood = spoofed_frames(
        &d.lab,
        |_| L4::Udp {
            sport: 40_000,
            dport: PORT,
        },
        60_000,
    );
    let listening = AtomicBool::new(true);
    // Per listener: when audio last arrived, and the largest gap while the flood ran.
    let gaps: Mutex<Vec<Duration>> = Mutex::new(vec![Duration::ZERO; LISTENERS]);
    let flood_on = AtomicBool::new(false);
    let (waits, flood_sent, status) = std::thread::scope(|s| {
        s.spawn(|| relay.serve(&relay_sock));
        // The listeners join while calm, then listen and report.
        s.spawn(|| {
            for l in &listeners {
                l.send_to(b"JOIN", server).unwrap();
            }
            let mut last: Vec<Option<Instant>> = vec![None; LISTENERS];
            let mut next_report = Instant::now();
            let mut buf = [0u8; 64];
            while listening.load(Ordering::SeqCst) {
                for (i, l) in listeners.iter().enumerate() {
                    while let Ok((n, _)) = l.recv_from(&mut buf) {
                        if &buf[..n] == b"AUDIO" {
                            let now = Instant::now();
                            if flood_on.load(Ordering::SeqCst)
                                && let Some(t) = last[i]
                            {
                                let mut g = gaps.lock().unwrap();
                                g[i] = g[i].max(now - t);
                            }
                            last[i] = Some(now);
                        }
                    }
                }
                if Instant::now() >= next_report {
                    next_report += REPORT;
                    for l in &listeners {
                        let _ = l.send_to(b"RR report", server);
                    }
                }
                sleep(Duration::from_millis(2));
            }
        });
        // Calm long enough for the crowd's samples to count as calm.
        sleep(Duration::from_secs(5));
        flood_on.store(true, Ordering::SeqCst);
        let (waits, sent) = flooding(&d.lab, &flood, || {
            // Detection, then the signature: the joiners come once the flood is known.
            sleep(Duration::from_secs(4));
            let status = d.status();
            let waits: Vec<Option<Duration>> = std::thread::scope(|j| {
                let handles: Vec<_> = joiners
                    .iter()
                    .enumerate()
                    .map(|(i, sock)| {
                        j.spawn(move || {
                            sleep(Duration::from_millis(100) * i as u32);
                            join(sock, server)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            // The operator's view, and a refusal: the fingerprint is not installed again
            // while the same flood goes on.
            let listed = d.cli_ok(&["signatures", "list"]);
            assert!(listed.contains("#1 udp dport 5004"), "{listed}");
            d.cli_ok(&["signatures", "refuse", "1"]);
            sleep(Duration::from_secs(2));
            let after = d.status().strict.signatures;
            assert!(after.is_empty(), "refused, not mined again: {after:?}");
            (waits, status)
        });
        flood_on.store(false, Ordering::SeqCst);
        listening.store(false, Ordering::SeqCst);
        relay.stop.store(true, Ordering::SeqCst);
        (waits.0, sent, waits.1)
    });
    let mut got: Vec<Duration> = waits.iter().flatten().copied().collect();
    got.sort();
    let median = got.get(got.len() / 2).copied().unwrap_or(Duration::MAX);
    let mut gaps = gaps.into_inner().unwrap();
    gaps.sort();
    let gap_p99 = gaps[(gaps.len() * 99 / 100).min(gaps.len() - 1)];
    let flood_got = relay.flood_got.load(Ordering::Relaxed);
    let dropped = packets(&d.stats(), Action::Drop, Some(Reason::FloodSignature));
    eprintln!(
        "relay: {} of {JOINERS} joiners in, median {median:?}; listeners' largest gap p99 \
         {gap_p99:?}; flood {flood_got} of {flood_sent} delivered, {dropped} dropped by its \
         signature; mid-flood strict {:?}",
        got.len(),
        status.strict
    );
    assert!(
        !status.strict.signatures.is_empty(),
        "a signature in force mid-flood: {:?}",
        status.strict
    );
    let sig = &status.strict.signatures[0].signature;
    assert!(
        sig.contains("dport 5004"),
        "the signature is the service's: {sig}"
    );
    assert!(dropped > 0, "its own reason in stats");
    assert!(
        flood_got * 100 <= flood_sent,
        "at least 99% of the flood stopped in the driver: {flood_got} of {flood_sent} delivered"
    );
    assert!(
        gap_p99 <= Duration::from_millis(500),
        "every listener keeps audio: largest gap p99 {gap_p99:?}"
    );
    assert!(
        got.len() * 100 >= JOINERS * 95,
        "95% of joiners get in within 10 s: {} of {JOINERS}",
        got.len()
    );
    assert!(
        median <= Duration::from_millis(200),
        "joiners' median time to WELCOME at most 0.2 s: {median:?}"
    );
    let log = d.log();
    assert!(
        log.contains("flood signature found"),
        "the signature's life is in the log"
    );
}
