//! Issue 7's defects, each with a test named after it that fails on the controller before
//! the split: a stuck client, a change refused on one of two interfaces, a reload that fails
//! half-way, who owns the mode, a stalled tick, big lists, a closed pipe, idle /metrics
//! connections. Real daemon, real CLI, real traffic.

use std::{
    io::Write as _,
    net::UdpSocket,
    os::unix::net::UnixStream,
    process::{Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::Mode;
use levee::{api::views::BlockView, controller::persist::State};
use levee_tests::{
    daemon::{DaemonLab, levee_bin},
    flood::flooding,
    netns::{CLIENT_V4, CLIENT_V6, PROTECTED_V4, PROTECTED_V6},
    traffic::{DATAGRAMS, addr, drain, send_udp, udp_flood_frames, udp_receiver, warm_up},
};

fn delivered(d: &DaemonLab, rx: &UdpSocket, src: &str, dst: &str) -> u64 {
    send_udp(&d.lab, src, addr(dst, 9000));
    sleep(Duration::from_millis(100));
    drain(rx).get(&src.parse().unwrap()).copied().unwrap_or(0)
}

/// A config whose block file holds `n` /32s in 10.0.0.0/8.
fn big_list(d: &DaemonLab, n: u32, extra: &str) {
    let file = d.dir.join("block.txt");
    let mut text = String::new();
    for i in 0..n {
        let [_, a, b, c] = (0x0a00_0000u32 + i).to_be_bytes();
        text.push_str(&format!("10.{a}.{b}.{c}\n"));
    }
    std::fs::write(&file, text).unwrap();
    d.write_config(&format!(
        "mode = \"enforce\"\n{extra}\n[lists]\nblock_files = [\"{}\"]",
        file.display()
    ));
}

fn metric(d: &DaemonLab, name: &str) -> Option<f64> {
    use std::io::Read as _;
    let text = d.lab.protected.run(|| {
        let mut s = std::net::TcpStream::connect("127.0.0.1:9750").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: levee\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_client_that_never_reads_stalls_nothing() {
    let mut d = DaemonLab::new();
    big_list(&d, 20_000, "");
    d.start();
    // 20,000 entries answer with about 1 MB, far more than the socket buffers hold.
    let mut stuck = UnixStream::connect(&d.socket).unwrap();
    stuck.write_all(b"{\"cmd\":\"block_list\"}\n").unwrap();
    sleep(Duration::from_millis(500));
    let start = Instant::now();
    assert_eq!(d.cli_ok(&["mode"]), "enforce\n");
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "mode answered after {waited:?}"
    );
    let ticks = metric(&d, "levee_controller_ticks_total").expect("ticks");
    sleep(Duration::from_millis(2100));
    let later = metric(&d, "levee_controller_ticks_total").expect("ticks");
    assert!(
        later >= ticks + 1.0,
        "the controller kept ticking: {ticks} -> {later}"
    );
    drop(stuck);
}

#[test]
fn a_stalled_controller_does_not_catch_up_ticks() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    sleep(Duration::from_millis(1500));
    let before = metric(&d, "levee_controller_ticks_total").expect("ticks");
    d.signal(libc::SIGSTOP);
    sleep(Duration::from_millis(3500));
    d.signal(libc::SIGCONT);
    sleep(Duration::from_millis(300));
    let after = metric(&d, "levee_controller_ticks_total").expect("ticks");
    assert!(
        after - before <= 2.0,
        "ticks ran back to back after the stall: {before} -> {after}"
    );
}

#[test]
fn block_list_into_a_closed_pipe_exits_quietly() {
    let mut d = DaemonLab::new();
    big_list(&d, 5_000, "");
    d.start();
    let mut child = Command::new(levee_bin())
        .arg("--socket")
        .arg(&d.socket)
        .args(["block", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "quiet: {err}");
}

#[test]
fn status_and_block_list_never_walk_the_tries() {
    let mut d = DaemonLab::new();
    big_list(&d, 1_000_000, "");
    d.start();
    // Raw JSON: this test also runs against daemons older than the typed views.
    let start = Instant::now();
    let status = d.cli_json(&["status"]);
    let took = start.elapsed();
    assert_eq!(status["blocklist_entries"], 1_000_000);
    // The tries hold a million entries; walking them took 3.7 s.
    assert!(took < Duration::from_secs(1), "status took {took:?}");
    let start = Instant::now();
    let out = d.cli(&["block", "list", "--json"]);
    let took = start.elapsed();
    assert!(out.status.success());
    let list: Vec<BlockView> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1_000_000);
    eprintln!("block list of a million entries took {took:?}");
}

#[test]
fn idle_metrics_connections_do_not_lock_out_the_control_socket() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"");
    d.start();
    // The daemon gets the descriptor limit a service usually has (1024, systemd's default);
    // then more idle /metrics connections than that.
    let limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    let pid = d.pid().expect("running") as libc::pid_t;
    // SAFETY: prlimit(2) on our own child with a valid struct; no old value is read.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    let idle: Vec<std::net::TcpStream> = d.lab.protected.run(|| {
        (0..1100)
            .filter_map(|_| std::net::TcpStream::connect("127.0.0.1:9750").ok())
            .collect()
    });
    assert!(idle.len() > 1024, "{} idle connections", idle.len());
    sleep(Duration::from_millis(500));
    let out = d.cli(&["status"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Once the idle ones time out, scrapes are served again.
    let start = Instant::now();
    while metric(&d, "levee_controller_ticks_total").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "metrics never came back"
        );
        sleep(Duration::from_millis(500));
    }
    drop(idle);
}

/// A lab with two interfaces whose second one has a full IPv6 blocklist (filled behind the
/// daemon's back), so any IPv6 block write fails there, after succeeding on the first.
fn two_interfaces_one_full(extra: &str) -> (DaemonLab, levee_tests::netns::SecondLink) {
    use aya::maps::{LpmTrie, Map, MapData, lpm_trie::Key};
    use filter_common::abi::BlockEntry;
    let mut d = DaemonLab::new();
    let second = d.lab.second_link();
    d.write_config(&format!("mode = \"enforce\"\n{extra}"));
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("interfaces = [\"lv0\"]", "interfaces = [\"lv0\", \"lv2\"]");
    std::fs::write(&d.config, text).unwrap();
    d.start();
    let pin = d.pin_dir("lv2").join("BLOCK_V6");
    let mut trie: LpmTrie<MapData, [u8; 16], BlockEntry> =
        LpmTrie::try_from(Map::LpmTrie(MapData::from_pin(&pin).unwrap())).unwrap();
    let mut filled = 0u32;
    for i in 0u32.. {
        let mut a = [0u8; 16];
        a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff]);
        a[12..].copy_from_slice(&i.to_be_bytes());
        if trie
            .insert(&Key::new(128, a), BlockEntry { expires_ns: 0 }, 0)
            .is_err()
        {
            break;
        }
        filled += 1;
    }
    assert!(filled >= 1 << 19, "filled {filled}");
    (d, second)
}

#[test]
fn a_command_refused_on_one_interface_changes_none() {
    let (d, _second) = two_interfaces_one_full("");
    let rx6 = udp_receiver(&d.lab.protected, PROTECTED_V6, 9000);
    warm_up(&d.lab.client, CLIENT_V6[0], &rx6);
    let out = d.cli(&["block", "add", CLIENT_V6[0]]);
    assert!(!out.status.success(), "the full interface refuses");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lv2"), "names the interface: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        delivered(&d, &rx6, CLIENT_V6[0], PROTECTED_V6),
        DATAGRAMS,
        "not blocked on lv0 either"
    );
    assert_eq!(d.block_list(), []);
    // IPv4 still works on both.
    d.cli_ok(&["block", "add", CLIENT_V4[1]]);
    let rx4 = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    assert_eq!(delivered(&d, &rx4, CLIENT_V4[1], PROTECTED_V4), 0);
}

#[test]
fn a_reload_that_fails_half_way_keeps_the_running_state() {
    let (d, _second) = two_interfaces_one_full(&format!("[lists]\nblock = [\"{}\"]", CLIENT_V4[1]));
    let rx4 = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    let rx6 = udp_receiver(&d.lab.protected, PROTECTED_V6, 9000);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx4);
    warm_up(&d.lab.client, CLIENT_V6[0], &rx6);
    // The new config drops the IPv4 block and adds an IPv6 one lv2 cannot take.
    d.write_config("mode = \"enforce\"\n[lists]\nblock = [\"2001:db8:18::/64\"]");
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("interfaces = [\"lv0\"]", "interfaces = [\"lv0\", \"lv2\"]");
    std::fs::write(&d.config, text).unwrap();
    d.signal(libc::SIGHUP);
    sleep(Duration::from_millis(1500));
    assert!(d.log().contains("reload failed"), "{}", d.log());
    assert_eq!(
        delivered(&d, &rx6, CLIENT_V6[0], PROTECTED_V6),
        DATAGRAMS,
        "the refused IPv6 block is not on lv0"
    );
    assert_eq!(
        delivered(&d, &rx4, CLIENT_V4[1], PROTECTED_V4),
        0,
        "the old config block still holds"
    );
    let list = d.block_list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].cidr.0.to_string(), format!("{}/32", CLIENT_V4[1]));
    assert_eq!(list[0].reason.as_deref(), Some("config"));
}

/// The state file (empty when absent).
fn state(d: &DaemonLab) -> State {
    let text = std::fs::read_to_string(d.dir.join("state.json")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// Polls `status` until the mode is `want`; returns that status.
/// Polls `status` until the mode is `want`; returns that status. It reads the raw JSON, so
/// this file's tests also run against daemons older than `mode_set_by` (to show they fail
/// there for the behaviour, not for a missing field).
fn wait_mode(d: &DaemonLab, want: Mode, within: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let status = d.cli_json(&["status"]);
        if status["mode"] == want.name() {
            return status;
        }
        assert!(
            start.elapsed() < within,
            "mode never {}: {status}\n{}",
            want.name(),
            d.log()
        );
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn mode_ownership_between_the_operator_and_detection() {
    let config = "keep_on_exit = true\nmode = \"monitor\"\n[detection]\nrecovery_secs = 3\n\
                  escalate_after = 0\n[detection.floor_pps]\nudp = 5000";
    let mut d = DaemonLab::new();
    d.write_config(config);
    d.start();
    let rx = udp_receiver(&d.lab.protected, PROTECTED_V4, 9000);
    warm_up(&d.lab.client, CLIENT_V4[0], &rx);
    sleep(Duration::from_millis(2500));
    let frames = udp_flood_frames(&d.lab, CLIENT_V4[3], 9000, 20_000);
    flooding(&d.lab, &frames, || {
        wait_mode(&d, Mode::Enforce, Duration::from_secs(5));
        assert_eq!(
            state(&d).mode,
            None,
            "the engine's switch is not the operator's choice: {:?}",
            state(&d)
        );
        // A reload mid-attack keeps enforcing: the file's monitor is the operator's mode,
        // detection still holds enforce above it.
        d.signal(libc::SIGHUP);
        sleep(Duration::from_millis(1500));
        assert_eq!(d.cli_json(&["status"])["mode"], "enforce", "{}", d.log());
        assert_eq!(d.status().mode_set_by, "detection");
    });
    // A restart mid-attack (keep_on_exit) keeps enforcing...
    assert!(d.stop());
    d.start();
    assert_eq!(d.cli_json(&["status"])["mode"], "enforce", "{}", d.log());
    assert_eq!(d.status().mode_set_by, "detection");
    // ...and detection lets go once no attack is seen for recovery_secs.
    wait_mode(&d, Mode::Monitor, Duration::from_secs(20));
    assert_eq!(d.status().mode_set_by, "config");
    // The operator's choice is the operator's, and is what the state file keeps.
    d.cli_ok(&["mode", "enforce"]);
    let saved = state(&d);
    assert_eq!(saved.mode.as_deref(), Some("enforce"), "{saved:?}");
    assert!(!saved.detection_holds_enforce, "{saved:?}");
}
