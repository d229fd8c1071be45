//! Where a tracked source's state lives: its slot of SOURCE_SLOTS (an array lookup) or, when
//! another source holds that slot, SOURCES. Each source keeps its own state wherever it
//! lives; a slot is given on only when its source is at rest (no penalty, buckets full), so
//! no source inherits another's penalty or loses its own; the kept count of tracked sources
//! covers both tables.

use std::{net::Ipv4Addr, thread::sleep, time::Duration};

use filter_common::{
    abi::{Class, Config, Mode, Reason, SOURCE_SLOT_COUNT, flags, source_slot},
    config::{Rate, source_key_v4},
    frames::l3_offset,
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS, ip, udp};

use crate::DST4;

/// UDP sources tracked from their first packet, `burst` packets then one every `every`.
fn limited(burst: u64, every: Duration, penalty: Duration) -> Config {
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.sketch_threshold = 1;
    cfg.penalty_ns = penalty.as_nanos() as u64;
    let mut rate = Rate {
        pps: 1,
        burst_packets: burst,
        ..Rate::default()
    }
    .encode();
    rate.pkt_cost_ns = every.as_nanos() as u64;
    rate.pkt_burst_ns = burst * rate.pkt_cost_ns;
    cfg.source[Class::Udp as usize] = rate;
    cfg
}

/// `n` addresses of 10.0.0.0/8 whose state goes to `addr`'s slot (under a /32 mask).
pub(crate) fn slot_mates(addr: &str, n: usize) -> Vec<String> {
    let slot = |a: Ipv4Addr| source_slot(source_key_v4(a.octets(), !0));
    let own = slot(addr.parse().unwrap());
    (0x0a00_0000u32..0x0b00_0000)
        .map(Ipv4Addr::from)
        .filter(|a| slot(*a) == own)
        .take(n)
        .map(|a| a.to_string())
        .collect()
}

fn send(h: &Harness, src: &str) -> u32 {
    h.run(&udp(src, DST4, 1, 2))
}

fn dropped(h: &Harness, reason: Reason) -> u64 {
    h.counters()
        .get(filter_common::abi::Action::Drop, reason, Class::Udp)
        .packets
}

#[test]
fn sources_that_share_a_slot_keep_their_own_state() {
    let h = Harness::new(limited(3, Duration::from_secs(1), Duration::from_secs(60)));
    let a = "198.18.1.10";
    let mates = slot_mates(a, 2);
    let (b, c) = (mates[0].as_str(), mates[1].as_str());
    for _ in 0..3 {
        assert_eq!(send(&h, a), XDP_PASS, "{a} within its burst");
    }
    assert_eq!(send(&h, a), XDP_DROP, "{a} over its limit");
    assert!(
        h.dp.source_in_slot(ip(a)).unwrap(),
        "the first holds the slot"
    );
    // The slot mate is judged by its own state, not by the penalty in the slot.
    for _ in 0..3 {
        assert_eq!(
            send(&h, b),
            XDP_PASS,
            "{b} shares {a}'s slot, not its penalty"
        );
    }
    assert!(!h.dp.source_in_slot(ip(b)).unwrap(), "{b} lives in SOURCES");
    assert!(h.dp.source(ip(b)).unwrap().is_some(), "{b} is tracked");
    let rate_drops = dropped(&h, Reason::SourceRate);
    assert_eq!(send(&h, b), XDP_DROP, "{b} over its own limit");
    assert_eq!(dropped(&h, Reason::SourceRate), rate_drops + 1);
    let penalty_drops = dropped(&h, Reason::SourcePenalty);
    assert_eq!(send(&h, a), XDP_DROP, "{a} still serves its penalty");
    assert_eq!(send(&h, b), XDP_DROP, "{b} serves its own");
    assert_eq!(dropped(&h, Reason::SourcePenalty), penalty_drops + 2);
    assert_eq!(send(&h, c), XDP_PASS, "a third mate starts fresh");
    assert_eq!(h.dp.tracked_sources().unwrap(), 3);
    assert_eq!(h.dp.tracked_sources_kept(1 << 14).unwrap(), 3);
}

#[test]
fn a_slot_is_given_on_only_when_its_source_is_at_rest() {
    // One packet, then one every 100 ms: a source is at rest 100 ms after its packet.
    let every = Duration::from_millis(100);
    let h = Harness::new(limited(1, every, Duration::from_secs(60)));
    let a = "198.18.1.10";
    let mates = slot_mates(a, 3);
    let (b, c, d) = (mates[0].as_str(), mates[1].as_str(), mates[2].as_str());

    // A penalty holds the slot even once the buckets are full again.
    assert_eq!(send(&h, a), XDP_PASS);
    assert_eq!(send(&h, a), XDP_DROP, "{a} over its limit: a 60 s penalty");
    sleep(3 * every);
    assert_eq!(send(&h, b), XDP_PASS, "{b} fresh");
    assert!(
        h.dp.source_in_slot(ip(a)).unwrap(),
        "{a}'s penalty keeps its slot"
    );
    assert!(!h.dp.source_in_slot(ip(b)).unwrap(), "{b} went to SOURCES");
    assert_eq!(send(&h, a), XDP_DROP, "{a} still serves its penalty");

    // A busy source holds its slot: c's slot mate d, right after c, goes to SOURCES.
    // (No penalty here: a source over its limit is busy only until its bucket refills.)
    let h = Harness::new(limited(1, every, Duration::ZERO));
    assert_eq!(send(&h, c), XDP_PASS);
    assert_eq!(send(&h, d), XDP_PASS);
    assert!(h.dp.source_in_slot(ip(c)).unwrap());
    assert!(
        !h.dp.source_in_slot(ip(d)).unwrap(),
        "{c} is busy: {d} went to SOURCES"
    );
    assert_eq!(send(&h, c), XDP_DROP, "{c}'s own bucket is empty");
    // At rest, the slot goes to the next new source, who starts fresh; the one that had it
    // finds its state in SOURCES next time, as fresh as what it left.
    sleep(3 * every);
    let e = &slot_mates(a, 4)[3];
    assert_eq!(
        send(&h, a),
        XDP_PASS,
        "{a}, new here, takes the slot {c} left at rest"
    );
    assert!(h.dp.source_in_slot(ip(a)).unwrap());
    assert_eq!(send(&h, c), XDP_PASS, "{c} comes back fresh");
    assert!(
        !h.dp.source_in_slot(ip(c)).unwrap(),
        "{c} now lives in SOURCES"
    );
    assert_eq!(
        send(&h, c),
        XDP_DROP,
        "{c}'s bucket is charged where it now lives"
    );
    assert_eq!(send(&h, e), XDP_PASS);
    assert_eq!(
        h.dp.tracked_sources().unwrap(),
        4,
        "{a} in the slot; {c}, {d}, {e} in SOURCES"
    );
    assert_eq!(h.dp.tracked_sources_kept(1 << 14).unwrap(), 4);
}

#[test]
fn the_source_tables_size_is_kept_not_counted() {
    // Every source is tracked from its first packet and busy for a second after it. A table
    // of 1024 entries behind the slots: the count is exact until the table is full, then
    // capped there, whatever the slots hold.
    let h = Harness::with_sources(limited(100, Duration::from_secs(1), Duration::ZERO), 1024);
    let sources = SOURCE_SLOT_COUNT + 4_000;
    let mut frame = udp("10.0.0.0", DST4, 1, 2);
    let l3 = l3_offset(0);
    for i in 0..sources {
        frame[l3 + 12..l3 + 16].copy_from_slice(&(0x0a00_0000 + i).to_be_bytes());
        assert_eq!(h.run(&frame), XDP_PASS);
        if i == 1999 {
            let walked = h.dp.tracked_sources().unwrap() as u64;
            assert_eq!(walked, 2000);
            assert_eq!(h.dp.tracked_sources_kept(1024).unwrap(), walked, "exact");
        }
    }
    // Known sources are not added again.
    for _ in 0..3 {
        assert_eq!(h.run(&frame), XDP_PASS);
    }
    let added = h.dp.sources_added().unwrap();
    assert_eq!(added, u64::from(sources), "one per new source");
    let walked = h.dp.tracked_sources().unwrap() as u64;
    let kept = h.dp.tracked_sources_kept(1024).unwrap();
    assert!(
        walked > 1024,
        "{walked}: the slots hold sources beyond the table"
    );
    assert!(walked <= 1024 + u64::from(SOURCE_SLOT_COUNT), "{walked}");
    assert!(
        kept >= walked && kept - walked <= 256,
        "kept count {kept} vs {walked} walked"
    );
}
