//! Restarts: with `keep_on_exit` the filter and its maps outlive the daemon and are adopted;
//! without it the filter is detached, and what the CLI set comes back from the state file.

use levee::api::views::Prefix;
use levee_tests::{
    daemon::DaemonLab,
    netns::CLIENT_V4,
    traffic::{DATAGRAMS, warm_up},
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
