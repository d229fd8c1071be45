//! `levee escalate` as operators run it: `levee run` with `[escalation]` starts its own gobgpd
//! in the protected namespace, which peers with a real upstream router (bird2, once gobgpd) in
//! the client namespace. Every check is made at the upstream, not in Levee.

use std::{thread::sleep, time::Duration};

use levee_tests::{
    bgp::{ATTACKED, Bird, ESCALATION, Gobgpd, wait},
    daemon::DaemonLab,
};

use crate::stderr;

const PREFIX: &str = "198.18.0.10/32";

/// A daemon escalating to bird2 in the client namespace.
fn with_bird(extra: &str) -> (DaemonLab, Bird) {
    let mut d = DaemonLab::new();
    let bird = Bird::start(&d.lab.client, &d.dir);
    d.write_config(&format!("{ESCALATION}{extra}"));
    d.start();
    (d, bird)
}

fn has_blackhole(shown: &str) -> bool {
    shown.contains(PREFIX) && shown.contains("(65535,666)")
}

/// The managed gobgpd's pid, from `levee escalate list`.
fn gobgpd_pid(d: &DaemonLab) -> i32 {
    let list = d.cli_json(&["escalate", "list"]);
    let speaker = list["speaker"].as_str().unwrap().to_string();
    let pid = speaker
        .split("pid ")
        .nth(1)
        .and_then(|s| s.trim_end_matches(')').parse().ok());
    pid.unwrap_or_else(|| panic!("no pid in {speaker:?}"))
}

/// Detection escalates by itself (escalation.auto): a lab flood over the link's (configured)
/// capacity puts a FlowSpec rule for its shape at the upstream (UDP to the attacked host's
/// port, no RTBH without auto_rtbh); once the attack is over and the hold has passed, the rule
/// is withdrawn there.
#[test]
fn a_flood_that_fills_the_link_is_escalated_by_detection_and_withdrawn_after() {
    use levee_tests::{
        flood::{FLOOD_PORT, FloodLab},
        netns::PROTECTED_V4,
    };
    let mut bird = None;
    let lab = FloodLab::start_with(
        &format!(
            "mode = \"monitor\"\n[strict]\nmode = \"off\"\n[detection]\nrecovery_secs = 2\n\
             [detection.floor_pps]\nudp = 5000\n[events]\nsample_every = 16\n{ESCALATION}\
             auto = true\nlink_capacity_bps = 1000000\nauto_after = \"2s\"\nauto_hold = \"3s\"\n"
        ),
        |d| bird = Some(Bird::start(&d.lab.client, &d.dir)),
    );
    let bird = bird.unwrap();
    let d = &lab.daemon;
    let attacked = format!("dst {PROTECTED_V4}/32");
    let flows = lab.flood(|| bird.wait_flows(60, |s| s.contains(&attacked)));
    eprintln!("bird's flow4 table during the flood:\n{flows}");
    for part in [
        attacked.as_str(),
        "proto 17",
        &format!("dport {FLOOD_PORT}"),
    ] {
        assert!(
            flows.contains(part),
            "{part} at the upstream: {flows}\n{}",
            d.log()
        );
    }
    assert!(flows.contains("0x80060000, 0x0"), "discard: {flows}");
    let rtbh = bird.show_route(&format!("{PROTECTED_V4}/32"));
    assert!(
        !rtbh.contains("65535,666"),
        "no RTBH without auto_rtbh: {rtbh}"
    );
    // Counted once gobgpd's confirmation is taken (within 100 ms of bird seeing it).
    let counted = "levee_escalation_announcements_total{kind=\"flowspec\",cause=\"detection\"} 1";
    let metrics = wait(5, || crate::metrics::scrape(d), |m| m.contains(counted));
    assert!(metrics.contains(counted), "{metrics}");
    // The flood is over: the attack ends, the hold passes, the rule goes.
    let flows = bird.wait_flows(60, |s| !s.contains(&attacked));
    assert!(
        !flows.contains(&attacked),
        "withdrawn after the attack: {flows}"
    );
    let log = wait(5, || d.log(), |l| l.contains("why=\"attack_over\""));
    assert!(log.contains("why=\"attack_over\""), "{log}");
}

/// RTBH and FlowSpec through the CLI reach bird with every part; `list` reads them back from
/// the RIB with their time left; a rule's TTL withdraws it at bird; SIGTERM withdraws the rest.
#[test]
fn escalations_reach_the_upstream_expire_and_leave_with_levee() {
    let (mut d, bird) = with_bird("");
    // The managed gobgpd runs as its own user, with no capability.
    let status = std::fs::read_to_string(format!("/proc/{}/status", gobgpd_pid(&d))).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert!(
        field("Uid:").iter().all(|u| *u != "0"),
        "not root: {status}"
    );
    for caps in ["CapEff:", "CapPrm:"] {
        assert_eq!(field(caps), ["0000000000000000"], "{status}");
    }
    let out = d.cli_ok(&["escalate", "rtbh", ATTACKED, "--ttl", "10m"]);
    assert!(
        out.starts_with("announced #1 rtbh 198.18.0.10 for 600s"),
        "{out}"
    );
    let shown = bird.wait_route(PREFIX, 60, has_blackhole);
    eprintln!("bird:\n{shown}");
    assert!(
        has_blackhole(&shown) && shown.contains("(65535,65281)"),
        "the blackhole with NO_EXPORT at the upstream: {shown}"
    );

    let out = d.cli_ok(&[
        "escalate", "flowspec", "--dst", ATTACKED, "--proto", "udp", "--sport", "123", "--len",
        "468-1500", "--ttl", "10s",
    ]);
    assert!(out.starts_with("announced #2 flowspec"), "{out}");
    let flows = bird.wait_flows(20, |s| s.contains(PREFIX));
    eprintln!("bird's flow4 table:\n{flows}");
    for part in [
        "dst 198.18.0.10/32",
        "proto 17",
        "sport 123",
        "length",
        "468",
        "1500",
        // traffic-rate (type 0x8006), AS 0, rate 0: discard.
        "0x80060000, 0x0",
    ] {
        assert!(flows.contains(part), "{part} at the upstream: {flows}");
    }

    let list = d.cli_json(&["escalate", "list"]);
    let rules = list["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2, "{list}");
    assert_eq!(rules[0]["rule"]["kind"], "rtbh");
    assert_eq!(rules[0]["in_rib"], PREFIX, "read back from the RIB: {list}");
    assert!(rules[0]["ttl_left_secs"].as_u64().unwrap() > 590);
    assert!(rules[1]["in_rib"].is_string(), "{list}");
    let metrics = crate::metrics::scrape(&d);
    assert!(
        metrics.contains("levee_escalations_active{kind=\"flowspec\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("levee_escalation_speaker_up 1"),
        "{metrics}"
    );

    // The FlowSpec rule's 10 s run out: gone at the upstream; the blackhole stays.
    let flows = bird.wait_flows(25, |s| !s.contains(PREFIX));
    assert!(!flows.contains(PREFIX), "expired at the upstream: {flows}");
    assert!(has_blackhole(&bird.show_route(PREFIX)));
    // Confirmed by the withdrawal thread, taken into the books at the next tick.
    let logged = wait(3, || d.log(), |l| l.contains("why=\"ttl\""));
    assert!(logged.contains("why=\"ttl\""), "{logged}");

    assert!(d.stop(), "clean exit: {}", d.log());
    let shown = bird.wait_route(PREFIX, 20, |s| !s.contains(PREFIX));
    assert!(!shown.contains(PREFIX), "withdrawn at stop: {shown}");
    assert!(d.log().contains("escalation rules withdrawn at stop"));
}

/// kill -9 of Levee's gobgpd: the upstream drops the rule at once; Levee says so, starts
/// gobgpd again and announces the rule again. kill -9 of Levee itself: its gobgpd dies with it
/// and the upstream is left with nothing.
#[test]
fn kill_9_of_gobgpd_or_levee_leaves_nothing_upstream() {
    let (mut d, bird) = with_bird("");
    d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    assert!(has_blackhole(&bird.wait_route(PREFIX, 60, has_blackhole)));

    let first = gobgpd_pid(&d);
    // When bird imported the route: a route withdrawn and announced again has a new time.
    let imported = |shown: &str| {
        shown
            .split_once("[levee ")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(t, _)| t.to_string())
    };
    let before = imported(&bird.show_route(PREFIX)).expect("an import time");
    // SAFETY: kill(2) of the daemon's child.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let again = |s: &str| has_blackhole(s) && imported(s).is_some_and(|t| t != before);
    let shown = bird.wait_route(PREFIX, 60, again);
    assert!(
        again(&shown),
        "withdrawn with gobgpd, then announced again (imported at {before} first): {shown}"
    );
    assert!(d.log().contains("the BGP daemon for escalation died"));
    let second = gobgpd_pid(&d);
    assert_ne!(first, second);

    d.signal(libc::SIGKILL);
    d.reap();
    let shown = bird.wait_route(PREFIX, 20, |s| !s.contains(PREFIX));
    assert!(!shown.contains(PREFIX), "gone with Levee: {shown}");
    // Gone, or a zombie its new parent has not reaped yet.
    let state = wait(5, || process_state(second), |s| s.is_empty() || s == "Z");
    assert!(
        state.is_empty() || state == "Z",
        "the managed gobgpd died with Levee: {state}"
    );
}

/// Issue 23: a withdrawal counts only when gobgpd confirms it, and a hung gobgpd never
/// stalls the controller. With Levee's gobgpd stopped (SIGSTOP): `levee escalate withdraw
/// --all` says the withdrawal is pending and exits 1; the rule stays in `levee escalate list`
/// (withdraw pending, the RIB unreadable) and at the upstream; a new announcement is an error,
/// never a silent success; meanwhile the watchdog is fed every tick and `levee status`
/// answers at once. After SIGCONT the retry withdraws it: gone at bird, and only then out of
/// the list.
#[test]
fn a_withdrawal_counts_only_when_gobgpd_confirms_it() {
    use std::{os::unix::net::UnixDatagram, time::Instant};
    let mut d = DaemonLab::new();
    let bird = Bird::start(&d.lab.client, &d.dir);
    d.write_config(ESCALATION);
    let path = d.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let notify = path.to_str().unwrap().to_string();
    d.start_with_env(&[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "30000000")]);
    // Every WATCHDOG=1, timed as it comes.
    let fed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let feeds = fed.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1") {
                feeds.lock().unwrap().push(Instant::now());
            }
        }
    });

    d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    assert!(has_blackhole(&bird.wait_route(PREFIX, 60, has_blackhole)));
    let gobgpd = gobgpd_pid(&d);
    // SAFETY: kill(2) of the daemon's child.
    unsafe { libc::kill(gobgpd, libc::SIGSTOP) };
    let hung = Instant::now();
    let out = d.cli(&["escalate", "withdraw", "--all"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "not done, not exit 0: {err}");
    assert!(err.contains("withdraw pending"), "{err}");
    let list = d.cli_json(&["escalate", "list"]);
    assert_eq!(list["rules"][0]["withdraw_pending"], true, "{list}");
    assert!(
        list["rib_error"].is_string(),
        "the RIB cannot be read: {list}"
    );
    let out = d.cli(&["escalate", "rtbh", "198.18.0.11"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "not announced, not exit 0: {err}");
    assert!(err.contains("is not announced"), "{err}");
    // The controller keeps its pace: status answers at once, every time.
    let mut slowest = Duration::ZERO;
    while hung.elapsed() < Duration::from_secs(16) {
        let t = Instant::now();
        d.cli_ok(&["status"]);
        slowest = slowest.max(t.elapsed());
        sleep(Duration::from_millis(500));
    }
    assert!(
        has_blackhole(&bird.show_route(PREFIX)),
        "still announced while gobgpd is stopped"
    );
    assert_eq!(d.cli_json(&["escalate", "list"])["rules"][0]["id"], 1);
    let fed_while_hung: Vec<Instant> = fed
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t >= hung)
        .collect();
    let longest_gap = fed_while_hung
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX);
    eprintln!(
        "gobgpd stopped {:?}: watchdog fed {} times, longest gap {longest_gap:?}; slowest status {slowest:?}",
        hung.elapsed(),
        fed_while_hung.len()
    );
    assert!(
        fed_while_hung.len() >= 12 && longest_gap < Duration::from_secs(3),
        "the tick (and the watchdog it feeds) kept its pace: {} feeds, longest gap {longest_gap:?}",
        fed_while_hung.len()
    );
    assert!(
        slowest < Duration::from_secs(3),
        "levee status answered at once: slowest {slowest:?}"
    );
    // SAFETY: as above.
    unsafe { libc::kill(gobgpd, libc::SIGCONT) };
    // Out of the list only once gone at the upstream.
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = !d.cli_json(&["escalate", "list"])["rules"]
            .as_array()
            .unwrap()
            .is_empty();
        let upstream = has_blackhole(&bird.show_route(PREFIX));
        if !listed {
            assert!(!upstream, "out of the list while still at the upstream");
            break;
        }
        assert!(
            Instant::now() < end,
            "never withdrawn after SIGCONT: {}",
            d.log()
        );
        sleep(Duration::from_millis(200));
    }
    assert!(d.log().contains("withdraw pending"), "the log says so");
    assert!(d.log().contains("withdrawn upstream"));
    // The announcement that timed out may still have reached gobgpd once it ran again: the
    // RIB is searched for it, and it does not stay at the upstream.
    let shown = bird.wait_route("198.18.0.11/32", 40, |s| !s.contains("198.18.0.11/32"));
    assert!(!shown.contains("198.18.0.11/32"), "{shown}");
}

/// Each "never" is refused with one line, and nothing reaches the upstream; --dry-run
/// announces nothing and logs what it would have.
#[test]
fn what_is_never_announced_is_refused_and_dry_run_sends_nothing() {
    let (d, bird) = with_bird("max_active = 2\nmax_ttl = \"1h\"\n");
    d.cli_ok(&["allow", "add", "198.18.0.20"]);
    // Parsed and refused by the CLI, or by the daemon's policy: (arguments, words of the line).
    let refusals: &[(&[&str], &str)] = &[
        (
            &["rtbh", "203.0.113.5"],
            "outside escalation.protected_prefixes",
        ),
        (&["rtbh", "0.0.0.0"], "not a host"),
        (&["rtbh", "198.18.0.0/24"], "not an IP address"),
        (&["rtbh", "198.18.0.20"], "allowlisted"),
        (&["rtbh", ATTACKED, "--ttl", "2h"], "max_ttl"),
        (&["rtbh", ATTACKED, "--ttl", "0s"], "--ttl"),
        (
            &["flowspec", "--dst", ATTACKED, "--len", "70000"],
            "0-65535",
        ),
        (
            &["flowspec", "--dst", ATTACKED, "--len", "0-10"],
            "matches no",
        ),
        (
            &[
                "flowspec", "--dst", ATTACKED, "--proto", "udp", "--sport", "70000",
            ],
            "--sport",
        ),
        (
            &["flowspec", "--dst", ATTACKED, "--sport", "123"],
            "ports need",
        ),
        (
            &[
                "flowspec", "--dst", ATTACKED, "--proto", "udp", "--action", "rate:0",
            ],
            "--action",
        ),
        (&["flowspec", "--dst", ATTACKED], "without protocol"),
    ];
    for (args, words) in refusals {
        let mut all = vec!["escalate"];
        all.extend_from_slice(args);
        let out = d.cli(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(words), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }

    let out = d.cli_ok(&["escalate", "rtbh", ATTACKED, "--dry-run"]);
    assert!(
        out.starts_with("dry-run: would announce rtbh 198.18.0.10"),
        "{out}"
    );
    assert!(d.log().contains("dry-run: would announce upstream"));

    // The limit: two rules at once, the third refused.
    d.cli_ok(&["escalate", "rtbh", "198.18.0.11"]);
    d.cli_ok(&["escalate", "rtbh", "198.18.0.12"]);
    let out = d.cli(&["escalate", "rtbh", "198.18.0.13"]);
    assert!(
        stderr(&out).contains("escalation.max_active is 2"),
        "{}",
        stderr(&out)
    );
    let both = |s: &str| s.contains("198.18.0.11/32") && s.contains("198.18.0.12/32");
    let shown = wait(60, || bird.from_levee(), both);
    assert!(shown.contains("198.18.0.11/32"), "{shown}");
    sleep(Duration::from_secs(1));
    let shown = bird.from_levee();
    for never in [
        "203.0.113.5/32",
        "198.18.0.20/32",
        PREFIX,
        "198.18.0.13/32",
        "0.0.0.0/0",
    ] {
        assert!(
            !shown.contains(never),
            "{never} reached the upstream: {shown}"
        );
    }
    let metrics = crate::metrics::scrape(&d);
    assert!(
        metrics.contains("levee_escalation_refused_total 8"),
        "{metrics}"
    );

    let out = d.cli_ok(&["escalate", "withdraw", "--all"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let shown = wait(20, || bird.from_levee(), |s| !s.contains("/32"));
    assert!(!shown.contains("/32"), "all withdrawn: {shown}");
}

/// With an operator's own gobgpd (api = unix://...), a Levee killed with -9 leaves its rule
/// there; the next start withdraws it, and the operator's session stays up.
#[test]
fn a_restart_withdraws_what_a_killed_levee_left_in_the_operators_gobgpd() {
    let mut d = DaemonLab::new();
    let bird = Bird::start(&d.lab.client, &d.dir);
    // The operator's gobgpd, peering with bird from the protected namespace as Levee's own
    // would; it outlives Levee.
    let settings = levee::config::EscalationSettings {
        mode: levee::config::EscalationMode::On,
        asn: 64512,
        router_id: Some(levee_tests::bgp::LEVEE_SIDE.parse().unwrap()),
        neighbors: vec![levee::config::escalation::Neighbor {
            role: levee::config::escalation::Role::Upstream,
            address: levee_tests::bgp::UPSTREAM.parse().unwrap(),
            asn: 65000,
            password: None,
            max_prefixes: 1000,
        }],
        ..Default::default()
    };
    let config = levee::escalation::gobgp::config_toml(&settings).unwrap();
    let operator_gobgpd = Gobgpd::start(&d.lab.protected, &d.dir, "operator-gobgpd", &config);
    let api = format!("unix://{}", operator_gobgpd.api.display());
    d.write_config(&format!(
        "[escalation]\nmode = \"on\"\napi = \"{api}\"\nasn = 64512\n\
         protected_prefixes = [\"198.18.0.0/24\"]\n"
    ));
    d.start();
    d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    assert!(has_blackhole(&bird.wait_route(PREFIX, 60, has_blackhole)));
    d.signal(libc::SIGKILL);
    d.reap();
    sleep(Duration::from_secs(2));
    assert!(
        has_blackhole(&bird.show_route(PREFIX)),
        "the operator's gobgpd keeps it while Levee is gone"
    );
    d.start();
    let shown = bird.wait_route(PREFIX, 20, |s| !s.contains(PREFIX));
    assert!(
        !shown.contains(PREFIX),
        "withdrawn by the next start: {shown}"
    );
    assert!(
        d.log()
            .contains("withdrew paths an earlier run of Levee left")
    );
    assert!(d.stop());
}

/// gobgpd as the upstream router: the rules arrive in its RIB, learned from Levee.
#[test]
fn a_gobgpd_upstream_receives_the_rules() {
    let mut d = DaemonLab::new();
    let upstream = Gobgpd::upstream(&d.lab.client, &d.dir);
    d.write_config(ESCALATION);
    d.start();
    d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    d.cli_ok(&[
        "escalate", "flowspec", "--dst", ATTACKED, "--proto", "udp", "--sport", "123",
    ]);
    let socket = upstream.api.clone();
    let read = || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let api = levee::config::escalation::BgpApi::Unix(socket.clone());
            let mut api = levee::escalation::gobgp::Gobgp::connect(&api, 64512)
                .await
                .unwrap();
            let learned = api.learned_all().await.unwrap();
            format!("{:?}", learned.iter().map(|l| &l.0).collect::<Vec<_>>())
        })
    };
    // Both: the RTBH route (the bare prefix) and the FlowSpec rule (its components).
    let both = |s: &str| s.contains(&format!("\"{PREFIX}\"")) && s.contains("[destination");
    let shown = wait(60, read, both);
    eprintln!("the upstream gobgpd holds: {shown}");
    assert!(shown.contains(&format!("\"{PREFIX}\"")), "{shown}");
    assert!(
        shown.contains("123"),
        "the FlowSpec rule's source port: {shown}"
    );
    assert!(d.stop());
    let shown = wait(20, read, |s| s == "[]");
    assert_eq!(shown, "[]", "withdrawn at the upstream");
}

/// A process's state letter from /proc (R, S, Z...), empty when it is gone.
fn process_state(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(") ")?.1.split(' ').next()?.to_string()))
        .unwrap_or_default()
}

/// Sends `n` datagrams from `src:sport` to the protected side's UDP receiver; returns how many
/// arrived from `src`.
fn datagrams_from_port(d: &DaemonLab, rx: &std::net::UdpSocket, src: &str, sport: u16) -> u64 {
    let dst = rx.local_addr().unwrap();
    d.lab.client.run(|| {
        let s = std::net::UdpSocket::bind((src, sport)).expect("bind the client's port");
        for _ in 0..20 {
            s.send_to(b"fleet", dst).unwrap();
        }
    });
    sleep(Duration::from_millis(200));
    let got = levee_tests::traffic::drain(rx);
    got.get(&src.parse().unwrap()).copied().unwrap_or(0)
}

/// The fleet side (accept_flowspec): the upstream announces FlowSpec rules to Levee. The one
/// for the protected host (UDP from port 123) is enforced in the program, so such datagrams
/// are dropped in the lab and others pass; one with a TCP-flags component is skipped whole and
/// counted; one for another network is ignored. When the upstream withdraws them, the program
/// drops nothing more.
#[test]
fn flowspec_rules_from_the_upstream_are_enforced_in_the_program() {
    use filter_common::abi::{Action, Reason};
    use levee_tests::{
        daemon::packets,
        netns::{CLIENT_V4, PROTECTED_V4},
        traffic::{udp_receiver, warm_up},
    };
    let mut d = DaemonLab::new();
    let mut bird = Some(Bird::with_flows(
        &d.lab.client,
        &d.dir,
        &[
            "dst 198.18.0.1/32; proto 17; sport 123;",
            "dst 198.18.0.1/32; proto 6; tcp flags 0x02/0x02;",
            "dst 203.0.113.0/24; proto 17;",
        ],
    ));
    d.write_config(&format!(
        "mode = \"enforce\"\n[signatures]\namp_ports = false\n{ESCALATION}accept_flowspec = true\n"
    ));
    d.start();
    let read = || d.cli_ok(&["escalate", "list", "--received", "--json"]);
    let shown = wait(60, read, |s| s.matches("\"state\"").count() == 3);
    eprintln!("received: {shown}");
    let received: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let state = |needle: &str| {
        received
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"].as_str().unwrap().contains(needle))
            .map(|r| {
                (
                    r["state"].as_str().unwrap().to_string(),
                    r["detail"].to_string(),
                )
            })
            .unwrap_or_else(|| panic!("no rule with {needle}: {shown}"))
    };
    let (ntp, detail) = state("123");
    assert_eq!(ntp, "enforced", "{detail}");
    let (flags, detail) = state("tcp");
    assert_eq!(flags, "skipped", "{detail}");
    assert!(detail.contains("TCP flags"), "{detail}");
    let (other, detail) = state("203.0.113.0/24");
    assert_eq!(other, "ignored", "{detail}");
    let metrics = crate::metrics::scrape(&d);
    for (s, n) in [("enforced", 1), ("skipped", 1), ("ignored", 1)] {
        let line = format!("levee_upstream_rules{{state=\"{s}\"}} {n}");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }

    // Levee's gobgpd took the FlowSpec rules and nothing else: no unicast table to hold, and
    // nothing learned from one neighbour to pass on to another.
    let api = levee::config::escalation::BgpApi::Unix(d.dir.join("levee.gobgpd/api.sock"));
    let learned = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut api = levee::escalation::gobgp::Gobgp::connect(&api, 64512)
                .await
                .unwrap();
            api.learned_all().await.unwrap()
        });
    let offered = bird.as_ref().unwrap().exported();
    assert!(offered.contains("203.0.113.0/24"), "{offered}");
    let prefixes: Vec<&String> = learned.iter().map(|l| &l.0).collect();
    assert_eq!(prefixes.len(), 3, "{prefixes:?}");
    assert!(
        prefixes.iter().all(|p| p.starts_with("[destination")),
        "{prefixes:?}"
    );

    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    let before = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule));
    assert_eq!(
        datagrams_from_port(&d, &rx, CLIENT_V4[1], 123),
        0,
        "dropped"
    );
    let dropped = packets(&d.stats(), Action::Drop, Some(Reason::UpstreamRule)) - before;
    assert_eq!(dropped, 20, "counted as upstream_rule");
    assert_eq!(
        datagrams_from_port(&d, &rx, CLIENT_V4[1], 5000),
        20,
        "other UDP passes"
    );

    // The upstream goes away: its rules are withdrawn, and so is their enforcement.
    drop(bird.take());
    let shown = wait(30, read, |s| !s.contains("enforced"));
    assert!(!shown.contains("enforced"), "{shown}");
    assert_eq!(
        datagrams_from_port(&d, &rx, CLIENT_V4[1], 123),
        20,
        "no longer dropped"
    );
}

/// mode = "dry-run": no BGP daemon is started; every rule is checked and logged, none sent,
/// and what the policy refuses is refused as in mode on.
#[test]
fn dry_run_mode_checks_and_logs_and_starts_no_bgp_daemon() {
    let mut d = DaemonLab::new();
    d.write_config(
        "[escalation]\nmode = \"dry-run\"\nasn = 64512\nrouter_id = \"198.18.0.1\"\n\
         neighbors = [{ address = \"198.18.0.2\", asn = 65000 }]\n\
         protected_prefixes = [\"198.18.0.0/24\"]\n",
    );
    d.start();
    let out = d.cli_ok(&["escalate", "rtbh", ATTACKED]);
    assert!(
        out.starts_with("dry-run: would announce rtbh 198.18.0.10"),
        "{out}"
    );
    let out = d.cli(&["escalate", "rtbh", "203.0.113.5"]);
    assert!(stderr(&out).contains("outside escalation.protected_prefixes"));
    let list = d.cli_json(&["escalate", "list"]);
    assert!(
        list["speaker"].as_str().unwrap().contains("dry-run"),
        "{list}"
    );
    assert_eq!(list["rules"].as_array().unwrap().len(), 0, "{list}");
    assert!(
        !d.dir.join("levee.gobgpd").exists(),
        "no BGP daemon started"
    );
    assert!(d.log().contains("dry-run: would announce upstream"));
}
