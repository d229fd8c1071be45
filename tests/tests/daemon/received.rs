//! Issue 23: FlowSpec rules received from a neighbour cannot hurt the host. A discard over
//! the /24 Levee's own session address lives in drops everyone else's traffic there but never
//! the BGP session (its packets pass before every stage); a rule over a /16 is refused; and
//! once `levee run` is killed, the rules it enforced stop by themselves within their lease,
//! the program still attached. Issue 26: a rule the neighbour adds or withdraws is followed
//! through gobgpd's watch, within a second.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::{Action, Reason, UPSTREAM_LEASE_NS};
use levee_tests::{
    bgp::{ATTACKED, Bird, ESCALATION, since_ms, wait},
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{addr, drain, udp_receiver},
};

/// The session's hold time at bird (BGP takes the smaller end's): three of them pass in the
/// test while the rule is in force.
const HOLD_SECS: u32 = 6;

/// Sends one datagram from `src` to the receiver; whether it arrived.
fn one_datagram(d: &DaemonLab, rx: &std::net::UdpSocket, src: &str) -> bool {
    d.lab.client.run(|| {
        let s = std::net::UdpSocket::bind(addr(src, 0)).unwrap();
        s.send_to(b"x", addr(PROTECTED_V4, 9000)).unwrap();
    });
    sleep(Duration::from_millis(100));
    drain(rx).get(&src.parse().unwrap()).copied().unwrap_or(0) > 0
}

#[test]
fn a_received_rule_over_levees_own_address_cannot_cut_its_session() {
    let mut d = DaemonLab::new();
    // Levee's session address, 198.18.0.1, is inside both.
    let bird = Bird::configured(
        &d.lab.client,
        &d.dir,
        &["dst 198.18.0.0/24;", "dst 198.18.0.0/16;"],
        Some(HOLD_SECS),
    );
    d.write_config(&format!(
        "mode = \"enforce\"\n{ESCALATION}accept_flowspec = true\n"
    ));
    d.start();
    let read = || d.cli_ok(&["escalate", "list", "--received", "--json"]);
    let shown = wait(60, read, |s| {
        s.contains("\"enforced\"") && s.contains("\"refused\"")
    });
    let received: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let state = |dst: &str| {
        received
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"].as_str().unwrap().contains(dst))
            .map(|r| (r["state"].to_string(), r["detail"].to_string()))
            .unwrap_or_else(|| panic!("no rule for {dst}: {shown}"))
    };
    let (wide, why) = state("198.18.0.0/16");
    assert_eq!(wide, "\"refused\"", "{why}");
    assert!(why.contains("received_min_prefix_v4"), "{why}");
    assert_eq!(state("198.18.0.0/24").0, "\"enforced\"", "{shown}");
    let session = bird.session();
    assert!(session.contains("Established"), "{session}");

    // Everyone else's traffic to the /24 is dropped by the rule.
    // (The link's neighbours are resolved already: the session runs over it.)
    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    let before = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
    assert!(!one_datagram(&d, &rx, CLIENT_V4[1]), "dropped by the rule");
    let after = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
    assert!(after > before, "counted as upstream_rule");

    // An RTBH announced while the rule is in force reaches the upstream within 5 s.
    d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    let route = bird.wait_route(&format!("{ATTACKED}/32"), 5, |s| s.contains("(65535,666)"));
    assert!(
        route.contains("(65535,666)"),
        "the RTBH reached bird: {route}"
    );

    // Three hold times pass; the session never drops (the same "since" throughout).
    let first = since_ms(&session);
    let end = Instant::now() + Duration::from_secs(u64::from(3 * HOLD_SECS) + 1);
    while Instant::now() < end {
        let now = bird.session();
        assert!(now.contains("Established"), "the session stays up: {now}");
        let moved = (since_ms(&now) - first).abs();
        assert!(moved <= 50, "and never restarted ({moved} ms later): {now}");
        sleep(Duration::from_millis(500));
    }
    let kept = packets(&d.stats(), Action::Pass, Some(Reason::BgpSession));
    assert!(kept > 0, "the session's packets passed as bgp_session");

    // Levee is killed: the program stays attached, and the rule stops within its lease.
    d.signal(libc::SIGKILL);
    d.reap();
    let killed = Instant::now();
    let lease = Duration::from_nanos(UPSTREAM_LEASE_NS);
    let mut passed = false;
    while !passed && killed.elapsed() < lease + Duration::from_secs(5) {
        passed = one_datagram(&d, &rx, CLIENT_V4[1]);
    }
    let took = killed.elapsed();
    eprintln!("after kill -9 the received rule stopped in {took:?} (lease {lease:?})");
    assert!(
        passed,
        "the rule stopped within its lease: not after {took:?}"
    );
    assert!(
        took <= lease + Duration::from_secs(2),
        "within the lease: {took:?}"
    );
    assert!(d.xdp_attached(), "the program is still attached");
}

/// Each neighbour has a max-prefix: bird sends four FlowSpec rules to a managed gobgpd that
/// takes at most three from it, and gobgpd closes the session (Cease, maximum number of
/// prefixes reached) rather than hold more; none of its rules is enforced.
#[test]
fn a_neighbour_over_its_max_prefix_loses_its_session() {
    let mut d = DaemonLab::new();
    let flows = [
        "dst 198.18.0.10/32;",
        "dst 198.18.0.11/32;",
        "dst 198.18.0.12/32;",
        "dst 198.18.0.13/32;",
    ];
    let bird = Bird::configured(&d.lab.client, &d.dir, &flows, None);
    let config = ESCALATION.replace("asn = 65000 }", "asn = 65000, max_prefixes = 3 }");
    assert_ne!(config, ESCALATION);
    d.write_config(&format!("{config}accept_flowspec = true\n"));
    d.start();
    let shown = wait(
        60,
        || bird.session_all(),
        |s| s.contains("Maximum number of prefixes"),
    );
    assert!(
        shown.contains("Maximum number of prefixes"),
        "gobgpd closed the session over its max-prefix: {shown}\n{}",
        d.log()
    );
    let received = d.cli_json(&["escalate", "list"])["received"].clone();
    assert!(
        received
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["state"] != "enforced")),
        "nothing from a session over its limit is enforced: {received}"
    );
}

/// The state Levee shows for the received rule whose text holds `dst`, if it shows one.
fn received_state(d: &DaemonLab, dst: &str) -> Option<String> {
    let shown = d.cli_ok(&["escalate", "list", "--received", "--json"]);
    let received: serde_json::Value = serde_json::from_str(&shown).unwrap();
    received
        .as_array()?
        .iter()
        .find(|r| r["rule"].as_str().unwrap_or_default().contains(dst))
        .map(|r| r["state"].as_str().unwrap_or_default().to_string())
}

/// Polls `check` every 20 ms for up to 5 s; how long it took to hold.
fn time_until(check: impl Fn() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if check() {
            return Some(started.elapsed());
        }
        sleep(Duration::from_millis(20));
    }
    None
}

/// What a route reflector passes on from another node, Levee enforces within a second, and
/// stops within a second of its withdrawal: gobgpd's watch tells Levee, no poll waits.
#[test]
fn a_rule_the_neighbour_adds_or_withdraws_is_followed_within_a_second() {
    let mut d = DaemonLab::new();
    const ELSEWHERE: &str = "dst 198.18.0.10/32; proto = 17; dport = 7777;";
    const HERE: &str = "dst 198.18.0.1/32; proto = 17; dport = 9000;";
    let bird = Bird::with_flows(&d.lab.client, &d.dir, &[ELSEWHERE]);
    d.write_config(&format!(
        "mode = \"enforce\"\n{ESCALATION}accept_flowspec = true\n"
    ));
    d.start();
    let first = wait(
        60,
        || format!("{:?}", received_state(&d, "198.18.0.10/32")),
        |s| s == "Some(\"enforced\")",
    );
    assert_eq!(first, "Some(\"enforced\")", "the first rule enforced");
    let session = bird.session();
    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    assert!(
        one_datagram(&d, &rx, CLIENT_V4[1]),
        "passes before the rule"
    );

    bird.set_flows(&[ELSEWHERE, HERE]);
    let took_in = time_until(|| received_state(&d, "198.18.0.1/32").as_deref() == Some("enforced"))
        .expect("the new rule enforced within 5 s");
    let dropped = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
    assert!(
        !one_datagram(&d, &rx, CLIENT_V4[1]),
        "dropped by the new rule"
    );
    assert!(
        packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule)) > dropped,
        "counted as upstream_rule"
    );

    bird.set_flows(&[ELSEWHERE]);
    let took_out = time_until(|| received_state(&d, "198.18.0.1/32").is_none())
        .expect("the withdrawn rule gone within 5 s");
    assert!(one_datagram(&d, &rx, CLIENT_V4[1]), "passes again");
    eprintln!(
        "a rule the neighbour added was enforced in {took_in:?}, one it withdrew stopped in {took_out:?}"
    );
    let log = d.log();
    assert!(
        log.contains("following the received FlowSpec rules through gobgpd's watch"),
        "told by the watch, not found by a poll: {log}"
    );
    assert!(took_in < Duration::from_secs(1), "enforced in {took_in:?}");
    assert!(took_out < Duration::from_secs(1), "stopped in {took_out:?}");
    let now = bird.session();
    assert!(now.contains("Established"), "the session is up: {now}");
    assert!(
        (since_ms(&now) - since_ms(&session)).abs() <= 50,
        "the session never dropped, nor did the reconfiguration reset it: {session} -> {now}"
    );
}
