//! Issue 22, item 2: strict engages in the program within milliseconds of a spread flood's
//! onset, without waiting for detection's next tick; with `auto_enforce` (the default) the
//! daemon's monitor mode enforces at once.

use std::{io::Write, net::TcpListener, thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Reason},
    frames::L4,
    parse::TCP_SYN,
};
use levee::api::views::CounterView;
use levee_tests::{
    daemon::{DaemonLab, packets},
    flood::flooding,
    netns::PROTECTED_V4,
    traffic::{addr, spoofed_frames},
};

const PORT: u16 = 8080;

/// Packets counted with `reason` (any action) between two `stats`; nothing but the flood
/// runs meanwhile.
fn counted(before: &[CounterView], after: &[CounterView], reason: Reason) -> u64 {
    let sum = |s: &[CounterView]| {
        s.iter()
            .filter(|c| c.reason == reason.name())
            .map(|c| c.packets)
            .sum::<u64>()
    };
    sum(after) - sum(before)
}

/// Defaults: monitor mode, strict `auto`. A random-source SYN flood at the lab's full rate
/// on a served port: at most its first 10 ms reach the stack, the rest are answered with
/// cookies; the log and `levee status` say strict engaged in the program.
#[test]
fn a_spread_flood_engages_strict_in_the_program_within_10_ms() {
    let mut d = DaemonLab::new();
    d.write_config("");
    d.start();
    let listener = d
        .lab
        .protected
        .run(|| TcpListener::bind(addr(PROTECTED_V4, PORT)).unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = s.write_all(b"hello");
        }
    });
    // Calm: detection learns, and the listener is found as a service.
    sleep(Duration::from_millis(2500));
    let syns = spoofed_frames(
        &d.lab,
        |i| L4::Tcp {
            sport: 1024 + (i % 60_000) as u16,
            dport: PORT,
            flags: TCP_SYN,
        },
        50_000,
    );
    let before = d.stats();
    let started = std::time::Instant::now();
    let (status, sent) = flooding(&d.lab, &syns, || {
        sleep(Duration::from_millis(1500));
        d.status()
    });
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    sleep(Duration::from_millis(300));
    let after = d.stats();
    let reached = counted(&before, &after, Reason::Clean);
    let cookies = counted(&before, &after, Reason::SynCookie);
    let ms = reached as f64 / rate * 1000.0;
    eprintln!(
        "spread SYN flood of {sent} at {rate:.0}/s: {reached} reached the stack before strict \
         engaged in the program ({ms:.2} ms of the flood), {cookies} answered with cookies"
    );
    assert!(
        status.strict.triggered.contains(&"tcp_syn".to_string()),
        "status names the trigger: {:?}",
        status.strict
    );
    assert!(
        ms <= 10.0,
        "at most the first 10 ms reach the stack: {reached} SYNs, {ms:.2} ms"
    );
    assert!(
        cookies * 100 >= sent * 99,
        "{cookies} of {sent} answered with cookies"
    );
    assert_eq!(
        packets(&after, Action::WouldDrop, None) - packets(&before, Action::WouldDrop, None),
        0,
        "monitor enforced at once (auto_enforce), nothing only counted"
    );
    let log = d.log();
    assert!(
        log.contains("strict engaged in the program"),
        "the log says so: {log}"
    );
}
