//! Issue 26: detect once, drop everywhere. Three Levee nodes protect one anycast prefix, with
//! bird2 as the route reflector of their sessions. A reflection flood (from a game server's
//! query port) at node A is detected there; A's rule for its shape and its block of the verified flooder
//! reach B and C through the reflector, which drop what matches while their crowd on the same
//! port keeps its service; a node restarted mid-attack gets them as soon as its session is
//! up; when A's attack is over its rule leaves B and C; no session drops.

use std::{
    net::UdpSocket,
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    bgp::{Bird, since_ms, wait},
    daemon::{DaemonLab, packets},
    fleet::{FleetLab, NODES, log_times, session_name},
    flood::{FLOOD_PORT, FLOODER, FloodLab},
    netns::{CLIENT_V4, PROTECTED_V4, SecondLink},
    traffic::{DATAGRAMS, addr, drain, udp_receiver},
};

/// A port of each node's with a receiver, apart from the flood's.
const OTHER_PORT: u16 = 9001;
/// The reflection's source port: a game server's query port (A2S reflection), outside the
/// amplification signature's default list, so no node drops it before it learns of it.
const REFLECTED: u16 = 27015;
/// The longest a rule may take from one node's decision to another's program.
const WITHIN: f64 = 1.0;

/// Every node: enforcing with strict off (detection's threshold path blocks verified
/// offenders), a UDP attack declared above 5,000 pps, samples for the attack's shape.
const CONFIG: &str = "mode = \"enforce\"\n[strict]\nmode = \"off\"\n[detection]\nrecovery_secs = 2\n\
     [detection.floor_pps]\nudp = 5000\n[events]\nsample_every = 16";

/// The received rules node `d` enforces, as `escalate list --received` shows them.
fn enforced(d: &DaemonLab) -> Vec<String> {
    let shown = d.cli_ok(&["escalate", "list", "--received", "--json"]);
    let received: serde_json::Value = serde_json::from_str(&shown).unwrap();
    received
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "enforced")
        .map(|r| r["detail"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits up to `secs` for node `d` to enforce a rule whose text holds every one of `parts`.
fn wait_enforced(d: &DaemonLab, secs: u64, parts: &[&str]) -> bool {
    let found = |rules: &[String]| rules.iter().any(|r| parts.iter().all(|p| r.contains(p)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if found(&enforced(d)) {
            return true;
        }
        sleep(Duration::from_millis(50));
    }
    false
}

/// Sends a paced burst from `src` to node `d`'s `port`; how many datagrams arrived.
fn arrived(d: &DaemonLab, rx: &UdpSocket, src: &str, port: u16) -> u64 {
    arrived_from(d, rx, src, 0, port)
}

/// [`arrived`] from source port `sport` (0: any).
fn arrived_from(d: &DaemonLab, rx: &UdpSocket, src: &str, sport: u16, port: u16) -> u64 {
    d.lab.client.run(|| {
        let sock = UdpSocket::bind(addr(src, sport)).expect("bind");
        for i in 0..DATAGRAMS {
            sock.send_to(&i.to_be_bytes(), addr(PROTECTED_V4, port))
                .expect("send");
            if i % 20 == 19 {
                sleep(Duration::from_millis(2));
            }
        }
    });
    sleep(Duration::from_millis(150));
    drain(rx).get(&src.parse().unwrap()).copied().unwrap_or(0)
}

/// The first time in `log` after `after` (seconds of the day) of a line holding `needle`.
fn first_after(log: &str, needle: &str, after: f64) -> Option<f64> {
    log_times(log, needle).into_iter().find(|t| *t >= after)
}

/// How long after `since` (seconds of the day) node `d` first logged `needle`, reported as
/// `what` and asserted within [`WITHIN`].
fn logged_within(d: &DaemonLab, needle: &str, since: f64, what: &str) {
    let took = first_after(&d.log(), needle, since)
        .map(|t| t - since)
        .unwrap_or_else(|| panic!("{what}: no {needle:?} logged: {}", d.log()));
    eprintln!("{what} {:.0} ms", took * 1000.0);
    assert!(took <= WITHIN, "{what}: {took:.3} s");
}

/// A's shape rule and block reach B and C (`others`) within a second of A's decisions
/// (`shared_at`, `blocked_at`), and they drop what matches them.
fn check_others_enforce(others: &[FloodLab], shared_at: f64, blocked_at: f64) {
    let shape = format!("dst {PROTECTED_V4}/32 proto 17 sport {REFLECTED} discard");
    let block = format!("src {FLOODER}/32");
    for (n, node) in others.iter().enumerate() {
        let (i, d) = (n + 1, &node.daemon);
        assert!(
            wait_enforced(d, 10, &[&shape]) && wait_enforced(d, 10, &[&block]),
            "node {i} enforces A's rule and block: {:?}\n{}",
            enforced(d),
            d.log()
        );
        let rule = format!("node {i} enforced A's rule after A decided:");
        logged_within(d, "received FlowSpec rules in force", shared_at, &rule);
        let block = format!("src {FLOODER}/32 discard");
        let what = format!("node {i} enforced A's block after A blocked:");
        logged_within(d, &block, blocked_at, &what);

        // The flood's shape: every datagram from the reflected port is dropped, counted as
        // upstream_rule; the crowd on the same service port keeps it.
        let rx = &node.rx;
        let other = udp_receiver(&d.lab.protected, PROTECTED_V4, OTHER_PORT);
        let before = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
        assert_eq!(
            arrived_from(d, rx, CLIENT_V4[1], REFLECTED, FLOOD_PORT),
            0,
            "node {i}: the shape"
        );
        let after = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
        assert!(
            after - before >= DATAGRAMS,
            "node {i}: {} counted",
            after - before
        );
        assert_eq!(
            arrived(d, rx, CLIENT_V4[1], FLOOD_PORT),
            DATAGRAMS,
            "node {i}: the crowd on the flooded port"
        );
        assert_eq!(arrived(d, &other, CLIENT_V4[1], OTHER_PORT), DATAGRAMS);
        // A's offender is dropped whatever it sends; another source is not.
        assert_eq!(
            arrived(d, &other, FLOODER, OTHER_PORT),
            0,
            "node {i}: the block"
        );
    }
}

#[test]
fn what_one_node_learns_every_node_enforces_within_a_second() {
    let mut fleet = FleetLab::start(CONFIG);
    fleet.nodes[0].reflected(REFLECTED);
    let sessions = fleet.wait_sessions(60);
    assert!(
        sessions.iter().all(|s| s.contains("Established")),
        "every session up: {sessions:?}"
    );
    let since: Vec<i64> = sessions.iter().map(|s| since_ms(s)).collect();

    let FleetLab {
        nodes, reflector, ..
    } = &mut fleet;
    let session = |i| reflector.session_of(&session_name(i));
    let (a, others) = nodes.split_at_mut(1);
    let (shared_at, restarted_up) = a[0].flood_at(30_000.0, || {
        let a = &a[0].daemon;
        let log = wait(20, || a.log(), |l| l.contains("detection shared a block"));
        let shared_at = log_times(&log, "detection shared its rule with the fleet")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("A shared nothing: {log}"));
        assert!(log.contains("attack started"), "{log}");
        let blocked_at = *log_times(&log, "detection shared a block")
            .first()
            .unwrap_or_else(|| panic!("A shared no block: {log}"));
        check_others_enforce(others, shared_at, blocked_at);
        // B's status: the reflector sent A's two rules, held by A for its TTL (600 s).
        let status = others[0].daemon.cli_json(&["status"]);
        let rr = &status["neighbors"][0];
        assert_eq!(
            (rr["role"].as_str(), rr["received"].as_u64()),
            (Some("fleet"), Some(2)),
            "{status}"
        );
        assert_eq!(rr["enforced"], 2, "{status}");
        let ends = rr["ends_in_secs"].as_array().expect("A says how long");
        assert!(
            ends[0].as_u64().unwrap() > 500 && ends[1].as_u64().unwrap() <= 600,
            "{status}"
        );
        // Only A announced them: B and C never send back what they received.
        let flows = reflector.flows();
        assert!(flows.contains("[node1"), "{flows}");
        assert!(
            !flows.contains("[node2") && !flows.contains("[node3"),
            "{flows}"
        );

        // B is restarted mid-attack: it enforces as soon as its session is up.
        let b = &mut others[0].daemon;
        assert!(b.stop(), "B stops: {}", b.log());
        b.start();
        let up = wait(30, || session(1), |s| s.contains("Established"));
        assert!(up.contains("Established"), "B's session is back: {up}");
        let b = &others[0].daemon;
        let shape = format!("dst {PROTECTED_V4}/32 proto 17 sport {REFLECTED}");
        assert!(wait_enforced(b, 10, &[&shape]), "{:?}", enforced(b));
        let up_ms = since_ms(&up) as f64 / 1000.0;
        let took = log_times(&b.log(), "received FlowSpec rules in force")
            .first()
            .map(|t| t - up_ms)
            .unwrap_or_else(|| panic!("B logged no rules in force: {}", b.log()));
        eprintln!(
            "restarted B enforced {:.0} ms after its session came up",
            took * 1000.0
        );
        assert!(took <= WITHIN, "B after its restart: {took:.3} s");
        (shared_at, up)
    });

    // The flood is over: A's attack ends, and its rule leaves B and C within a second; the
    // block stays for its time.
    let a = fleet.node(0);
    let log = wait(20, || a.log(), |l| l.contains("attack over"));
    let over = *log_times(&log, "attack over")
        .first()
        .unwrap_or_else(|| panic!("A's attack never ended: {log}"));
    assert!(over > shared_at);
    for i in 1..NODES {
        let d = fleet.node(i);
        let gone = wait(
            10,
            || enforced(d).join("\n"),
            |r| !r.contains("sport 27015"),
        );
        assert!(!gone.contains("sport 27015"), "node {i}: {gone}");
        assert!(
            gone.contains(&format!("src {FLOODER}/32")),
            "node {i}: {gone}"
        );
        let what = format!("node {i} dropped A's rule after A's attack ended:");
        logged_within(d, "received FlowSpec rules in force", over, &what);
    }

    // No session dropped but B's own restart; B's has stayed up since.
    for (i, up_since) in since.iter().enumerate() {
        let now = fleet.session(i);
        assert!(now.contains("Established"), "{now}");
        let first = if i == 1 {
            since_ms(&restarted_up)
        } else {
            *up_since
        };
        let moved = (since_ms(&now) - first).abs();
        assert!(
            moved <= 50,
            "node {i}'s session never restarted ({moved} ms): {now}"
        );
    }
}

/// bird2 as the upstream (AS 65000, at 198.18.0.2) and as the fleet's reflector (iBGP, at
/// 198.18.1.2 behind the lab's second link), each with its own FlowSpec table; the reflector
/// also sends two rules of other nodes', one of them past the time its sender gave it.
fn two_groups(d: &DaemonLab, second: &SecondLink) -> (Bird, Bird) {
    let dir = |name: &str| {
        let dir = d.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let upstream = Bird::with_config(
        &d.lab.client,
        &dir("upstream"),
        "router id 198.18.0.2;\nprotocol device {}\nflow4 table flowtab4;\n\
         protocol bgp levee {\n  local 198.18.0.2 as 65000;\n  neighbor 198.18.0.1 as 64512;\n  passive on;\n\
         \x20 ipv4 { import all; export none; };\n  flow4 { table flowtab4; import all; export none; };\n}\n",
    );
    let reflector = Bird::with_config(
        &second.client,
        &dir("reflector"),
        "router id 198.18.1.2;\nprotocol device {}\nflow4 table flowtab4;\n\
         protocol static others {\n  flow4 { table flowtab4; };\n  route flow4 { dst 198.18.0.20/32; proto 17; } \
         { bgp_ext_community.add((generic, 0x80060000, 0x0)); };\n\
         \x20 route flow4 { dst 198.18.0.21/32; proto 17; } { bgp_ext_community.add((generic, 0x80060000, 0x0)); \
         bgp_large_community.add((64512, 1280722260, 1000)); };\n}\n\
         protocol bgp fleet {\n  local 198.18.1.2 as 64512;\n  neighbor 198.18.1.1 as 64512;\n  passive on;\n\
         \x20 rr client;\n  flow4 { table flowtab4; import all; export all; };\n}\n",
    );
    (upstream, reflector)
}

/// One neighbour group per purpose: the upstream is sent the upstream's rules, the fleet the
/// fleet's (with its community), a rule for both goes to both, a source block only ever to
/// the fleet, and what the fleet sent is enforced and never passed on upstream.
#[test]
fn the_fleet_and_the_upstream_are_each_sent_their_own_rules() {
    let mut d = DaemonLab::new();
    let second = d.lab.second_link();
    let (up, rr) = two_groups(&d, &second);
    d.write_config(
        "mode = \"enforce\"\n[escalation]\nmode = \"on\"\nasn = 64512\nrouter_id = \"198.18.0.1\"\n\
         neighbors = [{ address = \"198.18.0.2\", asn = 65000 }, \
         { address = \"198.18.1.2\", asn = 64512, role = \"fleet\" }]\n\
         protected_prefixes = [\"198.18.0.0/24\"]\naccept_flowspec = true\n\
         [escalation.fleet]\ncommunities = [\"64512:4040\"]\n",
    );
    d.start();
    for (bird, name) in [(&up, "levee"), (&rr, "fleet")] {
        let state = wait(60, || bird.session_of(name), |s| s.contains("Established"));
        assert!(state.contains("Established"), "{state}");
    }
    let (upstream, fleet) = (|| up.flows(), || rr.flows());

    let out = d.cli_ok(&[
        "escalate",
        "flowspec",
        "--dst",
        "198.18.0.10",
        "--proto",
        "udp",
        "--dport",
        "53",
    ]);
    assert!(
        out.starts_with("announced #1 flowspec dst 198.18.0.10"),
        "{out}"
    );
    let out = d.cli_ok(&[
        "escalate",
        "flowspec",
        "--dst",
        "198.18.0.11",
        "--proto",
        "udp",
        "--dport",
        "53",
        "--to",
        "fleet",
    ]);
    assert!(out.contains("to the fleet"), "{out}");
    let out = d.cli_ok(&[
        "escalate",
        "block",
        "--src",
        "203.0.113.7/32",
        "--dst",
        "198.18.0.0/24",
    ]);
    assert!(
        out.starts_with(
            "announced #3 flowspec src 203.0.113.7/32 dst 198.18.0.0/24 discard to the fleet"
        ),
        "{out}"
    );
    let shown = wait(10, fleet, |s| {
        s.contains("198.18.0.11/32") && s.contains("203.0.113.7/32")
    });
    assert!(shown.contains("src 203.0.113.7/32"), "{shown}");
    assert!(
        shown.contains("(64512,4040)"),
        "the fleet's community: {shown}"
    );
    assert!(
        !shown.contains("198.18.0.10/32"),
        "the upstream's rule: {shown}"
    );
    let sent_up = wait(10, upstream, |s| s.contains("198.18.0.10/32"));
    assert!(sent_up.contains("198.18.0.10/32"), "{sent_up}");
    for other in ["198.18.0.11/32", "203.0.113.7", "198.18.0.20/32", "4040"] {
        assert!(!sent_up.contains(other), "{other} went upstream: {sent_up}");
    }

    // A source block never goes upstream, nor one wider than the fleet enforces.
    for (args, says) in [
        (
            vec!["--src", "203.0.0.0/16", "--dst", "198.18.0.0/24"],
            "wider than /24",
        ),
        (
            vec!["--src", "203.0.113.8/32", "--dst", "192.0.2.0/24"],
            "outside",
        ),
    ] {
        let out = d.cli(&[&["escalate", "block"][..], &args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }

    // The upstream's rule asked for the fleet too: one path, sent to both.
    d.cli_ok(&[
        "escalate",
        "flowspec",
        "--dst",
        "198.18.0.10",
        "--proto",
        "udp",
        "--dport",
        "53",
        "--to",
        "fleet",
    ]);
    let shown = wait(10, fleet, |s| s.contains("198.18.0.10/32"));
    assert!(shown.contains("198.18.0.10/32"), "{shown}");
    assert!(upstream().contains("198.18.0.10/32"), "still upstream");
    let list = d.cli_json(&["escalate", "list"]);
    let to: Vec<&str> = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["to"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["both", "fleet", "fleet"], "{list}");

    // What the fleet sent is enforced here, and never passed on.
    let received = wait(
        10,
        || enforced(&d).join("\n"),
        |r| r.contains("198.18.0.20/32"),
    );
    assert!(
        received.contains("dst 198.18.0.20/32 proto 17 discard"),
        "{received}"
    );
    assert!(!upstream().contains("198.18.0.20/32"));
}

/// One rule both groups hold (the fleet's share of an attack and the upstream's escalation of
/// the same shape, the link being full) is one path; when the attack is over, it leaves the
/// fleet at once and stays upstream for the upstream's hold.
#[test]
fn a_rule_both_groups_hold_leaves_the_fleet_and_stays_upstream_for_its_hold() {
    let mut birds = None;
    let mut lab = FloodLab::start_with(
        &format!(
            "{CONFIG}\n[escalation]\nmode = \"on\"\nasn = 64512\nrouter_id = \"198.18.0.1\"\n\
             neighbors = [{{ address = \"198.18.0.2\", asn = 65000 }}, \
             {{ address = \"198.18.1.2\", asn = 64512, role = \"fleet\" }}]\n\
             protected_prefixes = [\"198.18.0.0/24\"]\nauto = true\nlink_capacity_bps = 1000000\n\
             auto_after = \"2s\"\nauto_hold = \"60s\"\n"
        ),
        |d| {
            let second = d.lab.second_link();
            let (up, rr) = two_groups(d, &second);
            birds = Some((up, rr, second));
        },
    );
    let (up, rr, _second) = birds.unwrap();
    lab.reflected(REFLECTED);
    let d = &lab.daemon;
    let shape = format!("sport {REFLECTED}");
    let to = || {
        let list = d.cli_json(&["escalate", "list"]);
        list["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"]["src_port"] == REFLECTED)
            .map(|r| r["to"].as_str().unwrap().to_string())
    };
    lab.flood_at(30_000.0, || {
        let sent_up = up.wait_flows(30, |s| s.contains(&shape));
        assert!(sent_up.contains(&shape), "upstream: {sent_up}\n{}", d.log());
        let shared = rr.wait_flows(10, |s| s.contains(&shape));
        assert!(shared.contains(&shape), "fleet: {shared}\n{}", d.log());
        assert_eq!(to().as_deref(), Some("both"), "one path for both groups");
    });
    let left = rr.wait_flows(20, |s| !s.contains(&shape));
    assert!(
        !left.contains(&shape),
        "gone from the fleet: {left}\n{}",
        d.log()
    );
    assert!(up.flows().contains(&shape), "still upstream for its hold");
    assert_eq!(to().as_deref(), Some("upstream"), "{}", d.log());
}

/// A flood on the service's own port from random source ports: its shape names only that
/// port and stays on the node (sent to the fleet, it would drop every node's crowd there),
/// and the log says so; the verified flooder's block is shared all the same.
#[test]
fn a_flood_shaped_only_by_the_services_port_stays_on_the_node() {
    let mut birds = None;
    let lab = FloodLab::start_with(
        &format!(
            "{CONFIG}\n[escalation]\nmode = \"on\"\nasn = 64512\nrouter_id = \"198.18.0.1\"\n\
             neighbors = [{{ address = \"198.18.0.2\", asn = 65000 }}, \
             {{ address = \"198.18.1.2\", asn = 64512, role = \"fleet\" }}]\n\
             protected_prefixes = [\"198.18.0.0/24\"]\n"
        ),
        |d| {
            let second = d.lab.second_link();
            let (up, rr) = two_groups(d, &second);
            birds = Some((up, rr, second));
        },
    );
    let (_up, rr, _second) = birds.unwrap();
    let d = &lab.daemon;
    let block = format!("src {FLOODER}/32");
    let shared = lab.flood_at(30_000.0, || rr.wait_flows(20, |s| s.contains(&block)));
    assert!(
        shared.contains(&block),
        "the block is shared: {shared}\n{}",
        d.log()
    );
    let log = d.log();
    assert!(
        log.contains("detection keeps its rule for this attack on the node"),
        "{log}"
    );
    assert_eq!(
        log.matches("keeps its rule for this attack").count(),
        1,
        "said once"
    );
    assert!(!shared.contains(&format!("dport {FLOOD_PORT}")), "{shared}");
    assert!(!log.contains("detection shared its rule"), "{log}");
}
