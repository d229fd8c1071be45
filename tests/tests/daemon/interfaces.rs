//! Where and how the daemon attaches: several interfaces from one config and one command, and
//! the XDP attach mode (`auto` falls back to generic where native is unavailable and says so;
//! `native` refuses). Not to be confused with the filter's modes, in `modes`.

use std::{thread::sleep, time::Duration};

use levee_tests::{
    daemon::DaemonLab,
    netns::CLIENT_V4,
    traffic::{DATAGRAMS, addr, drain, udp_receiver, warm_up},
};

use crate::{delivered, receiver, stderr};

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
    let status = d.status();
    let names: Vec<&str> = status.interfaces.iter().map(|i| i.name.as_str()).collect();
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
    assert_eq!(d.status().interfaces[0].attach, "generic");
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
