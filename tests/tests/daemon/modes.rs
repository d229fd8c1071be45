//! The filter's modes through the daemon: monitor passes everything and counts (and samples)
//! what it would drop, `levee mode` switches at run time, and lockdown passes only the
//! allowlist, over IPv4 and IPv6 alike.

use std::{thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    ip,
    netns::CLIENT_V4,
    traffic::{DATAGRAMS, addr, drain, send_udp, udp_receiver, warm_up},
};

use crate::{delivered, receiver};

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
    assert_eq!(
        packets(&d.stats(), Action::WouldDrop, Some(Reason::Blocklisted)),
        DATAGRAMS
    );
    // Every header was sampled: `top` ranks the flooding source first, all its packets
    // would-be drops, at a rate estimated from the samples.
    sleep(Duration::from_millis(1100));
    let top = d.top(5);
    assert_eq!(top[0].source, ip(CLIENT_V4[1]), "{top:?}");
    assert_eq!(top[0].class, "udp");
    assert_eq!(top[0].dropped_pct, 100);
    assert!(top[0].pps >= DATAGRAMS / 10, "{top:?}");
    assert!(d.cli_ok(&["top"]).contains(CLIENT_V4[1]));
    assert_eq!(d.cli_ok(&["mode", "enforce"]), "enforce\n");
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0, "enforce drops it");
    // Read as raw JSON on purpose: these field names are what users script against (the
    // other tests read the typed views, which would follow a rename).
    let status = d.cli_json(&["status"]);
    assert_eq!(status["mode"], "enforce");
    assert_eq!(status["interfaces"][0]["attach"], "native");
    for f in ["pass_pps", "pass_bps", "drop_pps", "drop_bps"] {
        assert!(status["rates"][f].is_u64(), "status rates.{f}: {status}");
    }
    assert!(d.cli_ok(&["status"]).contains(" pps ("));
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
