//! Strict: TCP and UDP pass only if a service or a flow of the host accounts for them. Flows
//! come from the egress program run on outgoing frames; SYNs to a local listener are answered
//! in XDP with a kernel SYN cookie (checked here byte for byte, with checksums computed
//! independently), and the cookie's ACK is checked by the kernel against a real listening
//! socket. The socket tests run in a fresh network namespace with its own listeners and
//! `tcp_syncookies`, since BPF_PROG_TEST_RUN looks sockets up in the caller's namespace.

use std::net::{SocketAddr, TcpListener, TcpStream};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    config::Rate,
    frames::{FrameSpec, L4},
    parse::{
        IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
    },
};
use levee::dataplane::ServiceRule;
use levee_tests::{
    Case, Harness, LogCapture, XDP_DROP, XDP_PASS, ip,
    netns::Netns,
    segments::{
        L3, be16, be32, fix_tcp_checksum_at, is_v6, l4_of, linux_syn_options, ones_sum,
        pin_to_this_cpu, segment, tcp_checksum_ok,
    },
    tcp, udp,
};

use crate::{DST4, DST6, SRC4, SRC6, clean, net};

const XDP_TX: u32 = 3;
/// What the egress program returns for every frame (TCX_NEXT): it never drops.
const TCX_NEXT: i32 = -1;

/// The protected host's addresses (on `lo` of the test's namespace) and a client's.
const HOST4: &str = DST4;
const HOST6: &str = DST6;
const CLIENT4: &str = SRC4;
const CLIENT6: &str = SRC6;

/// The client's initial sequence number in the SYNs below.
const CLIENT_SEQ: u32 = 0x1234_5678;
/// The client's timestamp value in the SYNs below.
const CLIENT_TS: u32 = 12345;

pub(crate) fn strict(mode: Mode) -> Config {
    let mut cfg = Config::new(mode);
    cfg.set_flag(flags::STRICT, true);
    cfg.set_flag(flags::TRACK_FLOWS, true);
    // The host has timestamps, SACK and window scaling (Linux's defaults), as the daemon
    // reads them.
    cfg.set_flag(flags::SYNACK_TS, true);
    cfg.set_flag(flags::SYNACK_SACK, true);
    cfg.set_flag(flags::SYNACK_WSCALE, true);
    cfg
}

pub(crate) fn rule(proto: u8, port: u16, dst: &str) -> ServiceRule {
    ServiceRule {
        proto,
        port,
        dst: net(dst),
    }
}

fn case(
    what: impl Into<String>,
    frame: Vec<u8>,
    xdp: u32,
    action: Action,
    reason: Reason,
    class: Class,
) -> Case {
    Case {
        what: what.into(),
        frame,
        xdp,
        action,
        reason,
        class,
    }
}

fn dropped(what: impl Into<String>, frame: Vec<u8>, reason: Reason, class: Class) -> Case {
    case(what, frame, XDP_DROP, Action::Drop, reason, class)
}

fn passed(what: impl Into<String>, frame: Vec<u8>, reason: Reason, class: Class) -> Case {
    case(what, frame, XDP_PASS, Action::Pass, reason, class)
}

pub(crate) fn syn(src: &str, dst: &str, sport: u16, dport: u16, opts: &[u8]) -> Vec<u8> {
    segment(src, dst, sport, dport, TCP_SYN, CLIENT_SEQ, 0, opts)
}

/// What the SYN-ACK answering a SYN must say, beyond what the SYN itself determines.
struct Expected {
    mss: u16,
    /// The client's timestamp value if its SYN had the Linux options.
    tsecr: Option<u32>,
    /// ECN agreed: ECE in the SYN-ACK, the ECN bit in the timestamp.
    ecn: bool,
}

/// Checks the SYN-ACK `out` the program made of `syn`, byte for byte; returns our initial
/// sequence number (the cookie) and timestamp value.
fn check_synack(what: &str, cfg: &Config, syn: &[u8], out: &[u8], want: &Expected) -> (u32, u32) {
    let v6 = is_v6(syn);
    let ip_len = if v6 { 40 } else { 20 };
    // Timestamps make the long SYN-ACK (40-byte TCP header); without, the MSS alone (24).
    let tcp_len = if want.tsecr.is_some() { 40 } else { 24 };
    assert_eq!(out.len(), L3 + ip_len + tcp_len, "{what}: frame length");
    assert_eq!(
        &out[0..6],
        &syn[6..12],
        "{what}: destination MAC is the SYN's source"
    );
    assert_eq!(
        &out[6..12],
        &syn[0..6],
        "{what}: source MAC is the SYN's destination"
    );
    assert_eq!(&out[12..14], &syn[12..14], "{what}: EtherType");
    let (oip, sip) = (&out[L3..], &syn[L3..]);
    if v6 {
        assert_eq!(oip[0] >> 4, 6, "{what}: IP version");
        assert_eq!(be16(&oip[4..6]) as usize, tcp_len, "{what}: payload length");
        assert_eq!(oip[6], IPPROTO_TCP, "{what}: next header");
        assert_eq!(oip[7], cfg.synack_ttl, "{what}: hop limit");
        assert_eq!(
            &oip[8..24],
            &sip[24..40],
            "{what}: source is the SYN's destination"
        );
        assert_eq!(
            &oip[24..40],
            &sip[8..24],
            "{what}: destination is the SYN's source"
        );
    } else {
        assert_eq!(oip[0], 0x45, "{what}: version and IHL");
        assert_eq!(
            be16(&oip[2..4]) as usize,
            20 + tcp_len,
            "{what}: total length"
        );
        assert_eq!(be16(&oip[6..8]) & 0x3fff, 0, "{what}: not a fragment");
        assert_eq!(oip[8], cfg.synack_ttl, "{what}: TTL");
        assert_eq!(oip[9], IPPROTO_TCP, "{what}: protocol");
        assert_eq!(
            &oip[12..16],
            &sip[16..20],
            "{what}: source is the SYN's destination"
        );
        assert_eq!(
            &oip[16..20],
            &sip[12..16],
            "{what}: destination is the SYN's source"
        );
        assert_eq!(ones_sum(&oip[..20]), 0xffff, "{what}: IPv4 header checksum");
    }
    let (t, s) = (&oip[ip_len..], &sip[ip_len..]);
    assert_eq!(
        &t[0..2],
        &s[2..4],
        "{what}: source port is the SYN's destination port"
    );
    assert_eq!(
        &t[2..4],
        &s[0..2],
        "{what}: destination port is the SYN's source port"
    );
    assert_eq!(
        be32(&t[8..12]),
        be32(&s[4..8]).wrapping_add(1),
        "{what}: ack = client seq + 1"
    );
    assert_eq!(t[12] as usize, (tcp_len / 4) << 4, "{what}: data offset");
    let ece = if want.ecn { TCP_ECE } else { 0 };
    assert_eq!(
        t[13],
        TCP_SYN | TCP_ACK | ece,
        "{what}: flags SYN|ACK (ECE: {})",
        want.ecn
    );
    assert_ne!(be16(&t[14..16]), 0, "{what}: window");
    assert_eq!(&t[18..20], &[0, 0], "{what}: urgent pointer");
    let mss = want.mss.to_be_bytes();
    assert_eq!(&t[20..24], &[2, 4, mss[0], mss[1]], "{what}: MSS option");
    let tsval = if tcp_len == 40 { be32(&t[28..32]) } else { 0 };
    match want.tsecr {
        Some(tsecr) => {
            assert_eq!(
                &t[24..28],
                &[4, 2, 8, 10],
                "{what}: SACK-permitted, timestamps"
            );
            assert_eq!(be32(&t[32..36]), tsecr, "{what}: TS echo reply");
            let ecn_bit = if want.ecn { 0x20 } else { 0 };
            assert_eq!(
                tsval & 0x3f,
                7 | 0x10 | ecn_bit,
                "{what}: TS value carries wscale 7, SACK and ECN ({})",
                want.ecn
            );
            assert_eq!(
                &t[36..40],
                &[1, 3, 3, cfg.synack_wscale],
                "{what}: window scale"
            );
        }
        None => assert_eq!(t.len(), 24, "{what}: only the MSS option"),
    }
    assert!(
        tcp_checksum_ok(out),
        "{what}: TCP checksum over the pseudo header"
    );
    (be32(&t[4..8]), tsval)
}

/// A fresh network namespace standing for the protected host: its addresses on `lo` and
/// `tcp_syncookies` = 2, so the kernel makes cookies whatever its SYN queue holds.
pub(crate) struct Host {
    ns: Netns,
}

impl Host {
    pub(crate) fn new() -> Host {
        let ns = Netns::new("strict");
        ns.ip(&["addr", "add", &format!("{HOST4}/32"), "dev", "lo"]);
        ns.ip(&["addr", "add", &format!("{HOST6}/128"), "dev", "lo", "nodad"]);
        let out = ns
            .command("sysctl")
            .args(["-qw", "net.ipv4.tcp_syncookies=2"])
            .output()
            .expect("sysctl");
        assert!(
            out.status.success(),
            "sysctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Host { ns }
    }

    /// Runs `f` on a thread inside the namespace, pinned to one CPU.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.ns.run(|| {
            let set = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_syncookies")
                .expect("read tcp_syncookies");
            assert_eq!(set.trim(), "2", "tcp_syncookies in the test's namespace");
            pin_to_this_cpu();
            f()
        })
    }
}

pub(crate) fn listen(addr: &str) -> (TcpListener, u16) {
    let l = TcpListener::bind(SocketAddr::new(ip(addr), 0))
        .unwrap_or_else(|e| panic!("listen on {addr}: {e}"));
    let port = l.local_addr().expect("local_addr").port();
    (l, port)
}

mod cookies;
mod flows;
mod services;
