//! `levee explain` (issue 12): every stage's answer for real sources of the lab, read from the
//! running daemon's maps: a clean source, allowlisted ones (config and CLI), a CLI block with
//! its reason and time left, an amplification source port, a source that flooded and serves a
//! penalty; its `--json`; and bad arguments refused with one line.

use std::{
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::{Action, Mode, Reason};
use levee::api::views::{ExplainView, InterfaceExplain, Outcome, StageView};
use levee_tests::{
    daemon::DaemonLab,
    flood::{FLOODER, FloodLab},
    netns::{CLIENT_V4, CLIENT_V6},
    traffic::{DATAGRAMS, warm_up},
};

use crate::{delivered, receiver, stderr};

/// `levee explain ARGS --json` on the lab's one interface.
fn explain(d: &DaemonLab, args: &[&str]) -> InterfaceExplain {
    let mut a = vec!["explain"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = d.cli_ok(&a);
    let view: ExplainView =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("levee {a:?}: {e}: {out}"));
    assert_eq!(view.interfaces.len(), 1, "{out}");
    view.interfaces.into_iter().next().unwrap()
}

fn stage<'a>(v: &'a InterfaceExplain, name: &str) -> &'a StageView {
    v.stages
        .iter()
        .find(|s| s.stage.name() == name)
        .unwrap_or_else(|| panic!("no stage {name}: {v:?}"))
}

/// The human form's line of one stage.
fn line<'a>(out: &'a str, stage: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{stage} ")))
        .unwrap_or_else(|| panic!("no {stage} line: {out}"))
}

#[test]
fn explain_gives_each_stages_answer_from_the_live_maps() {
    let mut d = DaemonLab::new();
    let (clean, flooder, blocked, allowed) =
        (CLIENT_V4[0], CLIENT_V4[1], CLIENT_V4[2], CLIENT_V4[3]);
    d.write_config(&format!(
        "mode = \"enforce\"\npenalty = \"30s\"\n[detection]\nenabled = false\n\
         [limits.udp]\npps = 100\nburst = 20\n[lists]\nallow = [\"{allowed}\"]"
    ));
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, clean, &rx);
    let iface = d.lab.iface.clone();

    // A clean source: every stage lets it on.
    let out = d.cli_ok(&[
        "explain", clean, "--proto", "udp", "--sport", "40000", "--dport", "9000",
    ]);
    assert!(out.contains(&format!("\n{iface}: pass (clean)\n")), "{out}");
    assert!(line(&out, "allowlist").ends_with("no entry"), "{out}");
    assert!(line(&out, "blocklist").ends_with("no entry"), "{out}");
    assert!(
        line(&out, "signatures").contains("40000 is not an amplification port"),
        "{out}"
    );
    let v = explain(&d, &[clean, "--proto", "udp", "--sport", "40000"]);
    assert_eq!((v.action.name(), v.reason.name()), ("pass", "clean"));
    assert!(
        v.stages.iter().all(|s| s.outcome == Outcome::Passes),
        "{v:?}"
    );
    assert_eq!(
        stage(&v, "aggregate").attack.as_deref(),
        Some("normal"),
        "{v:?}"
    );

    // An IPv6 source, through the IPv6 tries and its /64 key.
    let v = explain(&d, &[CLIENT_V6[0], "--proto", "udp", "--sport", "40000"]);
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("pass", "clean"),
        "{v:?}"
    );
    // The class's aggregate ceiling, as the program holds it (shared out per CPU).
    d.cli_ok(&[
        "limits",
        "set",
        "--class",
        "udp",
        "--aggregate",
        "--pps",
        "10000",
        "--burst",
        "1000",
    ]);
    let v = explain(&d, &[clean, "--proto", "udp", "--sport", "40000"]);
    let a = stage(&v, "aggregate");
    let ceiling = a.ceiling_pps.expect("a ceiling");
    assert!((10_000..=10_100).contains(&ceiling), "{a:?}");
    assert!(a.say.contains("room on every CPU"), "{a:?}");
    assert_eq!(a.outcome, Outcome::Passes);

    // Allowlisted by the config, and by the CLI.
    let out = d.cli_ok(&["explain", allowed]);
    assert!(
        out.contains(&format!("\n{iface}: pass (allowlisted)\n")),
        "{out}"
    );
    assert!(
        line(&out, "allowlist").contains(&format!("{allowed}/32 from config  <- decides")),
        "{out}"
    );
    assert!(
        line(&out, "blocklist").starts_with("  blocklist   (not reached)"),
        "{out}"
    );
    d.cli_ok(&["allow", "add", "192.0.2.0/24"]);
    let v = explain(&d, &["192.0.2.9"]);
    let a = stage(&v, "allowlist");
    assert_eq!(
        (a.outcome.name(), a.origins.clone()),
        ("decides", vec!["cli".to_string()])
    );
    assert_eq!(
        a.entry.map(|p| p.0.to_string()).as_deref(),
        Some("192.0.2.0/24")
    );

    // Blocked through the CLI, with its reason and the time left.
    d.cli_ok(&[
        "block",
        "add",
        blocked,
        "--ttl",
        "10m",
        "--reason",
        "explain test",
    ]);
    let out = d.cli_ok(&["explain", blocked, "--proto", "udp"]);
    assert!(
        out.contains(&format!("\n{iface}: drop (blocklisted)")),
        "{out}"
    );
    let b = line(&out, "blocklist");
    assert!(
        b.contains(&format!("{blocked}/32 from cli, reason \"explain test\", "))
            && b.ends_with("s left  <- decides"),
        "{out}"
    );
    assert!(line(&out, "per_source").contains("(not reached)"), "{out}");
    let v = explain(&d, &[blocked, "--proto", "udp"]);
    let b = stage(&v, "blocklist");
    assert_eq!(v.decided_by.as_deref(), Some("blocklist"));
    assert_eq!(b.note.as_deref(), Some("explain test"));
    let left = b.ttl_secs.expect("seconds left");
    assert!((590..=600).contains(&left), "{left} s left of 600");
    // In monitor mode the same packet would be dropped, and passes.
    d.cli_ok(&["mode", "monitor"]);
    let v = explain(&d, &[blocked, "--proto", "udp"]);
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("would_drop", "blocklisted")
    );
    d.cli_ok(&["mode", "enforce"]);

    // An amplification source port (NTP).
    let out = d.cli_ok(&["explain", clean, "--proto", "udp", "--sport", "123"]);
    assert!(
        out.contains(&format!("\n{iface}: drop (amp_port)")),
        "{out}"
    );
    assert!(
        line(&out, "signatures").contains("UDP source port 123 is an amplification port"),
        "{out}"
    );
    // Without the port, the signature's say depends on it.
    let v = explain(&d, &[clean, "--proto", "udp"]);
    assert_eq!(stage(&v, "signatures").outcome, Outcome::Depends);
    assert_eq!(v.unless, ["signatures (--sport)"]);

    // A source over its UDP limit serves its penalty; its other traffic is left alone.
    let got = delivered(&d, &rx, flooder);
    assert!(
        got < DATAGRAMS / 2,
        "the flooder got {got} of {DATAGRAMS} through"
    );
    let out = d.cli_ok(&["explain", flooder, "--proto", "udp", "--sport", "40000"]);
    assert!(
        out.contains(&format!("\n{iface}: drop (source_penalty)")),
        "{out}"
    );
    assert!(
        line(&out, "per_source").contains("tracked: udp penalty "),
        "{out}"
    );
    let v = explain(&d, &[flooder, "--proto", "udp", "--sport", "40000"]);
    let s = stage(&v, "per_source");
    assert_eq!(
        (s.outcome.name(), s.tracked),
        ("decides", Some(true)),
        "{v:?}"
    );
    let penalty = s.penalty_secs.get("udp").copied().unwrap_or(0);
    assert!(
        (20..=30).contains(&penalty),
        "{penalty} s of a 30 s penalty: {s:?}"
    );
    assert!(s.offences.unwrap_or(0) >= 1, "{s:?}");
    let tcp = explain(&d, &[flooder, "--proto", "tcp", "--dport", "80"]);
    assert_eq!(
        (tcp.action.name(), tcp.reason.name()),
        ("pass", "clean"),
        "{tcp:?}"
    );
    assert!(
        stage(&tcp, "per_source").say.contains("udp penalty"),
        "{tcp:?}"
    );
    // Without a protocol the penalty is there, and the verdict says what it depends on.
    let out = d.cli_ok(&["explain", flooder]);
    assert!(
        out.contains(&format!(
            "\n{iface}: pass (clean); unless these object first: signatures (--proto, --sport), per_source (--proto), aggregate (--proto)\n"
        )),
        "{out}"
    );
    assert!(
        line(&out, "per_source")
            .starts_with("  per_source  (depends on --proto) tracked: udp penalty "),
        "{out}"
    );
    let v = explain(&d, &[flooder]);
    assert_eq!(v.action, Action::Pass);
    assert!(
        v.unless.contains(&"per_source (--proto)".to_string())
            && v.unless
                .iter()
                .any(|u| u.starts_with("signatures (--proto")),
        "{v:?}"
    );
    // A source never seen is not tracked.
    let v = explain(&d, &["203.0.113.9", "--proto", "udp", "--sport", "40000"]);
    assert_eq!(stage(&v, "per_source").tracked, Some(false), "{v:?}");

    // The JSON field names scripts read.
    let j = d.cli_json(&["explain", blocked, "--proto", "udp"]);
    assert_eq!(j["class"], "udp", "{j}");
    let i = &j["interfaces"][0];
    assert_eq!(
        (&i["interface"], &i["mode"], &i["action"], &i["reason"]),
        (
            &iface.as_str().into(),
            &"enforce".into(),
            &"drop".into(),
            &"blocklisted".into()
        ),
        "{j}"
    );
    let blocklist = i["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "blocklist")
        .unwrap_or_else(|| panic!("no blocklist stage: {j}"));
    assert_eq!(blocklist["origins"][0], "cli", "{j}");
    assert!(blocklist["ttl_secs"].as_u64().is_some(), "{j}");

    // Bad arguments: one line naming the argument, a non-zero exit.
    for (args, want) in [
        (
            &["explain", "198.18.0.300"][..],
            "error: <SOURCE>: \"198.18.0.300\" is not an IP address",
        ),
        (&["explain", clean, "--proto", "sctpx"], "error: --proto: "),
        (
            &["explain", clean, "--proto", "udp", "--sport", "70000"],
            "error: --sport: ",
        ),
        (
            &["explain", clean, "--dport", "53"],
            "error: --dport: a port needs --proto tcp or udp",
        ),
        (
            &["explain", clean, "--proto", "icmp", "--syn"],
            "error: --syn: needs --proto tcp",
        ),
    ] {
        let out = d.cli(args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.starts_with(want) && !err.contains('\n'),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// What detection did, as explain tells it: the flooder blocklisted by detection (its note and
/// time left), the class under attack and for how long, the mode it raised.
#[test]
fn explain_names_detections_block_and_the_attack() {
    let lab = FloodLab::start(
        "mode = \"monitor\"\n[strict]\nmode = \"off\"\n[detection]\n[detection.floor_pps]\nudp = 5000",
    );
    let d = &lab.daemon;
    let before = explain(d, &[FLOODER, "--proto", "udp", "--sport", "40000"]);
    assert_eq!(
        (before.action.name(), before.reason.name()),
        ("pass", "clean")
    );
    assert_eq!(
        stage(&before, "aggregate").attack.as_deref(),
        Some("normal")
    );
    let during = lab.flood(|| {
        let start = Instant::now();
        loop {
            let v = explain(d, &[FLOODER, "--proto", "udp", "--sport", "40000"]);
            if v.reason == Reason::Blocklisted && stage(&v, "aggregate").attack_secs.is_some() {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no detection block: {v:?}\n{}",
                d.log()
            );
            sleep(Duration::from_millis(200));
        }
    });
    assert_eq!(during.mode, Mode::Enforce, "detection raised the mode");
    assert_eq!(during.action, Action::Drop);
    let b = stage(&during, "blocklist");
    assert_eq!(b.origins, ["detection"], "{b:?}");
    assert!(
        b.note
            .as_deref()
            .is_some_and(|n| n.starts_with("detection")),
        "{b:?}"
    );
    assert!(b.ttl_secs.is_some_and(|t| t > 500), "{b:?}");
    let a = stage(&during, "aggregate");
    assert_eq!(a.attack.as_deref(), Some("under_attack"), "{a:?}");
    assert!(a.attack_secs.is_some_and(|s| s < 10), "{a:?}");
    assert!(a.say.contains("attack declared"), "{a:?}");
}

/// Strict's say with and without the destination: a UDP service bound to the protected
/// address, a port nothing serves (and the program really drops it so), and a client the
/// service answered, known as a flow of the host.
#[test]
fn explain_follows_strict_to_the_destination_and_the_hosts_flows() {
    use levee_tests::{
        netns::PROTECTED_V4,
        traffic::{addr, send_udp},
    };
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"\n[detection]\nenabled = false");
    d.start();
    let (client, stranger) = (CLIENT_V4[0], CLIENT_V4[1]);
    // A UDP echo service bound to the protected address only.
    let svc = d
        .lab
        .protected
        .run(|| std::net::UdpSocket::bind(addr(PROTECTED_V4, 9000)).unwrap());
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = svc.recv_from(&mut buf) {
            let _ = svc.send_to(&buf[..n], from);
        }
    });
    // Discovery runs every tick.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d
        .cli_ok(&["services"])
        .lines()
        .any(|l| l.starts_with("udp") && l.contains(" 9000 "))
    {
        assert!(Instant::now() < deadline, "{}", d.cli_ok(&["services"]));
        sleep(Duration::from_millis(200));
    }
    let udp = |src: &str, dport: &str, dst: Option<&str>| {
        let mut a = vec![src, "--proto", "udp", "--sport", "5000", "--dport", dport];
        if let Some(dst) = dst {
            a.extend_from_slice(&["--dst", dst]);
        }
        explain(&d, &a)
    };

    // Without --dst, a service bound to one address depends on it.
    let v = udp(stranger, "9000", None);
    let s = stage(&v, "strict");
    assert_eq!(s.outcome, Outcome::Depends, "{s:?}");
    assert_eq!(s.depends_on, ["--dst"], "{s:?}");
    assert!(s.say.contains("served on 198.18.0.1/32 only"), "{s:?}");
    assert_eq!(v.unless, ["strict (--dst)"], "{v:?}");
    // With it, the service is found: the packet passes.
    let v = udp(stranger, "9000", Some(PROTECTED_V4));
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("pass", "clean"),
        "{v:?}"
    );
    let s = stage(&v, "strict");
    assert!(
        s.say.contains("udp/9000 served") && s.say.contains("no flow of the host"),
        "{s:?}"
    );
    // A port nothing serves: no_service, and the program drops it so.
    let v = udp(stranger, "9999", Some(PROTECTED_V4));
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("drop", "no_service"),
        "{v:?}"
    );
    assert_eq!(v.decided_by.as_deref(), Some("strict"));
    let no_service = |stats: &[levee::api::views::CounterView]| {
        levee_tests::daemon::packets(
            stats,
            filter_common::abi::Action::Drop,
            Some(filter_common::abi::Reason::NoService),
        )
    };
    let before = no_service(&d.stats());
    send_udp(&d.lab, stranger, addr(PROTECTED_V4, 9999));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut dropped = 0;
    while dropped < DATAGRAMS && Instant::now() < deadline {
        sleep(Duration::from_millis(50));
        dropped = no_service(&d.stats()) - before;
    }
    assert_eq!(
        dropped, DATAGRAMS,
        "the program's verdict differs from explain's"
    );
    // A client the service answered is a flow of the host.
    let rx = d
        .lab
        .client
        .run(|| std::net::UdpSocket::bind(addr(client, 0)).unwrap());
    rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    rx.send_to(b"hello", addr(PROTECTED_V4, 9000)).unwrap();
    let mut buf = [0u8; 16];
    rx.recv_from(&mut buf).expect("the echo's answer");
    let v = udp(client, "9000", Some(PROTECTED_V4));
    let s = stage(&v, "strict");
    assert!(s.say.contains("a flow of the host"), "{s:?}");
    assert!(!s.say.contains("no flow"), "{s:?}");
    // Counted as the program counts it.
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("pass", "flow"),
        "{v:?}"
    );
    let v = udp(stranger, "9000", Some(PROTECTED_V4));
    assert!(
        stage(&v, "strict").say.contains("no flow of the host"),
        "{v:?}"
    );
    // An answer from an amplification port to a query the host sent passes the signature.
    let query = d
        .lab
        .protected
        .run(|| std::net::UdpSocket::bind(addr(PROTECTED_V4, 41234)).unwrap());
    query.send_to(b"query", addr(client, 53)).unwrap();
    sleep(Duration::from_millis(100));
    let answer = |src: &str| {
        explain(
            &d,
            &[
                src,
                "--proto",
                "udp",
                "--sport",
                "53",
                "--dport",
                "41234",
                "--dst",
                PROTECTED_V4,
            ],
        )
    };
    let s = stage(&answer(client), "signatures").clone();
    assert_eq!(s.outcome, Outcome::Passes, "{s:?}");
    assert!(s.say.contains("answers a query this host sent"), "{s:?}");
    let v = answer(stranger);
    assert_eq!(
        (v.action.name(), v.reason.name()),
        ("drop", "amp_port"),
        "{v:?}"
    );
    // A destination of the other family is refused with one line.
    let out = d.cli(&["explain", client, "--dst", "2001:db8:18::1"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: --dst 2001:db8:18::1: not of the source's address family"
    );
}
