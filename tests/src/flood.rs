//! The set-up every detection test shares: a daemon in a lab, a receiver on the protected side,
//! a flooder the host has held a TCP connection with (so detection may blocklist it: it
//! blocks verified offenders only), a calm stretch so the detection engine learns a baseline,
//! then a single-source raw UDP flood for as long as the test watches. One fixture, so the
//! tests differ only in what they watch.

use std::{
    io::{Read, Write},
    net::{TcpListener, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    thread::sleep,
    time::Duration,
};

use crate::{
    daemon::DaemonLab,
    netns::{CLIENT_V4, Lab, PROTECTED_V4},
    traffic::{addr, flood_at_until, tcp_connect, udp_flood_frames, udp_receiver, warm_up},
};

/// The lab client that floods; no test sends anything else from it.
pub const FLOODER: &str = CLIENT_V4[3];

/// The protected side's UDP port the flood and the receiver use.
pub const FLOOD_PORT: u16 = 9000;

/// How long the engine sees calm traffic before a test may flood.
const CALM: Duration = Duration::from_millis(2500);

/// A running daemon with a flood ready to aim at it.
pub struct FloodLab {
    pub daemon: DaemonLab,
    /// Receives on [`FLOOD_PORT`], so the flood lands on a socket as real traffic would.
    pub rx: UdpSocket,
    /// 20,000 frames from [`FLOODER`], sent again and again while a flood lasts.
    frames: Vec<u8>,
}

impl FloodLab {
    /// Starts `levee run` with `config` (TOML after the lab's own lines), warms up the path from
    /// the first client, and waits through the calm stretch.
    pub fn start(config: &str) -> FloodLab {
        FloodLab::start_with(config, |_| {})
    }

    /// [`FloodLab::start`], with `prepare` run on the lab before the daemon starts (a BGP
    /// upstream in the client namespace, say).
    pub fn start_with(config: &str, prepare: impl FnOnce(&DaemonLab)) -> FloodLab {
        let mut daemon = DaemonLab::new();
        prepare(&daemon);
        daemon.write_config(config);
        daemon.start();
        let rx = udp_receiver(&daemon.lab.protected, PROTECTED_V4, FLOOD_PORT);
        warm_up(&daemon.lab.client, CLIENT_V4[0], &rx);
        converse(&daemon, FLOODER);
        sleep(CALM);
        let frames = udp_flood_frames(&daemon.lab, FLOODER, FLOOD_PORT, 20_000);
        FloodLab { daemon, rx, frames }
    }

    /// Makes the flood a reflection: every frame from source port `sport` (NTP's 123, say).
    pub fn reflected(&mut self, sport: u16) {
        self.frames =
            crate::traffic::reflection_frames(&self.daemon.lab, FLOODER, sport, FLOOD_PORT, 20_000);
    }

    /// Floods from [`FLOODER`] while `watch` runs; the flood stops when `watch` returns or
    /// panics (a panicking test must not leave the sender running forever).
    pub fn flood<T>(&self, watch: impl FnOnce() -> T) -> T {
        flooding(&self.daemon.lab, &self.frames, watch).0
    }

    /// [`FloodLab::flood`] at `pps` frames a second.
    pub fn flood_at<T>(&self, pps: f64, watch: impl FnOnce() -> T) -> T {
        flooding_at(&self.daemon.lab, &self.frames, Some(pps), watch).0
    }
}

/// A port of the protected side for [`converse`], apart from the tests' own.
const CONVERSE_PORT: u16 = 7070;

/// `src` completes a TCP handshake with the protected host and reads its greeting: the host
/// then holds a connection with it past the handshake, and Levee counts it verified.
pub fn converse(daemon: &DaemonLab, src: &str) {
    let listener = daemon
        .lab
        .protected
        .run(|| TcpListener::bind(addr(PROTECTED_V4, CONVERSE_PORT)).expect("listen"));
    let mut client = daemon
        .lab
        .client
        .run(|| {
            tcp_connect(
                src,
                addr(PROTECTED_V4, CONVERSE_PORT),
                Duration::from_secs(5),
            )
        })
        .unwrap_or_else(|e| panic!("{src} connects: {e}"));
    let (mut served, _) = listener.accept().expect("accept");
    served.write_all(b"hello").expect("greet");
    let mut greeting = [0u8; 5];
    client.read_exact(&mut greeting).expect("read the greeting");
}

/// Sends `frames` from the lab's client again and again while `watch` runs; the flood stops
/// when `watch` returns or panics. Returns what `watch` returned and the frames sent.
pub fn flooding<T>(lab: &Lab, frames: &[u8], watch: impl FnOnce() -> T) -> (T, u64) {
    flooding_at(lab, frames, None, watch)
}

/// [`flooding`] at no more than `pps` frames a second if given.
pub fn flooding_at<T>(
    lab: &Lab,
    frames: &[u8],
    pps: Option<f64>,
    watch: impl FnOnce() -> T,
) -> (T, u64) {
    /// Stops the flood when dropped, on return and on unwind alike.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let sender = s.spawn(|| flood_at_until(lab, frames, pps, &stop));
        let result = {
            let _stop = StopOnDrop(&stop);
            watch()
        };
        (result, sender.join().expect("flood sender"))
    })
}
