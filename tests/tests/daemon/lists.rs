//! The blocklist from the CLI (add, delete, TTL expiry, stats) and from block files of a
//! million prefixes. Allowlist tests live with lockdown, in `modes`.

use std::{thread::sleep, time::Duration};

use filter_common::abi::{Action, Reason};
use levee_tests::{
    daemon::{DaemonLab, packets},
    netns::CLIENT_V4,
    traffic::{DATAGRAMS, warm_up},
};

use crate::{delivered, receiver};

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
    let list = d.block_list();
    assert_eq!(list[0].cidr.0.to_string(), format!("{bad}/32"));
    assert_eq!(list[0].reason.as_deref(), Some("flooding"));
    assert_eq!(list[0].ttl_secs, None);

    d.cli_ok(&["block", "del", bad]);
    assert_eq!(
        delivered(&d, &rx, bad),
        DATAGRAMS,
        "unblocked source delivered"
    );
    assert_eq!(d.block_list().len(), 0);

    d.cli_ok(&["block", "add", "198.18.0.0/24", "--ttl", "2s"]);
    let list = d.block_list();
    assert!(list[0].ttl_secs.unwrap() <= 2, "{list:?}");
    assert_eq!(delivered(&d, &rx, good), 0, "the /24 covers every client");
    sleep(Duration::from_millis(2500));
    assert_eq!(delivered(&d, &rx, good), DATAGRAMS, "block expired");
    assert_eq!(d.block_list().len(), 0, "expired entry removed");

    assert_eq!(
        packets(&d.stats(), Action::Drop, Some(Reason::Blocklisted)),
        2 * DATAGRAMS,
        "stats count every blocked datagram"
    );
    assert!(d.stop(), "clean exit on SIGTERM");
    assert!(!d.xdp_attached(), "detached on SIGTERM");
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
    assert_eq!(
        d.status().blocklist_entries,
        1_000_000,
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
