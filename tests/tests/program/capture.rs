//! `levee capture` in the program: off, nothing is copied; on, exactly the frames the filter
//! matches are copied (their first snaplen bytes, with length and verdict), malformed ones
//! too, at most the budget a second per CPU, the rest counted; off again, nothing more.

use filter_common::abi::{Action, CaptureRecord, Class, Config, Mode, Reason};
use levee::capture::CaptureSpec;
use levee_tests::{Harness, udp};

use crate::{DST4, SRC4};

fn records(ring: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<CaptureRecord> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        assert_eq!(item.len(), size_of::<CaptureRecord>(), "record size");
        // SAFETY: the length is checked above, and CaptureRecord is plain old data.
        out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) });
    }
    out
}

#[test]
fn capture_copies_what_the_filter_matches_within_its_budget() {
    // The budget is per CPU, and a test run runs on the caller's CPU: stay on one.
    levee_tests::livegen::pin_to_cpu(0).unwrap();
    let mut h = Harness::new(Config::new(Mode::Enforce));
    let mut ring = h.dp.take_capture().unwrap();
    let amp = udp(SRC4, DST4, 123, 40000);
    let clean = udp(SRC4, DST4, 5000, 40000);
    // An Ethernet header saying IPv4, then too few bytes for an IPv4 header.
    let mut short = vec![0xaa; 20];
    short[12..14].copy_from_slice(&[0x08, 0x00]);

    // Off: nothing, whatever the filter says.
    h.run(&amp);
    assert!(records(&mut ring).is_empty(), "copied while off");

    let spec = CaptureSpec {
        reasons: vec![Reason::AmpPort, Reason::Ipv4Truncated],
        snaplen: 40,
        budget: 3,
        ..CaptureSpec::default()
    };
    h.dp.start_capture(&spec.filter()).unwrap();
    h.run(&short);
    for _ in 0..5 {
        h.run(&amp);
        h.run(&clean);
    }
    let got = records(&mut ring);
    assert_eq!(got.len(), 3, "the budget of 3 this second");
    let truncated = &got[0];
    assert_eq!((truncated.len, truncated.caplen), (20, 20));
    assert_eq!(truncated.data[..20], short[..]);
    assert_eq!(truncated.reason, Reason::Ipv4Truncated as u8);
    assert_eq!(truncated.action, Action::Drop as u8);
    for r in &got[1..] {
        assert_eq!((r.len, r.caplen), (amp.len() as u32, 40));
        assert_eq!(r.data[..40], amp[..40], "the frame's first bytes");
        assert_eq!(
            (r.action, r.reason, r.class),
            (Action::Drop as u8, Reason::AmpPort as u8, Class::Udp as u8)
        );
        assert!(r.timestamp_ns > 0);
    }
    let skipped = h.dp.capture_skipped().unwrap();
    assert_eq!(skipped.budget, 3, "5 + 1 matched, 3 copied");
    assert_eq!(skipped.ring_full, 0);

    // A new capture starts with a fresh budget; a source filter matches only its source.
    let spec = CaptureSpec {
        source: Some("198.51.100.0/24".parse().unwrap()),
        budget: 100,
        ..CaptureSpec::default()
    };
    h.dp.start_capture(&spec.filter()).unwrap();
    h.run(&amp);
    h.run(&short);
    h.run(&udp("198.51.100.9", DST4, 5000, 53));
    let got = records(&mut ring);
    assert_eq!(got.len(), 1, "only the /24's packet");
    assert_eq!(
        (got[0].reason, got[0].action),
        (Reason::Clean as u8, Action::Pass as u8)
    );

    h.dp.stop_capture().unwrap();
    h.run(&udp("198.51.100.9", DST4, 5000, 53));
    assert!(records(&mut ring).is_empty(), "copied after the stop");
}
