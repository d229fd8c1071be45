//! The daemon and CLI as users run them: `levee run` on the protected side of a lab, the CLI
//! from outside, real traffic from the client side.

use std::{net::UdpSocket, thread::sleep, time::Duration};

use levee_tests::{
    daemon::DaemonLab,
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{DATAGRAMS, addr, drain, send_udp, udp_receiver, warm_up},
};

/// A UDP receiver on the protected side.
fn receiver(d: &DaemonLab) -> UdpSocket {
    udp_receiver(&d.lab.protected, PROTECTED_V4, 9000)
}

/// Sends a burst from `src` and returns how many datagrams arrived from it.
fn delivered(d: &DaemonLab, rx: &UdpSocket, src: &str) -> u64 {
    send_udp(&d.lab, src, addr(PROTECTED_V4, 9000));
    sleep(Duration::from_millis(100));
    drain(rx).get(&src.parse().unwrap()).copied().unwrap_or(0)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn block_unblock_and_ttl_expiry_through_the_cli() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let rx = receiver(&d);
    let (good, bad) = (CLIENT_V4[0], CLIENT_V4[1]);
    warm_up(&d.lab.client, good, &rx);

    assert_eq!(
        d.cli_ok(&["block", "add", bad, "--reason", "flooding"]),
        format!("blocked {bad}/32\n")
    );
    assert_eq!(delivered(&d, &rx, bad), 0, "blocked source dropped");
    assert_eq!(
        delivered(&d, &rx, good),
        DATAGRAMS,
        "other source delivered"
    );
    let list = d.cli_json(&["block", "list"]);
    assert_eq!(list[0]["cidr"], format!("{bad}/32"));
    assert_eq!(list[0]["reason"], "flooding");
    assert!(list[0]["ttl_secs"].is_null());

    d.cli_ok(&["block", "del", bad]);
    assert_eq!(
        delivered(&d, &rx, bad),
        DATAGRAMS,
        "unblocked source delivered"
    );
    assert_eq!(d.cli_json(&["block", "list"]).as_array().unwrap().len(), 0);

    d.cli_ok(&["block", "add", "198.18.0.0/24", "--ttl", "2s"]);
    let list = d.cli_json(&["block", "list"]);
    assert!(list[0]["ttl_secs"].as_u64().unwrap() <= 2);
    assert_eq!(delivered(&d, &rx, good), 0, "the /24 covers every client");
    sleep(Duration::from_millis(2500));
    assert_eq!(delivered(&d, &rx, good), DATAGRAMS, "block expired");
    assert_eq!(
        d.cli_json(&["block", "list"]).as_array().unwrap().len(),
        0,
        "expired entry removed"
    );

    let stats = d.cli_json(&["stats"]);
    let drops: u64 = stats
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "drop" && c["reason"] == "blocklisted")
        .map(|c| c["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(drops, 2 * DATAGRAMS, "stats count every blocked datagram");
    assert!(d.stop(), "clean exit on SIGTERM");
    assert!(!d.xdp_attached(), "detached on SIGTERM");
}

#[test]
fn monitor_mode_passes_everything_and_counts_what_it_would_drop() {
    let mut d = DaemonLab::new();
    d.write_config(&format!(
        "mode = \"monitor\"\n[lists]\nblock = [\"{}\"]\n[events]\nsample_every = 1",
        CLIENT_V4[1]
    ));
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    assert_eq!(d.cli_ok(&["mode"]), "monitor\n");
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        DATAGRAMS,
        "monitor passes the blocked source"
    );
    let stats = d.cli_json(&["stats"]);
    let would: u64 = stats
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "would_drop" && c["reason"] == "blocklisted")
        .map(|c| c["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(would, DATAGRAMS);
    // Every header was sampled: `top` ranks the flooding source first, all its packets
    // would-be drops, at a rate estimated from the samples.
    sleep(Duration::from_millis(1100));
    let top = d.cli_json(&["top", "--n", "5"]);
    assert_eq!(top[0]["source"], CLIENT_V4[1], "{top}");
    assert_eq!(top[0]["class"], "udp");
    assert_eq!(top[0]["dropped_pct"], 100);
    assert!(top[0]["pps"].as_u64().unwrap() >= DATAGRAMS / 10, "{top}");
    assert!(d.cli_ok(&["top"]).contains(CLIENT_V4[1]));
    assert_eq!(d.cli_ok(&["mode", "enforce"]), "enforce\n");
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0, "enforce drops it");
    let status = d.cli_json(&["status"]);
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["interfaces"][0]["attach"], "native");
    for f in ["pass_pps", "pass_bps", "drop_pps", "drop_bps"] {
        assert!(status["rates"][f].is_u64(), "status rates.{f}: {status}");
    }
    assert!(d.cli_ok(&["status"]).contains(" pps ("));
}

#[test]
fn cli_errors_are_one_line_and_change_nothing() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    d.cli_ok(&["block", "add", "192.0.2.0/24"]);
    let before = (d.cli_ok(&["mode"]), d.cli_ok(&["block", "list", "--json"]));
    for (args, want) in [
        (vec!["block", "add", "192.0.2.300/24"], "malformed CIDR"),
        (vec!["block", "add", "192.0.2.7/24"], "host bits set"),
        (
            vec!["block", "add", "198.51.100.0/24", "--ttl", "forever"],
            "--ttl: malformed duration",
        ),
        (
            vec!["block", "del", "203.0.113.0/24"],
            "not in the blocklist",
        ),
        (vec!["mode", "panic"], "unknown mode \"panic\""),
        (vec!["allow", "add", "2001:db8::/129"], "malformed CIDR"),
    ] {
        let out = d.cli(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err}");
    }
    assert_eq!(
        (d.cli_ok(&["mode"]), d.cli_ok(&["block", "list", "--json"])),
        before
    );

    // The daemon not running: one line, non-zero, for every command.
    assert!(d.stop());
    for args in [
        vec!["status"],
        vec!["mode", "off"],
        vec!["block", "list"],
        vec!["stats"],
    ] {
        let out = d.cli(&args);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.starts_with("error: levee is not running"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
}

#[test]
fn bad_config_field_is_named_and_nothing_is_attached() {
    let d = DaemonLab::new();
    d.write_config("[limits.udp]\npps = 100\nbrust = 10");
    let out = d.run_expecting_exit();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown field `brust`"), "{err}");
    assert!(err.contains("line 8, column 1"), "names the line: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!d.xdp_attached());
}

#[test]
fn restart_with_keep_on_exit_keeps_the_filter_and_its_state() {
    let mut d = DaemonLab::new();
    d.write_config("keep_on_exit = true\nmode = \"enforce\"");
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    d.cli_ok(&["block", "add", CLIENT_V4[1]]);
    d.cli_ok(&["allow", "add", "2001:db8:99::/48"]);
    d.cli_ok(&["mode", "lockdown"]);
    assert!(d.stop());
    assert!(d.xdp_attached(), "still attached after the daemon stopped");
    // While no daemon runs, the filter still works.
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[0]),
        0,
        "lockdown holds without the daemon"
    );
    d.start();
    assert_eq!(
        d.cli_ok(&["mode"]),
        "lockdown\n",
        "mode kept across the restart"
    );
    let status = d.cli_json(&["status"]);
    assert_eq!(status["interfaces"][0]["attach"], "adopted");
    assert_eq!(
        d.cli_json(&["allow", "list"]),
        serde_json::json!(["2001:db8:99::/48"])
    );
    d.cli_ok(&["mode", "enforce"]);
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        0,
        "block kept across the restart"
    );
    assert_eq!(delivered(&d, &rx, CLIENT_V4[0]), DATAGRAMS);
}

#[test]
fn sighup_reloads_config_and_a_broken_config_changes_nothing() {
    let mut d = DaemonLab::new();
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock = [\"{}\"]",
        CLIENT_V4[1]
    ));
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0);

    // The config now blocks another source instead.
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock = [\"{}\"]",
        CLIENT_V4[2]
    ));
    d.signal(libc::SIGHUP);
    sleep(Duration::from_millis(500));
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        DATAGRAMS,
        "old config entry removed"
    );
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[2]),
        0,
        "new config entry active"
    );

    // A broken config: logged, and the running state stays.
    d.write_config("mode = \"enforce\"\n[lists]\nblock = [\"not-a-cidr\"]");
    d.signal(libc::SIGHUP);
    sleep(Duration::from_millis(500));
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[2]),
        0,
        "still blocked after a broken reload"
    );
    assert!(d.log().contains("reload failed"), "{}", d.log());
}

#[test]
fn flooding_source_dropped_by_its_bucket_while_another_sources_tcp_works() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\npenalty = \"30s\"");
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    let out = d.cli_ok(&[
        "limits", "set", "--class", "udp", "--pps", "100", "--burst", "20",
    ]);
    assert!(out.contains("100 pps"), "{out}");
    assert_eq!(
        d.cli_json(&["limits", "show"])["per_source"]["udp"]["pps"],
        100
    );

    let listener = d
        .lab
        .protected
        .run(|| std::net::TcpListener::bind(addr(PROTECTED_V4, 8080)).unwrap());
    let flooder = CLIENT_V4[1];
    let got = delivered(&d, &rx, flooder);
    assert!(
        got < DATAGRAMS / 2,
        "the flooder got {got} of {DATAGRAMS} through"
    );
    // Its next burst is dropped while it serves its penalty, but for the few packets a source
    // that paused sends before the sketch marks it heavy again (below the threshold of 8 per
    // CPU and window; see README, per-source limits).
    let leaked = delivered(&d, &rx, flooder);
    assert!(leaked < 16, "penalty: {leaked} of {DATAGRAMS} got through");
    // Meanwhile another source connects over TCP.
    let conn = d.lab.client.run(|| {
        levee_tests::traffic::tcp_connect(
            CLIENT_V4[2],
            addr(PROTECTED_V4, 8080),
            Duration::from_secs(5),
        )
    });
    assert!(conn.is_ok(), "TCP from another source: {conn:?}");
    // The offence reached the daemon's log through the ring buffer.
    sleep(Duration::from_millis(1200));
    let log = d.log();
    assert!(
        log.contains("source over its limit") && log.contains(&format!("source={flooder}")),
        "{log}"
    );
    drop(listener);
    let stats = d.cli_json(&["stats"]);
    let by = |reason: &str| -> u64 {
        stats
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] == "drop" && c["reason"] == reason)
            .map(|c| c["packets"].as_u64().unwrap())
            .sum()
    };
    assert!(by("source_rate") >= 1, "{stats}");
    assert_eq!(
        by("source_rate") + by("source_penalty"),
        2 * DATAGRAMS - got - leaked,
        "every dropped datagram counted"
    );
}

#[test]
fn lockdown_passes_only_the_allowlist_and_ipv6_takes_the_same_paths() {
    use levee_tests::netns::{CLIENT_V6, PROTECTED_V6};
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    let rx4 = receiver(&d);
    let rx6 = udp_receiver(&d.lab.protected, PROTECTED_V6, 9000);
    let v6 = |src: &str| {
        send_udp(&d.lab, src, addr(PROTECTED_V6, 9000));
        sleep(Duration::from_millis(100));
        drain(&rx6).get(&src.parse().unwrap()).copied().unwrap_or(0)
    };
    warm_up(&d.lab.client, CLIENT_V4[0], &rx4);
    warm_up(&d.lab.client, CLIENT_V6[0], &rx6);

    d.cli_ok(&["block", "add", "2001:db8:18:1::/64"]);
    assert_eq!(v6(CLIENT_V6[1]), 0, "blocked IPv6 /64");
    assert_eq!(v6(CLIENT_V6[0]), DATAGRAMS, "other IPv6 source");

    d.cli_ok(&["allow", "add", CLIENT_V4[0]]);
    d.cli_ok(&["allow", "add", "2001:db8:18::/64"]);
    d.cli_ok(&["mode", "lockdown"]);
    assert_eq!(
        delivered(&d, &rx4, CLIENT_V4[0]),
        DATAGRAMS,
        "allowlisted IPv4 passes lockdown"
    );
    assert_eq!(
        delivered(&d, &rx4, CLIENT_V4[2]),
        0,
        "other IPv4 dropped in lockdown"
    );
    assert_eq!(
        v6(CLIENT_V6[0]),
        DATAGRAMS,
        "allowlisted IPv6 passes lockdown"
    );
    assert_eq!(v6(CLIENT_V6[1]), 0, "other IPv6 dropped in lockdown");
    d.cli_ok(&["allow", "del", "2001:db8:18::/64"]);
    assert_eq!(v6(CLIENT_V6[0]), 0, "removed from the allowlist");
}

#[test]
fn two_interfaces_at_once() {
    use levee_tests::{
        netns::{CLIENT2_V4, PROTECTED2_V4},
        traffic::send_udp_from,
    };
    let mut d = DaemonLab::new();
    let second = d.lab.second_link();
    d.write_config("mode = \"enforce\"");
    // The harness config names lv0; add the second interface.
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("interfaces = [\"lv0\"]", "interfaces = [\"lv0\", \"lv2\"]");
    std::fs::write(&d.config, text).unwrap();
    d.start();
    let status = d.cli_json(&["status"]);
    let names: Vec<&str> = status["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lv0", "lv2"]);
    let rx1 = receiver(&d);
    let rx2 = udp_receiver(&d.lab.protected, PROTECTED2_V4, 9000);
    let on2 = || {
        send_udp_from(&second.client, CLIENT2_V4, addr(PROTECTED2_V4, 9000));
        sleep(Duration::from_millis(100));
        drain(&rx2)
            .get(&CLIENT2_V4.parse().unwrap())
            .copied()
            .unwrap_or(0)
    };
    warm_up(&d.lab.client, CLIENT_V4[0], &rx1);
    warm_up(&second.client, CLIENT2_V4, &rx2);
    // One command blocks on both interfaces.
    d.cli_ok(&["block", "add", "198.18.0.0/23"]);
    assert_eq!(delivered(&d, &rx1, CLIENT_V4[0]), 0, "blocked on lv0");
    assert_eq!(on2(), 0, "blocked on lv2");
    d.cli_ok(&["block", "del", "198.18.0.0/23"]);
    assert_eq!(on2(), DATAGRAMS);
    assert!(d.stop());
    let out = d.lab.protected.ip(&["link", "show"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("xdp"),
        "both detached"
    );
}

#[test]
fn a_million_prefix_block_file_loads_and_bad_lines_are_reported() {
    use std::fmt::Write as _;
    let mut d = DaemonLab::new();
    let file = d.dir.join("block.txt");
    let mut text = String::from("# a big list\n");
    text.push_str(&format!("{}  # a lab client\n", CLIENT_V4[1]));
    text.push_str("this-is-not-a-cidr\n");
    // 999,999 more distinct /32s in 100.64.0.0/10 and 2001:db8::/32 (never sent to).
    for i in 0u32..999_000 {
        let a = 0x6440_0000u32 + i;
        writeln!(
            text,
            "{}.{}.{}.{}/32",
            a >> 24,
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        )
        .unwrap();
    }
    for i in 0u32..999 {
        writeln!(text, "2001:db8:{i:x}::/48").unwrap();
    }
    std::fs::write(&file, text).unwrap();
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock_files = [\"{}\"]",
        file.display()
    ));
    d.start();
    let log = d.log();
    assert!(
        log.contains(&format!(
            "{}:3: malformed CIDR \"this-is-not-a-cidr\"",
            file.display()
        )),
        "the bad line is named with file and line: {log}"
    );
    let status = d.cli_json(&["status"]);
    assert_eq!(
        status["blocklist_entries"], 1_000_000,
        "every good line loaded"
    );
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        0,
        "a listed source is dropped"
    );
}

#[test]
fn restart_without_keep_detaches_then_restores_what_the_cli_set() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut d = DaemonLab::new();
    d.write_config("mode = \"monitor\"");
    d.start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket is root-only");
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    d.cli_ok(&["mode", "enforce"]);
    d.cli_ok(&[
        "block",
        "add",
        CLIENT_V4[1],
        "--ttl",
        "1h",
        "--reason",
        "reflection",
    ]);
    d.cli_ok(&["allow", "add", "192.0.2.0/24"]);
    d.cli_ok(&[
        "limits", "set", "--class", "icmp", "--pps", "77", "--burst", "7",
    ]);
    assert!(d.stop());
    assert!(!d.xdp_attached(), "detached while stopped");
    assert_eq!(
        delivered(&d, &rx, CLIENT_V4[1]),
        DATAGRAMS,
        "no filter while stopped"
    );

    d.start();
    assert_eq!(
        d.cli_ok(&["mode"]),
        "enforce\n",
        "CLI mode restored over the config's"
    );
    let list = d.cli_json(&["block", "list"]);
    assert_eq!(list[0]["cidr"], format!("{}/32", CLIENT_V4[1]));
    assert_eq!(list[0]["reason"], "reflection");
    let ttl = list[0]["ttl_secs"].as_u64().unwrap();
    assert!((3590..=3600).contains(&ttl), "TTL continues: {ttl}");
    assert_eq!(
        d.cli_json(&["allow", "list"]),
        serde_json::json!(["192.0.2.0/24"])
    );
    assert_eq!(
        d.cli_json(&["limits", "show"])["per_source"]["icmp"]["pps"],
        77
    );
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0, "block active again");
}

#[test]
fn auto_mode_falls_back_to_generic_and_says_so() {
    let mut d = DaemonLab::new();
    // A bridge has no native XDP support.
    d.lab
        .protected
        .ip(&["link", "add", "lvbr0", "type", "bridge"]);
    d.lab.protected.ip(&["link", "set", "lvbr0", "up"]);
    d.write_config("xdp_mode = \"auto\"");
    let text = std::fs::read_to_string(&d.config).unwrap().replace(
        "interfaces = [\"lv0\"]\nxdp_mode = \"native\"\n",
        "interfaces = [\"lvbr0\"]\n",
    );
    std::fs::write(&d.config, &text).unwrap();
    d.start();
    assert_eq!(
        d.cli_json(&["status"])["interfaces"][0]["attach"],
        "generic"
    );
    assert!(
        d.log()
            .contains("native XDP unavailable, attached in generic mode"),
        "{}",
        d.log()
    );
    assert!(d.stop());

    // Native only: refused in one line, nothing attached.
    std::fs::write(
        &d.config,
        text.replace("xdp_mode = \"auto\"", "xdp_mode = \"native\""),
    )
    .unwrap();
    let out = d.run_expecting_exit();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("failed to attach to lvbr0 in Native mode"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Issue 4's bar: during a lab flood the attack is declared within 2 s of its start and the
/// offender blocklisted within 3 s; monitor is switched to enforce and back after recovery.
#[test]
fn a_lab_flood_is_detected_and_its_source_blocklisted_in_seconds() {
    use levee_tests::traffic::{flood_until, udp_flood_frames};
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        time::Instant,
    };
    let mut d = DaemonLab::new();
    d.write_config(
        "mode = \"monitor\"\n[detection]\nrecovery_secs = 2\n[detection.floor_pps]\nudp = 5000",
    );
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    // Let the engine see a few calm seconds.
    sleep(Duration::from_millis(2500));
    assert_eq!(d.cli_json(&["status"])["attack"]["udp"], "normal");

    let flooder = CLIENT_V4[3];
    let frames = udp_flood_frames(&d.lab, flooder, 9000, 20_000);
    let stop = AtomicBool::new(false);
    let (attack_after, blocked_after) = std::thread::scope(|s| {
        s.spawn(|| flood_until(&d.lab, &frames, &stop));
        let start = Instant::now();
        let (mut attack, mut blocked) = (None, None);
        while start.elapsed() < Duration::from_secs(10) && (attack.is_none() || blocked.is_none()) {
            if attack.is_none() && d.cli_json(&["status"])["attack"]["udp"] == "under_attack" {
                attack = Some(start.elapsed());
            }
            if blocked.is_none()
                && d.cli_json(&["block", "list"])
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b["cidr"] == format!("{flooder}/32"))
            {
                blocked = Some(start.elapsed());
            }
            sleep(Duration::from_millis(50));
        }
        stop.store(true, Ordering::SeqCst);
        (attack, blocked)
    });
    let attack_after = attack_after.unwrap_or_else(|| panic!("no attack declared: {}", d.log()));
    let blocked_after =
        blocked_after.unwrap_or_else(|| panic!("flooder not blocklisted: {}", d.log()));
    eprintln!(
        "attack declared after {attack_after:?}, offender blocklisted after {blocked_after:?}"
    );
    assert!(
        attack_after < Duration::from_secs(2),
        "attack declared after {attack_after:?}"
    );
    assert!(
        blocked_after < Duration::from_secs(3),
        "blocklisted after {blocked_after:?}"
    );
    let list = d.cli_json(&["block", "list"]);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["cidr"] == format!("{flooder}/32"))
        .unwrap();
    assert!(
        entry["reason"].as_str().unwrap().starts_with("detection"),
        "{entry}"
    );
    assert!(entry["ttl_secs"].as_u64().unwrap() > 500, "{entry}");
    let status = d.cli_json(&["status"]);
    assert_eq!(
        status["mode"], "enforce",
        "monitor switched to enforce: {status}"
    );
    assert!(status["decisions"]["attack_started"].as_u64().unwrap() >= 1);
    assert!(status["decisions"]["block"].as_u64().unwrap() >= 1);
    // No other source was blocked.
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // After the flood: recovery, and monitor again.
    let start = Instant::now();
    while d.cli_json(&["status"])["mode"] != "monitor" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery: {}",
            d.log()
        );
        sleep(Duration::from_millis(200));
    }
    assert_eq!(d.cli_json(&["status"])["attack"]["udp"], "normal");
    let log = d.log();
    assert!(
        log.contains("attack started") && log.contains("detection blocked an offender"),
        "{log}"
    );
}

/// A crowd of 2000 legitimate sources, each well within its limits, arrives together with a
/// single-source flood: the flood is dropped and its source blocklisted; no crowd source is
/// blocked and every crowd packet is passed, although the crowd alone is a large rate.
#[test]
fn a_crowd_with_a_flood_loses_no_member() {
    use levee_tests::{
        sender::send_frames,
        traffic::{flood_until, udp_flood_frames},
    };
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[detection.floor_pps]\nudp = 5000");
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    sleep(Duration::from_millis(2500));

    // The crowd: 2000 sources in 198.19.0.0/16, round robin, 100 packets each.
    let template = udp_flood_frames(&d.lab, CLIENT_V4[0], 9000, 1);
    let members = 2000u32;
    let mut crowd = Vec::new();
    for i in 0..members * 100 {
        let mut f = template.clone();
        let src = 0xc613_0000u32 + 1 + (i % members);
        f[26..30].copy_from_slice(&src.to_be_bytes());
        // Fix the IPv4 header checksum for the new source.
        f[24] = 0;
        f[25] = 0;
        let mut sum: u32 = f[14..34]
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        crowd.extend_from_slice(&f);
    }
    let flooder = CLIENT_V4[3];
    let flood = udp_flood_frames(&d.lab, flooder, 9000, 20_000);
    let before = d.cli_json(&["stats"]);
    let stop = AtomicBool::new(false);
    let crowd_sent = std::thread::scope(|s| {
        s.spawn(|| flood_until(&d.lab, &flood, &stop));
        // The crowd arrives over about two seconds, in four waves.
        let mut sent = 0;
        for wave in crowd.chunks(crowd.len() / 4) {
            sent += d.lab.client.run(|| send_frames("lv1", wave, 64)).unwrap();
            sleep(Duration::from_millis(400));
        }
        sleep(Duration::from_millis(1200));
        stop.store(true, Ordering::SeqCst);
        sent
    });
    assert_eq!(crowd_sent, u64::from(members) * 100);
    let list = d.cli_json(&["block", "list"]);
    let blocked: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["cidr"].as_str().unwrap())
        .collect();
    assert_eq!(
        blocked,
        [format!("{flooder}/32")],
        "only the flooder is blocked"
    );
    let after = d.cli_json(&["stats"]);
    let sum = |v: &serde_json::Value, action: &str| -> u64 {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] == action)
            .map(|c| c["packets"].as_u64().unwrap())
            .sum()
    };
    let passed = sum(&after, "pass") - sum(&before, "pass");
    assert!(
        passed >= crowd_sent,
        "every crowd packet passed: {passed} passed, {crowd_sent} crowd packets"
    );
    let drops: Vec<String> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "drop")
        .map(|c| c["reason"].as_str().unwrap().to_string())
        .collect();
    for reason in &drops {
        assert!(
            ["source_rate", "source_penalty", "blocklisted"].contains(&reason.as_str()),
            "only the flooder's drops: {after}"
        );
    }
}

/// Fetches `/metrics` from the daemon (it listens on loopback inside the protected namespace).
fn scrape(d: &DaemonLab) -> String {
    use std::io::{Read as _, Write as _};
    d.lab.protected.run(|| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9750").expect("connect to /metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: levee\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
}

#[test]
fn metrics_endpoint_serves_counters_mode_lists_and_health() {
    let mut d = DaemonLab::new();
    d.write_config(&format!(
        "mode = \"enforce\"\n[lists]\nblock = [\"{}\"]",
        CLIENT_V4[1]
    ));
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0);
    sleep(Duration::from_millis(1200));
    let text = scrape(&d);
    assert!(
        text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let drops = value(
        "levee_packets_total{interface=\"lv0\",action=\"drop\",reason=\"blocklisted\",class=\"udp\"}",
    );
    assert_eq!(drops, DATAGRAMS as f64);
    assert_eq!(value("levee_mode{mode=\"enforce\"}"), 1.0);
    assert_eq!(value("levee_mode{mode=\"monitor\"}"), 0.0);
    assert_eq!(value("levee_blocklist_entries"), 1.0);
    assert_eq!(value("levee_under_attack{class=\"udp\"}"), 0.0);
    assert!(value("levee_controller_ticks_total") >= 1.0);
    assert!(value("levee_tracked_sources{interface=\"lv0\"}") >= 0.0);
    assert_eq!(value("levee_tracked_sources_capacity"), 1_048_576.0);
    assert_eq!(value("levee_blocklist_capacity"), 1_048_576.0);
    assert!(value("levee_controller_last_tick_timestamp_seconds") > 1.7e9);

    // A bad --metrics value is named in one line before anything is attached.
    assert!(d.stop());
    d.write_config("metrics = \"nowhere\"\nmode = \"enforce\"");
    let out = d.run_expecting_exit();
    let err = stderr(&out);
    assert!(
        err.contains("field metrics: malformed address \"nowhere\""),
        "{err}"
    );
    assert!(!d.xdp_attached());
}

/// A plain HTTP GET inside the protected namespace; returns the body.
fn http_get(d: &DaemonLab, addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    d.lab.protected.run(|| {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return String::new();
        };
        let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n").as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    })
}

/// Kills the Prometheus server when the test ends, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus server (Debian's) scrapes the daemon every second with the shipped alert
/// rules loaded; during a lab flood, the attack alert's expression returns the attack and
/// the alert fires.
#[test]
fn prometheus_sees_the_attack_during_a_lab_flood() {
    use levee_tests::traffic::{flood_until, udp_flood_frames};
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        time::Instant,
    };
    let mut d = DaemonLab::new();
    d.write_config(
        "mode = \"enforce\"\n[detection]\nrecovery_secs = 30\n[detection.floor_pps]\nudp = 5000",
    );
    d.start();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/prometheus/levee-alerts.yml");
    let prom_dir = d.dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom_config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: levee\n    static_configs:\n      - targets: ['127.0.0.1:9750']\n",
            rules.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let _prometheus = KillOnDrop(
        d.lab
            .protected
            .command("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg("--web.listen-address=127.0.0.1:9090")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(prom_dir.join("log")).unwrap())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    let start = Instant::now();
    while !http_get(&d, "127.0.0.1:9090", "/-/ready").contains("Ready") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "prometheus not ready"
        );
        sleep(Duration::from_millis(200));
    }
    // The scrape works before the flood.
    let start = Instant::now();
    while !http_get(
        &d,
        "127.0.0.1:9090",
        "/api/v1/query?query=up%7Bjob%3D%22levee%22%7D",
    )
    .contains("\"1\"]")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "levee never scraped"
        );
        sleep(Duration::from_millis(300));
    }

    let frames = udp_flood_frames(&d.lab, CLIENT_V4[3], 9000, 20_000);
    let stop = AtomicBool::new(false);
    let (attack, alert) = std::thread::scope(|s| {
        s.spawn(|| flood_until(&d.lab, &frames, &stop));
        let start = Instant::now();
        // The attack alert's expression: max by (instance, class) (levee_under_attack) == 1
        let query = "/api/v1/query?query=max%20by%20(instance%2C%20class)%20(levee_under_attack)%20%3D%3D%201";
        let (mut attack, mut alert) = (String::new(), String::new());
        while start.elapsed() < Duration::from_secs(20) {
            if !attack.contains("\"udp\"") {
                attack = http_get(&d, "127.0.0.1:9090", query);
            }
            alert = http_get(&d, "127.0.0.1:9090", "/api/v1/alerts");
            if attack.contains("\"udp\"")
                && alert.contains("LeveeAttackStarted")
                && alert.contains("firing")
            {
                break;
            }
            sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::SeqCst);
        (attack, alert)
    });
    assert!(
        attack.contains("\"class\":\"udp\""),
        "the alert expression returns the attack: {attack}"
    );
    assert!(
        alert.contains("LeveeAttackStarted") && alert.contains("\"state\":\"firing\""),
        "alert fires: {alert}"
    );
}

/// On a terminal `levee top` redraws in place every second; run under a pseudo-terminal
/// (`script`, from util-linux) for 2.5 s, it draws at least twice.
#[test]
fn top_refreshes_in_place_on_a_terminal() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[events]\nsample_every = 1");
    d.start();
    let rx = receiver(&d);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    delivered(&d, &rx, CLIENT_V4[2]);
    sleep(Duration::from_millis(1100));
    let cmd = format!(
        "{} --socket {} top",
        levee_tests::daemon::levee_bin().display(),
        d.socket.display()
    );
    let out = std::process::Command::new("timeout")
        .args(["2.5", "script", "-qfc", &cmd, "/dev/null"])
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("levee top: heaviest sources").count() >= 2,
        "{text}"
    );
    assert!(text.contains("\x1b[H\x1b[2J"), "cleared in place: {text:?}");
    assert!(text.contains(CLIENT_V4[2]), "{text}");
    // Not on a terminal: printed once.
    let once = d.cli_ok(&["top"]);
    assert!(
        !once.contains("\x1b[2J") && once.contains(CLIENT_V4[2]),
        "{once}"
    );
}
