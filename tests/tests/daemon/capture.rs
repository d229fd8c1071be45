//! `levee capture`: during a single-source flood beside a legitimate client, the frames the
//! filter drops for the flood's reason are written as pcapng that tcpdump reads, with the
//! flood's addresses only; the kernel's budget holds the copies down and says what it skipped;
//! a client that leaves ends the capture; bad options and a second capture are refused.

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::Action;
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{DATAGRAMS, addr, send_udp, warm_up},
};

use crate::{delivered, receiver};

const LEGIT: &str = CLIENT_V4[0];
const FLOODER: &str = CLIENT_V4[1];

/// A daemon enforcing 100 pps per UDP source, with a long penalty.
fn limited() -> DaemonLab {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\npenalty = \"60s\"");
    d.start();
    d.cli_ok(&[
        "limits", "set", "--class", "udp", "--pps", "100", "--burst", "20",
    ]);
    d
}

/// Starts `levee capture ARGS` and waits until the daemon copies (its log says so).
fn start_capture(d: &DaemonLab, args: &[&str]) -> Child {
    let mut a = vec!["capture"];
    a.extend_from_slice(args);
    let before = d.log().matches("capture started").count();
    let child = d
        .cli_command(&a)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn levee capture");
    wait_for_capture(d, before + 1);
    child
}

/// Waits until the daemon's log says `n` captures started.
fn wait_for_capture(d: &DaemonLab, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.log().matches("capture started").count() < n {
        assert!(Instant::now() < deadline, "no capture started: {}", d.log());
        sleep(Duration::from_millis(20));
    }
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().expect("wait for levee capture");
    assert!(
        out.status.success(),
        "levee capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// tcpdump's one line per frame.
fn tcpdump(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-tt", "-nn", "-r"])
        .arg(file)
        .output()
        .expect("run tcpdump");
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The number before `label` in the capture's closing line on stderr.
fn counted(stderr: &str, label: &str) -> u64 {
    let at = stderr
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in {stderr}"));
    stderr[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {label:?} in {stderr}"))
}

#[test]
fn the_floods_dropped_frames_are_captured_and_tcpdump_reads_them() {
    let d = limited();
    let rx = receiver(&d);
    warm_up(&d.lab.client, LEGIT, &rx);
    let file = d.dir.join("flood.pcapng");
    let f = file.to_str().unwrap();
    let capture = start_capture(
        &d,
        &[
            "--reason",
            "source_penalty",
            "--count",
            "100",
            "--snaplen",
            "64",
            "-w",
            f,
        ],
    );
    // The flooder goes over its bucket and then serves its penalty; the legitimate client
    // sends beside it, well under its limit.
    let mut legit = 0;
    for _ in 0..3 {
        delivered(&d, &rx, FLOODER);
        legit += delivered(&d, &rx, LEGIT).min(1);
    }
    assert!(legit > 0, "the legitimate client got nothing through");
    let out = finish(capture);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(counted(&stderr, "packets written"), 100, "{stderr}");
    assert!(stderr.contains("count reached"), "{stderr}");

    let lines = tcpdump(&file);
    assert_eq!(lines.len(), 100, "{lines:#?}");
    let flood = format!("{FLOODER}.");
    let target = format!("{PROTECTED_V4}.9000");
    for line in &lines {
        assert!(
            line.contains(&flood) && line.contains(&target) && line.contains("UDP"),
            "not the flood's: {line}"
        );
        assert!(
            !line.contains(LEGIT),
            "the legitimate client captured: {line}"
        );
    }
    // The packets carry the time they were copied (tcpdump -tt: seconds since the epoch).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for line in &lines {
        let at: f64 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(
            now - at >= 0.0 && now - at < 60.0,
            "timestamp of {line:?}, now {now}"
        );
    }
    // The verdict rides along as a pcapng comment.
    let bytes = std::fs::read(&file).unwrap();
    let comment = b"levee: drop source_penalty udp";
    assert!(
        bytes.windows(comment.len()).any(|w| w == comment),
        "no verdict comment in the file"
    );
    // Nothing is copied once the capture is over.
    assert!(d.log().contains("capture ended"), "{}", d.log());
}

#[test]
fn a_capture_piped_into_tcpdump_and_the_budget_that_holds_it() {
    let d = limited();
    let rx = receiver(&d);
    warm_up(&d.lab.client, LEGIT, &rx);
    // Standard output into tcpdump -r -, as an operator pipes it.
    let levee = levee_tests::daemon::levee_bin();
    let pipe = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --socket {} capture --source {FLOODER}/32 --count 5 --duration 20s -w - | tcpdump -nn -r -",
            levee.display(),
            d.socket.display()
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_capture(&d, 1);
    send_udp(&d.lab, FLOODER, addr(PROTECTED_V4, 9000));
    let out = pipe.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        lines.iter().all(|l| l.contains(&format!("{FLOODER}."))),
        "{stdout}"
    );

    // A budget of 10 a second per CPU: a burst of 200 drops leaves at most 10 per CPU and
    // second copied, and every other match counted as skipped.
    let file = d.dir.join("budget.pcapng");
    let stats_before = d.stats();
    let capture = start_capture(
        &d,
        &[
            "--action",
            "drop",
            "--source",
            &format!("{FLOODER}/32"),
            "--budget",
            "10",
            "--duration",
            "2s",
            "-w",
            file.to_str().unwrap(),
        ],
    );
    send_udp(&d.lab, FLOODER, addr(PROTECTED_V4, 9000));
    let out = finish(capture);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let dropped =
        packets(&d.stats(), Action::Drop, None) - packets(&stats_before, Action::Drop, None);
    let written = counted(&stderr, "packets written");
    let skipped = counted(&stderr, "over the budget");
    // The kernel budgets per possible CPU; the burst may straddle two of its seconds.
    let cpus = aya::util::nr_cpus().unwrap() as u64;
    assert!(dropped >= DATAGRAMS - 20, "only {dropped} dropped");
    assert!(
        written >= 10 && written <= 2 * 10 * cpus,
        "{written} written: {stderr}"
    );
    assert_eq!(written + skipped, dropped, "{stderr}");
    assert_eq!(tcpdump(&file).len() as u64, written);
}

#[test]
fn a_client_that_leaves_ends_the_capture_and_bad_options_are_refused() {
    let mut d = limited();
    let file = d.dir.join("left.pcapng");
    let mut capture = start_capture(&d, &["--duration", "1h", "-w", file.to_str().unwrap()]);
    // One at a time.
    let second = d.cli(&["capture", "-w", "/dev/null"]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("a capture is already running"), "{err}");
    // The client is killed: the daemon ends the capture within a drain or two.
    capture.kill().unwrap();
    capture.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("the client left") {
        assert!(Instant::now() < deadline, "capture not ended: {}", d.log());
        sleep(Duration::from_millis(50));
    }
    // A new one can start, and ends at its duration.
    let out = finish(start_capture(&d, &["--duration", "1s", "-w", "/dev/null"]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration over"));

    for (args, needle) in [
        (&["--snaplen", "0"][..], "--snaplen 0: expected 1 to 256"),
        (&["--snaplen", "300"], "--snaplen 300"),
        (&["--budget", "0"], "--budget 0"),
        (&["--count", "0"], "--count 0"),
        (&["--reason", "nope"], "unknown reason \"nope\""),
        (&["--source", "10.0.0.1/8"], "host bits set"),
        (&["--duration", "soon"], "malformed duration"),
    ] {
        let mut a = vec!["capture"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-w", "/dev/null"]);
        let out = d.cli(&a);
        assert!(!out.status.success(), "{a:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{a:?}: {err}");
    }
    // The file: an existing one is refused (untouched) unless --force, a symlink always.
    let existing = d.dir.join("existing.pcapng");
    std::fs::write(&existing, b"keep me").unwrap();
    let link = d.dir.join("link.pcapng");
    std::os::unix::fs::symlink(&existing, &link).unwrap();
    for (path, force, needle) in [
        (
            &existing,
            false,
            "exists: refusing to overwrite it (--force overwrites)",
        ),
        (&link, false, "is a symlink"),
        (&link, true, "is a symlink"),
    ] {
        let mut a = vec!["capture", "--duration", "1s", "-w", path.to_str().unwrap()];
        if force {
            a.push("--force");
        }
        let out = d.cli(&a);
        assert!(!out.status.success(), "{a:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{a:?}: {err}");
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep me", "{a:?}");
    }
    assert_eq!(
        d.log().matches("capture started").count(),
        2,
        "a refused capture started"
    );
    let forced = ["capture", "--duration", "1s", "--force", "-w"];
    let out = d.cli(&[&forced[..], &[existing.to_str().unwrap()]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read(&existing).unwrap();
    assert!(
        written.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]),
        "pcapng, from the start"
    );
    // Levee stopping ends a capture, and says so.
    let capture = start_capture(&d, &["--duration", "1h", "-w", "/dev/null"]);
    assert!(d.stop(), "levee did not stop cleanly: {}", d.log());
    let out = capture.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("levee is stopping"),
        "{err}"
    );
}
