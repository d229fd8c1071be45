//! Issue 22: the crowd's door. A crowd Levee has never answered keeps its datagrams when a
//! flood with a few faces arrives: the per-source limiter holds such a flood, so strict's
//! budget for unknown sources does not engage for it.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::sleep,
    time::Duration,
};

use filter_common::frames::L4;
use levee_tests::{
    daemon::DaemonLab,
    flood::flooding,
    netns::PROTECTED_V4,
    sender::RawSender,
    traffic::{drain, frames_from, udp_receiver},
};

/// A UDP service that never answers (telemetry, game input, ingest).
const PORT: u16 = 7300;
const CROWD: u32 = 200;
/// Datagrams a second from each member of the crowd.
const CROWD_PPS: u32 = 10;
const CALM: Duration = Duration::from_secs(2);
const FLOOD: Duration = Duration::from_secs(10);

fn member(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn flooder(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i as u8)
}

/// Issue 22, item 1: 200 sources at 10 pps each to a service that never answers, 2 s of calm,
/// then three sources flood the same port at the lab's full rate for 10 s; Levee in enforce
/// with its defaults (strict `auto`). At least 99% of the crowd's datagrams are delivered, no
/// member is blocked, at most 1% of the flood is delivered, and the UDP budget for unknown
/// sources stays off: the flood has faces.
#[test]
fn a_one_way_crowd_keeps_its_datagrams_through_a_flood_with_faces() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, PORT);
    let udp = |i: usize| L4::Udp {
        sport: 40_000 + (i % 20_000) as u16,
        dport: PORT,
    };
    // The crowd, round robin, for the calm, the flood and half a second after it.
    let rounds = (CALM + FLOOD).as_millis() as u32 * CROWD_PPS / 1000 + CROWD_PPS / 2;
    let crowd = frames_from(
        &d.lab,
        |i| member(i as u32 % CROWD),
        udp,
        (rounds * CROWD) as usize,
    );
    let flood = frames_from(&d.lab, |i| flooder(i as u32 % 3), udp, 30_000);

    let received: Mutex<HashMap<IpAddr, u64>> = Mutex::default();
    let done = AtomicBool::new(false);
    let mut status_mid_flood = None;
    let (crowd_sent, flood_sent) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let got = drain(&rx);
                let mut all = received.lock().unwrap();
                for (src, n) in got {
                    *all.entry(src).or_default() += n;
                }
            }
        });
        let crowd_sender = s.spawn(|| {
            d.lab.client.run(|| {
                let sender = RawSender::open("lv1").expect("raw socket");
                sender
                    .send(&crowd, 64, Some(f64::from(CROWD * CROWD_PPS)))
                    .expect("crowd")
            })
        });
        sleep(CALM);
        let (_, flood_sent) = flooding(&d.lab, &flood, || {
            sleep(FLOOD / 2);
            status_mid_flood = Some(d.status());
            sleep(FLOOD / 2);
        });
        let crowd_sent = crowd_sender.join().expect("crowd sender");
        sleep(Duration::from_millis(500));
        done.store(true, Ordering::SeqCst);
        (crowd_sent, flood_sent)
    });

    let received = received.into_inner().unwrap();
    let from = |f: &dyn Fn(u32) -> Ipv4Addr, n: u32| -> u64 {
        (0..n)
            .map(|i| received.get(&IpAddr::V4(f(i))).copied().unwrap_or(0))
            .sum()
    };
    let crowd_got = from(&member, CROWD);
    let flood_got = from(&flooder, 3);
    let status = status_mid_flood.expect("status during the flood");
    let blocked: Vec<String> = d
        .block_list()
        .iter()
        .map(|b| b.cidr.0.to_string())
        .filter(|c| c.starts_with("198.18."))
        .collect();
    eprintln!(
        "crowd: {crowd_got} of {crowd_sent} delivered; flood: {flood_got} of {flood_sent} \
         delivered; mid-flood: attack {:?}, strict {:?}",
        status.attack, status.strict
    );
    assert_eq!(
        status.attack.get("udp").map(String::as_str),
        Some("under_attack"),
        "the flood is an attack"
    );
    assert!(
        status.strict.engaged && !status.strict.udp_budget,
        "strict engaged, without the budget for unknown sources: {:?}",
        status.strict
    );
    assert!(
        crowd_got * 100 >= crowd_sent * 99,
        "at least 99% of the crowd delivered: {crowd_got} of {crowd_sent}"
    );
    assert!(blocked.is_empty(), "no member blocked: {blocked:?}");
    assert!(
        flood_got * 100 <= flood_sent,
        "at most 1% of the flood delivered: {flood_got} of {flood_sent}"
    );
}
