//! Issue 22: flood signatures in the program. While UDP's budget applies, a datagram of an
//! unknown, unfamiliar source that matches a signature is dropped (`flood_signature`) before
//! it spends the budget; one that does not goes on to the budget. A first fragment is judged
//! as its datagram. A SYN signature drops an unfamiliar source's matching SYNs before a
//! cookie. A familiar or allowlisted source never meets a signature.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    config::Rate,
    frames::{FrameSpec, L4},
    parse::{IPPROTO_TCP, IPPROTO_UDP, TCP_SYN},
    signature::{Facts, FloodSignature, field},
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS, ip, segments::pin_to_this_cpu};

use crate::{
    DST4, net,
    strict::{rule, strict},
};

const PORT: u16 = 5004;
const FAMILIAR: &str = "198.18.9.1";
const STRANGER: &str = "198.18.9.2";
const ALLOWED: &str = "198.18.10.1";
/// The flood's payload: the UDP signature looks at its first four bytes.
const FLOOD: [u8; 8] = *b"AAAAxxxx";
const CROWD: [u8; 8] = *b"JOINxxxx";
/// The SYN flood's source port, which the SYN signature looks at.
const FLOOD_SPORT: u16 = 40_000;

/// Where a UDP datagram's payload starts in an untagged IPv4 frame.
const PAYLOAD_AT: usize = 14 + 20 + 8;

fn datagram(src: &str, payload: [u8; 8]) -> Vec<u8> {
    let mut f = spec(src).payload(32).build();
    f[PAYLOAD_AT..PAYLOAD_AT + 8].copy_from_slice(&payload);
    f
}

/// Datagram `id`'s first fragment (its UDP header and payload's start) or a later one.
fn fragment(src: &str, id: u16, first: bool, payload: [u8; 8]) -> Vec<u8> {
    let spec = spec(src).payload(32);
    let mut f = if first {
        spec.fragment(0, true).build()
    } else {
        spec.fragment(100, false).build()
    };
    f[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
    if first {
        f[PAYLOAD_AT..PAYLOAD_AT + 8].copy_from_slice(&payload);
    }
    f
}

fn spec(src: &str) -> FrameSpec {
    FrameSpec::new(
        ip(src),
        ip(DST4),
        L4::Udp {
            sport: 40_000,
            dport: PORT,
        },
    )
}

fn syn(src: &str, sport: u16) -> Vec<u8> {
    FrameSpec::new(
        ip(src),
        ip(DST4),
        L4::Tcp {
            sport,
            dport: PORT,
            flags: TCP_SYN,
        },
    )
    .build()
}

fn signatures() -> [FloodSignature; 2] {
    let udp = FloodSignature {
        fields: field::DST_PORT | field::PAYLOAD,
        id: 1,
        facts: Facts {
            dst_port: PORT,
            proto: IPPROTO_UDP,
            payload: FLOOD,
            ..Facts::default()
        },
        payload_mask: [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
    };
    let syn = FloodSignature {
        fields: field::DST_PORT | field::SRC_PORT,
        id: 2,
        facts: Facts {
            dst_port: PORT,
            src_port: FLOOD_SPORT,
            proto: IPPROTO_TCP,
            ..Facts::default()
        },
        payload_mask: [0; 8],
    };
    [udp, syn]
}

/// Calm, then strict with the UDP budget (wide enough that only a signature refuses), and
/// both signatures in force: FAMILIAR sent while calm.
fn attacked_with_signatures() -> Harness {
    let mut calm = Config::new(Mode::Enforce);
    for flag in [flags::TRACK_FLOWS, flags::SOURCE_LIMITS, flags::FAMILIAR] {
        calm.set_flag(flag, true);
    }
    calm.familiar_ttl_ns = 3_600_000_000_000;
    let mut h = Harness::new(calm);
    h.dp.set_services(&[
        rule(IPPROTO_UDP, PORT, "0.0.0.0/0"),
        rule(IPPROTO_TCP, PORT, "0.0.0.0/0"),
    ])
    .unwrap();
    h.dp.allow(net(&format!("{ALLOWED}/32"))).unwrap();
    // Seen now, and again more than a second later in two sketch windows (as in `familiar`).
    h.run(&datagram(FAMILIAR, CROWD));
    sleep(Duration::from_millis(1100));
    for _ in 0..2 {
        h.run(&datagram(FAMILIAR, CROWD));
        sleep(Duration::from_millis(20));
    }
    assert!(
        h.dp.familiar_ago(FAMILIAR.parse().unwrap(), calm.familiar_ttl_ns)
            .unwrap()
            .is_some(),
        "familiar after a calm second"
    );
    let mut attacked = strict(Mode::Enforce);
    attacked.flags |= calm.flags & (flags::SOURCE_LIMITS | flags::FAMILIAR);
    attacked.familiar_ttl_ns = calm.familiar_ttl_ns;
    attacked.set_flag(flags::UDP_BUDGET, true);
    attacked.unknown_budget = Rate {
        pps: 1_000_000,
        burst_packets: 1_000,
        ..Rate::default()
    }
    .encode();
    h.dp.set_config(attacked).unwrap();
    h.dp.set_signatures(&signatures(), &[]).unwrap();
    h
}

#[test]
fn a_signature_drops_only_what_matches_from_unfamiliar_sources() {
    std::thread::scope(|s| {
        s.spawn(|| {
            // Familiar sightings are per CPU until recorded, the budget's buckets too.
            pin_to_this_cpu();
            let mut h = attacked_with_signatures();
            let udp = Class::Udp;
            let flood_sig = Reason::FloodSignature;
            for (what, frame, xdp, action, reason, class) in [
                (
                    "a stranger's flood datagram",
                    datagram(STRANGER, FLOOD),
                    XDP_DROP,
                    Action::Drop,
                    flood_sig,
                    udp,
                ),
                (
                    "a stranger's other datagram: the budget's",
                    datagram(STRANGER, CROWD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    udp,
                ),
                (
                    "a familiar source's datagram that matches",
                    datagram(FAMILIAR, FLOOD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Familiar,
                    udp,
                ),
                (
                    "an allowlisted source's datagram that matches",
                    datagram(ALLOWED, FLOOD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Allowlisted,
                    udp,
                ),
                (
                    "a stranger's first fragment that matches",
                    fragment(STRANGER, 1, true, FLOOD),
                    XDP_DROP,
                    Action::Drop,
                    flood_sig,
                    udp,
                ),
                (
                    "its later fragment, refused as its first was",
                    fragment(STRANGER, 1, false, FLOOD),
                    XDP_DROP,
                    Action::Drop,
                    Reason::NoService,
                    udp,
                ),
                (
                    "a stranger's first fragment that does not match",
                    fragment(STRANGER, 2, true, CROWD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    udp,
                ),
                (
                    "a familiar source's first fragment that matches",
                    fragment(FAMILIAR, 3, true, FLOOD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Familiar,
                    udp,
                ),
                (
                    "its later fragment",
                    fragment(FAMILIAR, 3, false, FLOOD),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    udp,
                ),
                (
                    "a stranger's SYN that matches",
                    syn(STRANGER, FLOOD_SPORT),
                    XDP_DROP,
                    Action::Drop,
                    flood_sig,
                    Class::TcpSyn,
                ),
                (
                    // No listener here: strict leaves it to the later stages.
                    "a stranger's SYN that does not match",
                    syn(STRANGER, FLOOD_SPORT + 1),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    Class::TcpSyn,
                ),
                (
                    "a familiar source's SYN that matches",
                    syn(FAMILIAR, FLOOD_SPORT),
                    XDP_PASS,
                    Action::Pass,
                    Reason::Clean,
                    Class::TcpSyn,
                ),
            ] {
                h.expect(what, &frame, xdp, action, reason, class);
            }
            let hits = h.dp.signature_hits().unwrap();
            assert_eq!(&hits[..2], &[2, 1], "drops counted per signature: {hits:?}");
            // Monitor counts what a signature would drop and passes it.
            h.set_mode(Mode::Monitor);
            h.expect(
                "monitor",
                &datagram(STRANGER, FLOOD),
                XDP_PASS,
                Action::WouldDrop,
                flood_sig,
                udp,
            );
        });
    });
}
