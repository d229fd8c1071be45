//! Shared harness of Levee's kernel tests and benchmarks: a loaded program driven through
//! BPF_PROG_TEST_RUN ([`Harness`], fed tables of [`Case`]s), network namespaces joined by veth
//! ([`netns`]), the real daemon in a lab ([`daemon`], with a flood on top in [`flood`]), and a
//! raw frame sender ([`sender`]) and a live-frames generator at NIC-like rates ([`livegen`]).

pub mod bgp;
pub mod daemon;
pub mod fleet;
pub mod flood;
pub mod livegen;
pub mod netns;
pub mod segments;
pub mod sender;
pub mod storm;
pub mod traffic;

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason},
    frames::{FrameSpec, L4},
};
use levee::dataplane::{Counters, Dataplane, LoadOptions};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// One row of a program test's fixture table, as in Katran's `KatranBaseTestFixtures.h`: a
/// described frame and what the program must make of it, both the XDP action it returns and
/// the (action, reason, class) slot it counts the packet under.
pub struct Case {
    /// Names the case in a failure message.
    pub what: String,
    pub frame: Vec<u8>,
    pub xdp: u32,
    pub action: Action,
    pub reason: Reason,
    pub class: Class,
}

/// The program loaded into the kernel with a given configuration, not attached anywhere.
pub struct Harness {
    pub dp: Dataplane,
}

impl Harness {
    /// Loads with a small source table (tests do not need a million entries).
    pub fn new(config: Config) -> Harness {
        Self::with_sources(config, 1 << 14)
    }

    pub fn with_sources(config: Config, max_sources: u32) -> Harness {
        let options = LoadOptions {
            max_sources,
            ..LoadOptions::default()
        };
        let dp = Dataplane::load(&options, config).unwrap_or_else(|e| panic!("load: {e:#}"));
        Harness { dp }
    }

    /// Runs one frame once; returns the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        self.dp
            .test_run(frame, 1)
            .unwrap_or_else(|e| panic!("test_run: {e:#}"))
            .0
    }

    pub fn counters(&self) -> Counters {
        self.dp
            .counters()
            .unwrap_or_else(|e| panic!("counters: {e:#}"))
    }

    /// Runs one frame and asserts the XDP action and that exactly one packet was counted, under
    /// (action, reason, class).
    #[track_caller]
    pub fn expect(
        &self,
        what: &str,
        frame: &[u8],
        xdp: u32,
        action: Action,
        reason: Reason,
        class: Class,
    ) {
        let before = self.counters();
        let got = self.run(frame);
        let after = self.counters();
        assert_eq!(got, xdp, "{what}: XDP action");
        assert_counted_once(what, &before, &after, action, reason, class);
    }

    /// [`Harness::expect`] through a run that also returns the frame as the program left it
    /// (a SYN answered with a cookie comes back as the SYN-ACK).
    #[track_caller]
    pub fn expect_frame(
        &self,
        what: &str,
        frame: &[u8],
        xdp: u32,
        action: Action,
        reason: Reason,
        class: Class,
    ) -> Vec<u8> {
        let before = self.counters();
        let (got, out) = self
            .dp
            .test_run_frame(frame)
            .unwrap_or_else(|e| panic!("{what}: test_run_frame: {e:#}"));
        let after = self.counters();
        assert_eq!(got, xdp, "{what}: XDP action");
        assert_counted_once(what, &before, &after, action, reason, class);
        out
    }

    /// [`Harness::expect`] for every case of a table, in order; a failure names its case.
    #[track_caller]
    pub fn expect_all(&self, cases: &[Case]) {
        for c in cases {
            self.expect(&c.what, &c.frame, c.xdp, c.action, c.reason, c.class);
        }
    }

    pub fn set_mode(&mut self, mode: Mode) {
        self.dp
            .set_mode(mode)
            .unwrap_or_else(|e| panic!("set_mode: {e:#}"));
    }
}

/// Asserts that exactly one packet was counted between `before` and `after`, under
/// (action, reason, class).
#[track_caller]
fn assert_counted_once(
    what: &str,
    before: &Counters,
    after: &Counters,
    action: Action,
    reason: Reason,
    class: Class,
) {
    let slot = |c: &Counters| c.get(action, reason, class).packets;
    let total = |c: &Counters| {
        Action::ALL
            .iter()
            .map(|a| c.action_packets(*a))
            .sum::<u64>()
    };
    assert_eq!(
        slot(after) - slot(before),
        1,
        "{what}: expected one packet counted as {}/{}/{}, counters now {:?}",
        action.name(),
        reason.name(),
        class.name(),
        after.non_zero()
    );
    assert_eq!(
        total(after) - total(before),
        1,
        "{what}: exactly one packet counted"
    );
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A 64-byte UDP frame (the minimum Ethernet frame less the FCS is 60; 64 with 4 more payload).
pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    FrameSpec::new(ip(src), ip(dst), L4::Udp { sport, dport })
        .payload(if ip(src).is_ipv4() { 22 } else { 2 })
        .build()
}

/// An ICMP echo request (ICMPv6 for IPv6 addresses).
pub fn icmp(src: &str, dst: &str) -> Vec<u8> {
    FrameSpec::new(ip(src), ip(dst), L4::Icmp).build()
}

pub fn tcp(src: &str, dst: &str, flags: u8) -> Vec<u8> {
    FrameSpec::new(
        ip(src),
        ip(dst),
        L4::Tcp {
            sport: 40000,
            dport: 80,
            flags,
        },
    )
    .build()
}

/// What the code under test logs through `tracing` on the calling thread, formatted as the
/// daemon formats it (without colours): the program's diagnostics, forwarded by
/// [`Dataplane::flush_log`], among it. Collects until dropped.
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        LogCapture { buf, _guard: guard }
    }

    /// The lines logged so far.
    pub fn lines(&self) -> Vec<String> {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
