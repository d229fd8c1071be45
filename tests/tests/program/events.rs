//! The ring buffer to user space: sampled packet headers with their verdicts. Offence events
//! are tested with the limiter that raises them.

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, event},
    frames::arp,
    parse::TCP_SYN,
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, net, read_event};

/// With `sample_every` set to 1, every IP packet's header goes to user space as a sample event,
/// with its verdict; non-IP frames are not sampled.
#[test]
fn sampled_headers_reach_the_ring_buffer() {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.sample_every = 1;
    let mut h = Harness::new(cfg);
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    let mut events = h.dp.take_events().unwrap();
    assert_eq!(h.run(&udp(SRC6, DST6, 5000, 443)), XDP_PASS);
    assert_eq!(h.run(&tcp(SRC4, DST4, TCP_SYN)), XDP_DROP);
    assert_eq!(h.run(&arp()), XDP_PASS);
    let mut got = Vec::new();
    while let Some(item) = events.next() {
        got.push(read_event(&item));
    }
    assert_eq!(got.len(), 2, "one sample per IP packet, none for ARP");
    assert_eq!(got[0].kind, event::SAMPLE);
    assert_eq!(
        (got[0].family, got[0].src_port, got[0].dst_port),
        (6, 5000, 443)
    );
    assert_eq!(
        (got[0].action, got[0].reason),
        (Action::Pass as u32, Reason::Clean as u32)
    );
    assert_eq!((got[1].family, got[1].class), (4, Class::TcpSyn as u32));
    assert_eq!(
        (got[1].action, got[1].reason),
        (Action::Drop as u32, Reason::Blocklisted as u32)
    );
    assert_eq!(got[1].tcp_flags, TCP_SYN);
    // The destination, for escalation's attacked host.
    let dst4: std::net::Ipv4Addr = DST4.parse().unwrap();
    assert_eq!(&got[1].dst[..4], &dst4.octets());
    let dst6: std::net::Ipv6Addr = DST6.parse().unwrap();
    assert_eq!(got[0].dst, dst6.octets());
}

/// Issue 8: offences and samples shared one ring, so above a few Mpps samples crowded out the
/// offences that drive blocking, and nothing counted the loss. Now a full sample ring loses
/// samples only, and counts them; offences arrive on their own ring.
#[test]
fn offences_are_never_lost_to_samples() {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.sample_every = 1;
    cfg.set_flag(filter_common::abi::flags::SOURCE_LIMITS, true);
    cfg.sketch_threshold = 1;
    cfg.source[Class::Udp as usize] = filter_common::config::Rate {
        pps: 1,
        burst_packets: 10_000,
        ..Default::default()
    }
    .encode();
    let mut h = Harness::new(cfg);
    let mut samples = h.dp.take_events().unwrap();
    let mut offences = h.dp.take_offences().unwrap();
    // Far more sampled headers than the 256 KiB sample ring holds, none read meanwhile.
    let crowd = udp(SRC4, DST4, 5000, 443);
    for _ in 0..9_000 {
        assert_eq!(h.run(&crowd), XDP_PASS);
    }
    // Then a source goes over its limit.
    let flooder = udp(SRC6, DST6, 5000, 443);
    let mut dropped = false;
    for _ in 0..10_001 {
        dropped |= h.run(&flooder) == XDP_DROP;
    }
    assert!(dropped, "the flooder went over its limit");
    let (lost_offences, lost_samples) = h.dp.events_lost().unwrap();
    assert!(lost_samples > 0, "the sample ring overflowed and says so");
    assert_eq!(lost_offences, 0);
    let offence = offences
        .next()
        .map(|item| read_event(&item))
        .expect("the offence arrived");
    assert_eq!((offence.kind, offence.family), (event::OFFENCE, 6));
    let mut kept = 0u64;
    while let Some(item) = samples.next() {
        assert_eq!(read_event(&item).kind, event::SAMPLE);
        kept += 1;
    }
    assert_eq!(
        kept + lost_samples,
        9_000 + 10_001,
        "every sample kept or counted lost"
    );
}
