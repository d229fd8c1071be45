//! Restarts: with `keep_on_exit` the filter and its maps outlive the daemon and are adopted;
//! without it the filter is detached, and what the CLI set comes back from the state file.

use std::{thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee::api::views::Prefix;
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{DATAGRAMS, addr, warm_up},
};

use crate::{delivered, receiver};

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
    assert_eq!(d.status().interfaces[0].attach, "adopted");
    assert_eq!(
        d.allow_list(),
        [Prefix("2001:db8:99::/48".parse().unwrap())]
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
    let list = d.block_list();
    assert_eq!(list[0].cidr.0.to_string(), format!("{}/32", CLIENT_V4[1]));
    assert_eq!(list[0].reason.as_deref(), Some("reflection"));
    let ttl = list[0].ttl_secs.unwrap();
    assert!((3590..=3600).contains(&ttl), "TTL continues: {ttl}");
    assert_eq!(d.allow_list(), [Prefix("192.0.2.0/24".parse().unwrap())]);
    assert_eq!(d.limits().per_source["icmp"].pps, 77);
    assert_eq!(delivered(&d, &rx, CLIENT_V4[1]), 0, "block active again");
}

/// Issue 22: a flood signature the operator pinned is kept in the state file and in force
/// again after a restart (the program drops what matches it), until it is unpinned.
#[test]
fn a_pinned_flood_signature_is_in_force_again_after_a_restart() {
    let mut d = DaemonLab::new();
    d.write_config("mode = \"enforce\"\n[strict]\nmode = \"always\"");
    // As an earlier run left it, after `levee signatures pin`.
    std::fs::write(
        d.dir.join("state.json"),
        r#"{"mode": null, "blocks": [], "allows": [], "limits": null, "aggregate": null,
            "pinned_signatures": [{"signature": "tcp dport 5004 sport 40000",
                                   "attack_cover": 0.99, "calm_cover": 0.0}]}"#,
    )
    .unwrap();
    let listed = |d: &DaemonLab| d.status().strict.signatures;
    let dropped = |d: &DaemonLab| packets(&d.stats(), Action::Drop, Some(Reason::FloodSignature));
    // A SYN from source port `sport` (no answer comes: the connection times out).
    let syn_from = |d: &DaemonLab, sport: u16| {
        d.lab.client.run(|| {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&addr(CLIENT_V4[0], sport).into()).unwrap();
            let _ = s.connect_timeout(&addr(PROTECTED_V4, 5004).into(), Duration::from_millis(500));
        })
    };
    for round in ["restored", "kept by the running daemon"] {
        d.start();
        // Strict engages at the first tick.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !d.status().strict.engaged && std::time::Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
        let sigs = listed(&d);
        assert_eq!(sigs.len(), 1, "{round}: {sigs:?}");
        assert!(sigs[0].pinned, "{round}: {sigs:?}");
        assert_eq!(sigs[0].signature, "tcp dport 5004 sport 40000", "{round}");
        let before = dropped(&d);
        syn_from(&d, 40_000);
        let matched = dropped(&d);
        assert!(
            matched > before,
            "{round}: the program drops a matching SYN: {:?}",
            d.stats()
        );
        syn_from(&d, 40_001);
        assert_eq!(dropped(&d), matched, "{round}: and only what matches");
        assert!(d.stop());
    }
    d.start();
    d.cli_ok(&["signatures", "unpin", "1"]);
    // No attack: an unpinned signature leaves at the next tick.
    sleep(Duration::from_secs(2));
    assert!(listed(&d).is_empty(), "unpinned: {:?}", listed(&d));
    assert!(d.stop());
    d.start();
    assert!(listed(&d).is_empty(), "unpinned, not restored");
}
