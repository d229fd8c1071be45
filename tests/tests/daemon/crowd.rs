//! Issue 22: the crowd's door. A crowd Levee has never answered keeps its datagrams when a
//! flood with a few faces arrives: the per-source limiter holds such a flood, so strict's
//! budget for unknown sources does not engage for it. Against a spread flood, the crowd
//! that sent while calm is familiar and passes before that budget.

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

use filter_common::{
    abi::{Action, Reason},
    frames::L4,
};
use levee_tests::{
    daemon::{DaemonLab, packets},
    flood::flooding,
    netns::PROTECTED_V4,
    sender::RawSender,
    traffic::{drain, frames_from, spoofed_frames, udp_receiver},
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

/// What reached the service from the crowd and the flood, and `levee status` mid-flood.
struct Outcome {
    crowd_sent: u64,
    crowd_got: u64,
    flood_sent: u64,
    received: HashMap<IpAddr, u64>,
    status: levee::api::views::StatusView,
}

/// The crowd sends for `calm`, then `flood` is sent at full speed for [`FLOOD`] beside it,
/// and the crowd goes on half a second after.
fn crowd_and_flood(d: &DaemonLab, calm: Duration, flood: &[u8]) -> Outcome {
    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, PORT);
    let rounds = (calm + FLOOD).as_millis() as u32 * CROWD_PPS / 1000 + CROWD_PPS / 2;
    let crowd = frames_from(
        &d.lab,
        |i| member(i as u32 % CROWD),
        udp,
        (rounds * CROWD) as usize,
    );
    let received: Mutex<HashMap<IpAddr, u64>> = Mutex::default();
    let done = AtomicBool::new(false);
    let mut status = None;
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
        sleep(calm);
        let (_, flood_sent) = flooding(&d.lab, flood, || {
            sleep(FLOOD / 2);
            status = Some(d.status());
            sleep(FLOOD / 2);
        });
        let crowd_sent = crowd_sender.join().expect("crowd sender");
        sleep(Duration::from_millis(500));
        done.store(true, Ordering::SeqCst);
        (crowd_sent, flood_sent)
    });
    let received = received.into_inner().unwrap();
    let crowd_got = (0..CROWD)
        .map(|i| received.get(&IpAddr::V4(member(i))).copied().unwrap_or(0))
        .sum();
    Outcome {
        crowd_sent,
        crowd_got,
        flood_sent,
        received,
        status: status.expect("status during the flood"),
    }
}

fn udp(i: usize) -> L4 {
    L4::Udp {
        sport: 40_000 + (i % 20_000) as u16,
        dport: PORT,
    }
}

/// Crowd members on the block list.
fn blocked_members(d: &DaemonLab) -> Vec<String> {
    d.block_list()
        .iter()
        .map(|b| b.cidr.0.to_string())
        .filter(|c| c.starts_with("198.18."))
        .collect()
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
    let flood = frames_from(&d.lab, |i| flooder(i as u32 % 3), udp, 30_000);
    let o = crowd_and_flood(&d, CALM, &flood);
    let flood_got: u64 = (0..3)
        .map(|i| {
            o.received
                .get(&IpAddr::V4(flooder(i)))
                .copied()
                .unwrap_or(0)
        })
        .sum();
    eprintln!(
        "crowd: {} of {} delivered; flood: {flood_got} of {} delivered; mid-flood: attack {:?}, \
         strict {:?}",
        o.crowd_got, o.crowd_sent, o.flood_sent, o.status.attack, o.status.strict
    );
    assert_eq!(
        o.status.attack.get("udp").map(String::as_str),
        Some("under_attack"),
        "the flood is an attack"
    );
    assert!(
        o.status.strict.engaged && !o.status.strict.udp_budget,
        "strict engaged, without the budget for unknown sources: {:?}",
        o.status.strict
    );
    assert!(
        o.crowd_got * 100 >= o.crowd_sent * 99,
        "at least 99% of the crowd delivered: {} of {}",
        o.crowd_got,
        o.crowd_sent
    );
    let blocked = blocked_members(&d);
    assert!(blocked.is_empty(), "no member blocked: {blocked:?}");
    assert!(
        flood_got * 100 <= o.flood_sent,
        "at most 1% of the flood delivered: {flood_got} of {}",
        o.flood_sent
    );
}

/// Issue 22, familiar sources: the same one-way crowd, 3 s of calm, then a random-source
/// flood on its port (spread: strict's budget for unknown sources engages). The crowd sent
/// within its limits while calm, so it is familiar and passes before the budget: at least
/// 99% of it is delivered, at most 1% of the flood. Its familiarity survives a clean restart.
#[test]
fn a_familiar_crowd_keeps_its_door_through_a_spread_flood() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let flood = spoofed_frames(&d.lab, udp, 50_000);
    let o = crowd_and_flood(&d, Duration::from_secs(3), &flood);
    let crowd_sources: Vec<IpAddr> = (0..CROWD).map(|i| IpAddr::V4(member(i))).collect();
    let flood_got: u64 = o
        .received
        .iter()
        .filter(|(src, _)| !crowd_sources.contains(src))
        .map(|(_, n)| n)
        .sum();
    let familiar = packets(&d.stats(), Action::Pass, Some(Reason::Familiar));
    eprintln!(
        "familiar crowd: {} of {} delivered ({familiar} passed as familiar); spread flood: \
         {flood_got} of {} delivered; mid-flood strict {:?}",
        o.crowd_got, o.crowd_sent, o.flood_sent, o.status.strict
    );
    assert!(
        o.status.strict.udp_budget,
        "the flood is spread: the budget engaged: {:?}",
        o.status.strict
    );
    assert!(familiar > 0, "the crowd passed as familiar");
    assert!(
        o.crowd_got * 100 >= o.crowd_sent * 99,
        "at least 99% of the familiar crowd delivered: {} of {}",
        o.crowd_got,
        o.crowd_sent
    );
    assert!(
        flood_got * 100 <= o.flood_sent,
        "at most 1% of the flood delivered: {flood_got} of {}",
        o.flood_sent
    );
    let blocked = blocked_members(&d);
    assert!(blocked.is_empty(), "no member blocked: {blocked:?}");
    // A clean stop saves the familiar sources, the next start writes them back.
    assert!(d.stop(), "clean stop");
    d.start();
    let member = member(7).to_string();
    let out = d.cli_ok(&["explain", &member, "--proto", "udp", "--json"]);
    let view: levee::api::views::ExplainView = serde_json::from_str(&out).expect("explain");
    assert!(
        view.familiar_secs_ago.is_some(),
        "{member} is still familiar after a restart: {out}"
    );
}
