//! The CLI as an operator meets it: every error one line that says what is wrong and changes
//! nothing, a bad config field named with its line, and `levee top` on a terminal.

use std::{thread::sleep, time::Duration};

use levee_tests::{daemon::DaemonLab, netns::CLIENT_V4, traffic::warm_up};

use crate::{delivered, receiver, stderr};

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

/// An escalation config that cannot work (receiving FlowSpec rules without a BGP daemon) is
/// refused at start with one line, and nothing is attached.
#[test]
fn escalation_config_that_cannot_work_is_refused_at_start() {
    let d = DaemonLab::new();
    d.write_config(
        "[escalation]\nmode = \"dry-run\"\nasn = 64512\nrouter_id = \"192.0.2.1\"\n\
         neighbors = [{ address = \"10.0.0.1\", asn = 65000 }]\n\
         protected_prefixes = [\"198.18.0.0/15\"]\naccept_flowspec = true",
    );
    let out = d.run_expecting_exit();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("field escalation.accept_flowspec: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!d.xdp_attached());
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

/// `levee check-config FILE`, as a deployment pipeline runs it before a reload: exit 0 and a
/// summary for a good file; one line naming the field and its line, or the list file, for a
/// bad one. No daemon is asked.
#[test]
fn check_config_says_ok_or_names_the_field_and_line() {
    let dir = std::env::temp_dir().join(format!("levee-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |text: &str| {
        let path = dir.join("levee.toml");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(levee_tests::daemon::levee_bin())
            .args(["--socket", "/nonexistent/levee.sock", "check-config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = run("mode = \"enforce\"\n[lists]\nblock = [\"198.51.100.0/24\"]\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(": ok (") && said.contains("mode enforce"),
        "{said}"
    );
    for (text, want) in [
        (
            "mode = \"enforce\"\n[limits.udp]\npps = 5\nbrust = 3\n",
            "line 4, column 1: unknown field `brust`",
        ),
        (
            "[escalation]\nmode = \"on\"\n",
            "field escalation.protected_prefixes",
        ),
        (
            "[lists]\nblock_files = [\"/nonexistent/blocks.txt\"]\n",
            "/nonexistent/blocks.txt",
        ),
    ] {
        let out = run(text);
        let err = stderr(&out);
        assert!(!out.status.success(), "{text} was accepted");
        assert!(err.contains(want), "{text}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The man pages and completion scripts come from the CLI's own definitions: a page for
/// levee(8) and each subcommand that `man -l` renders, and completion scripts that know the
/// commands (the bash one accepted by `bash -n`).
#[test]
fn man_pages_and_completions_are_generated_from_the_cli() {
    let dir = std::env::temp_dir().join(format!("levee-man-{}", std::process::id()));
    let levee = |args: &[&str]| {
        std::process::Command::new(levee_tests::daemon::levee_bin())
            .args(args)
            .output()
            .unwrap()
    };
    let out = levee(&["man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for want in [
        "levee.8",
        "levee-run.8",
        "levee-block-add.8",
        "levee-escalate-flowspec.8",
        "levee-check-config.8",
    ] {
        assert!(
            pages.iter().any(|p| p.ends_with(want)),
            "{want} in {pages:?}"
        );
    }
    assert!(
        !pages.iter().any(|p| p.ends_with("levee-man.8")),
        "the hidden command has none"
    );
    for page in &pages {
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .expect("man (cargo xtask setup installs man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("NAME"),
            "{}: {text}",
            page.display()
        );
    }
    let page = std::fs::read_to_string(dir.join("levee-escalate-flowspec.8")).unwrap();
    assert!(
        page.contains("protected_prefixes"),
        "the arguments' help is in the page"
    );
    let bash = dir.join("levee.bash");
    let out = levee(&["completions", "bash"]);
    std::fs::write(&bash, &out.stdout).unwrap();
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .unwrap();
    assert!(ok.success());
    for shell in ["bash", "zsh", "fish"] {
        let out = levee(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && script.contains("escalate"),
            "{shell}: {script}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
