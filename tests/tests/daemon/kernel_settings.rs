//! The kernel settings strict's SYN cookies depend on (issue 21): watched every tick, not
//! assumed. Those Levee owns are put back when something changes them behind its back, and
//! the change is logged and counted; the originals are kept with the state, so even a run
//! that crashed has them put back by the next one's stop.

use std::{thread::sleep, time::Duration};

use levee_tests::daemon::DaemonLab;

fn sysctl(d: &DaemonLab, name: &str) -> String {
    d.lab.protected.run(|| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_string()
    })
}

fn set_sysctl(d: &DaemonLab, name: &str, value: &str) {
    d.lab.protected.run(|| {
        std::fs::write(format!("/proc/sys/net/ipv4/{name}"), value)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    });
}

/// `tcp_syncookies` set to 0 while Levee runs with strict: back to 2 within two ticks, a
/// warning in the log, and the metric counts it; `tcp_sack` (followed, not owned) stays as
/// the operator set it, and is counted as followed.
#[test]
fn an_owned_setting_changed_behind_levees_back_is_put_back_and_counted() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    assert_eq!(sysctl(&d, "tcp_syncookies"), "2");
    set_sysctl(&d, "tcp_syncookies", "0");
    set_sysctl(&d, "tcp_sack", "0");
    sleep(Duration::from_millis(2500));
    assert_eq!(sysctl(&d, "tcp_syncookies"), "2", "{}", d.log());
    assert_eq!(
        sysctl(&d, "tcp_sack"),
        "0",
        "a followed setting is left alone"
    );
    assert!(
        d.log()
            .contains("kernel setting changed behind Levee's back; put back"),
        "{}",
        d.log()
    );
    let metrics = crate::metrics::scrape(&d);
    for line in [
        "levee_kernel_setting_changes_total{setting=\"net.ipv4.tcp_syncookies\",response=\"put_back\"} 1",
        "levee_kernel_setting_changes_total{setting=\"net.ipv4.tcp_sack\",response=\"followed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(d.stop());
    assert_eq!(sysctl(&d, "tcp_syncookies"), "1", "put back at stop");
    set_sysctl(&d, "tcp_sack", "1");
}

/// A run killed with SIGKILL leaves `tcp_syncookies` at 2; the next run takes the original
/// over from the state file, and its stop puts 1 back. Killed again, the next run has strict
/// off: it owns no setting, and puts the originals back at start.
#[test]
fn a_crashed_runs_kernel_settings_are_put_back_by_the_next_stop() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    assert_eq!(
        sysctl(&d, "tcp_syncookies"),
        "1",
        "a new namespace's default"
    );
    d.start();
    assert_eq!(sysctl(&d, "tcp_syncookies"), "2");
    d.signal(libc::SIGKILL);
    d.reap();
    assert_eq!(sysctl(&d, "tcp_syncookies"), "2", "nobody put it back");
    d.start();
    assert!(
        d.log()
            .contains("kernel setting left by an earlier run; put back at stop"),
        "{}",
        d.log()
    );
    assert!(d.stop());
    assert_eq!(sysctl(&d, "tcp_syncookies"), "1", "{}", d.log());

    d.start();
    d.signal(libc::SIGKILL);
    d.reap();
    assert_eq!(sysctl(&d, "tcp_timestamps"), "2", "nobody put it back");
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"off\"");
    d.start();
    assert_eq!(
        sysctl(&d, "tcp_syncookies"),
        "1",
        "put back at start: {}",
        d.log()
    );
    assert_eq!(sysctl(&d, "tcp_timestamps"), "1", "{}", d.log());
    assert!(
        d.log().contains("put back now (strict is off)"),
        "{}",
        d.log()
    );
}

/// `tcp_syncookies` set to 0 behind Levee's back, then at once 200,000 random-source SYNs to a
/// served port, before the next tick puts the setting back: the SYNs that get no cookie meet
/// the later stages and the service's budget of unknown sources, so at least 99% of what the
/// program saw is still stopped in the driver, none counted `clean`.
#[test]
fn without_cookies_a_spoofed_syn_flood_is_still_stopped() {
    use filter_common::{
        abi::{Action, Reason},
        frames::L4,
        parse::TCP_SYN,
    };
    use levee_tests::{
        daemon::packets,
        netns::PROTECTED_V4,
        sender::send_frames,
        traffic::{addr, spoofed_frames},
    };
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    d.start();
    let _listener = d
        .lab
        .protected
        .run(|| std::net::TcpListener::bind(addr(PROTECTED_V4, 8080)).expect("listen"));
    // A tick to learn the listener as a service.
    sleep(Duration::from_millis(1500));
    let syns = spoofed_frames(
        &d.lab,
        |i| L4::Tcp {
            sport: 1024 + (i % 60_000) as u16,
            dport: 8080,
            flags: TCP_SYN,
        },
        200_000,
    );
    let before = d.stats();
    set_sysctl(&d, "tcp_syncookies", "0");
    d.lab
        .client
        .run(|| send_frames("lv1", &syns, 64))
        .expect("send");
    sleep(Duration::from_millis(2500));
    assert_eq!(sysctl(&d, "tcp_syncookies"), "2", "put back: {}", d.log());
    let after = d.stats();
    let delta = |action, reason| packets(&after, action, reason) - packets(&before, action, reason);
    let seen = delta(Action::Drop, None) + delta(Action::Pass, None);
    let stopped = delta(Action::Drop, None);
    let without_cookie = delta(Action::Pass, Some(Reason::SynNoCookie))
        + delta(Action::Drop, Some(Reason::UnknownBudget));
    eprintln!("seen {seen}, stopped {stopped}, without a cookie {without_cookie}");
    assert!(seen >= 10_000, "the flood reached the program: {seen}");
    assert!(
        without_cookie > 0,
        "some SYNs met the kernel without cookies: {after:?}"
    );
    // The lab's own chatter (IPv6 neighbour discovery) may pass clean; no flood SYN does.
    assert!(
        delta(Action::Pass, Some(Reason::Clean)) < 10,
        "flood SYNs passed clean: {after:?}"
    );
    assert!(
        stopped * 100 >= seen * 99,
        "{stopped} of {seen} stopped: {after:?}"
    );
}
