//! The blocklist and allowlist: longest-prefix matches on IPv4 and IPv6 sources, an entry's
//! expiry enforced by the program itself (and by what it remembers of blocked sources), and
//! the allowlist above every other rule.

use std::{thread::sleep, time::Duration};

use filter_common::{
    abi::{Action, Class, Mode, Reason},
    parse::{TCP_FIN, TCP_SYN},
};
use levee_tests::{Case, XDP_DROP, XDP_PASS, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, clean, enforce, net, objected};

#[test]
fn blocklist_v4_and_v6_prefixes_in_every_mode() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    h.dp.block(net("2001:db8:1::/48"), None).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce] {
        h.set_mode(mode);
        let (xdp, action) = objected(mode);
        let m = mode.name();
        h.expect_all(&[
            Case {
                what: format!("v4 in /24 in {m}"),
                frame: udp(SRC4, DST4, 1, 2),
                xdp,
                action,
                reason: Reason::Blocklisted,
                class: Class::Udp,
            },
            Case {
                what: format!("v6 in /48 in {m}"),
                frame: tcp(SRC6, DST6, TCP_SYN),
                xdp,
                action,
                reason: Reason::Blocklisted,
                class: Class::TcpSyn,
            },
            clean(
                format!("v4 outside in {m}"),
                udp("198.18.2.1", DST4, 1, 2),
                Class::Udp,
            ),
            clean(
                format!("v6 outside in {m}"),
                udp("2001:db8:2::1", DST6, 1, 2),
                Class::Udp,
            ),
        ]);
    }
    assert!(h.dp.unblock(net("198.18.1.0/24")).unwrap());
    assert!(
        !h.dp.unblock(net("198.18.1.0/24")).unwrap(),
        "second removal finds nothing"
    );
    h.expect(
        "unblocked",
        &udp(SRC4, DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Clean,
        Class::Udp,
    );
}

#[test]
fn blocklist_entry_expires_in_the_data_plane() {
    let h = {
        let mut h = enforce();
        h.dp.block(net("198.18.1.10/32"), Some(Duration::from_millis(300)))
            .unwrap();
        h.dp.block(net("2001:db8:1:2::/64"), Some(Duration::from_millis(300)))
            .unwrap();
        h
    };
    h.expect_all(&[
        Case {
            what: "v4 before expiry".into(),
            frame: udp(SRC4, DST4, 1, 2),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::Blocklisted,
            class: Class::Udp,
        },
        Case {
            what: "v6 before expiry".into(),
            frame: udp(SRC6, DST6, 1, 2),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::Blocklisted,
            class: Class::Udp,
        },
    ]);
    sleep(Duration::from_millis(400));
    // Nothing removed the entries: the program itself ignores them now.
    h.expect_all(&[
        clean("v4 after expiry", udp(SRC4, DST4, 1, 2), Class::Udp),
        clean("v6 after expiry", udp(SRC6, DST6, 1, 2), Class::Udp),
    ]);
}

/// The program remembers what the IPv4 blocklist answered for a source (BLOCKED_V4): an
/// entry's expiry, or none. Any change to a list makes what it remembers stale, so a new
/// entry and a new TTL apply at once.
#[test]
fn what_the_program_remembers_of_the_blocklist_follows_every_change() {
    let mut h = enforce();
    let blocked = |what: &str| Case {
        what: what.into(),
        frame: udp(SRC4, DST4, 1, 2),
        xdp: XDP_DROP,
        action: Action::Drop,
        reason: Reason::Blocklisted,
        class: Class::Udp,
    };
    let passed = |what: &str| clean(what, udp(SRC4, DST4, 1, 2), Class::Udp);
    // A neighbour listed: the source's block is looked at, and found not listed.
    h.dp.block(net("198.18.1.99/32"), None).unwrap();
    // Several runs, to leave answers on both CPUs, whichever the runs land on.
    for _ in 0..4 {
        h.expect_all(&[passed("not listed")]);
        sleep(Duration::from_millis(5));
    }
    h.dp.block(net("198.18.1.10/32"), Some(Duration::from_secs(3600)))
        .unwrap();
    for _ in 0..4 {
        h.expect_all(&[blocked("blocked for an hour")]);
        sleep(Duration::from_millis(5));
    }
    h.dp.block(net("198.18.1.10/32"), Some(Duration::from_millis(300)))
        .unwrap();
    h.expect_all(&[blocked("blocked for 300 ms now")]);
    sleep(Duration::from_millis(400));
    for _ in 0..4 {
        h.expect_all(&[passed("its new TTL is over")]);
        sleep(Duration::from_millis(5));
    }
}

#[test]
fn allowlist_wins_over_everything_in_every_mode() {
    let mut h = enforce();
    h.dp.block(net("198.18.0.0/16"), None).unwrap();
    h.dp.block(net("2001:db8::/32"), None).unwrap();
    h.dp.allow(net("198.18.1.0/24")).unwrap();
    h.dp.allow(net("2001:db8:1:2::/64")).unwrap();
    for mode in [Mode::Monitor, Mode::Enforce, Mode::Lockdown] {
        h.set_mode(mode);
        let m = mode.name();
        h.expect_all(&[
            Case {
                what: format!("v4 allowed in {m}"),
                frame: udp(SRC4, DST4, 123, 2),
                xdp: XDP_PASS,
                action: Action::Pass,
                reason: Reason::Allowlisted,
                class: Class::Udp,
            },
            Case {
                what: format!("v6 allowed in {m}"),
                frame: tcp(SRC6, DST6, TCP_SYN | TCP_FIN),
                xdp: XDP_PASS,
                action: Action::Pass,
                reason: Reason::Allowlisted,
                class: Class::TcpSyn,
            },
        ]);
    }
}

/// The list summary lets a source skip the tries only if no prefix can match it: every
/// prefix, however it covers the address blocks, keeps matching; a removal clears just the
/// bits no remaining prefix needs.
#[test]
fn the_list_summary_never_hides_a_prefix() {
    let mut h = enforce();
    for p in [
        "198.18.1.0/24",
        "198.18.1.7/32",
        "10.0.0.0/8",
        "2001:db8:aa00::/40",
        "2001:db8:1:2::/64",
    ] {
        h.dp.block(net(p), None).unwrap();
    }
    h.dp.allow(net("203.0.113.0/24")).unwrap();
    let blocked = |what: &str, frame: Vec<u8>| Case {
        what: what.into(),
        frame,
        xdp: XDP_DROP,
        action: Action::Drop,
        reason: Reason::Blocklisted,
        class: Class::Udp,
    };
    h.expect_all(&[
        blocked("in the /24 and the /32", udp("198.18.1.7", DST4, 1, 2)),
        blocked("in the /24", udp("198.18.1.8", DST4, 1, 2)),
        blocked(
            "in the /8, far from its first /16",
            udp("10.200.3.4", DST4, 1, 2),
        ),
        blocked(
            "in the /40, a /48 of its 256",
            udp("2001:db8:aaf3:9::1", DST6, 1, 2),
        ),
        blocked("in the /64", udp(SRC6, DST6, 1, 2)),
        clean("another /16", udp("198.19.1.7", DST4, 1, 2), Class::Udp),
        clean(
            "another /48",
            udp("2001:db8:ab00::1", DST6, 1, 2),
            Class::Udp,
        ),
    ]);
    h.expect(
        "allowlisted",
        &udp("203.0.113.9", DST4, 1, 2),
        XDP_PASS,
        Action::Pass,
        Reason::Allowlisted,
        Class::Udp,
    );
    use filter_common::abi::summary;
    // Whether the blocklist's (or with `0`, the allowlist's) bit of the address is set.
    let bit_set = |h: &levee_tests::Harness, list: u32, addr: &str| {
        let words = h.dp.list_summary().unwrap();
        let bit = list
            + match addr.parse::<std::net::IpAddr>().unwrap() {
                std::net::IpAddr::V4(a) => summary::bit_v4(a.octets()),
                std::net::IpAddr::V6(a) => summary::bit_v6(&a.octets()),
            };
        words[(bit >> 6) as usize] >> (bit & 63) & 1 != 0
    };
    let block = summary::BLOCK;
    assert!(
        !bit_set(&h, block, "198.19.1.7"),
        "a block with no prefix is clear"
    );
    assert!(
        !bit_set(&h, 0, "198.18.1.7"),
        "the allowlist's bits are its own"
    );
    assert!(bit_set(&h, 0, "203.0.113.9") && !bit_set(&h, block, "203.0.113.9"));
    // The /32 still needs the 198.18/16 bit after the /24 goes.
    assert!(h.dp.unblock(net("198.18.1.0/24")).unwrap());
    h.expect_all(&[
        blocked("the /32 after its /24 went", udp("198.18.1.7", DST4, 1, 2)),
        clean(
            "the rest of the /24",
            udp("198.18.1.8", DST4, 1, 2),
            Class::Udp,
        ),
    ]);
    assert!(bit_set(&h, block, "198.18.1.7"));
    assert!(h.dp.unblock(net("198.18.1.7/32")).unwrap());
    assert!(
        !bit_set(&h, block, "198.18.1.7"),
        "no prefix left in 198.18/16"
    );
    assert!(h.dp.unblock(net("10.0.0.0/8")).unwrap());
    assert!(!bit_set(&h, block, "10.200.3.4"));
    assert!(bit_set(&h, block, "2001:db8:aaf3:9::1") && bit_set(&h, 0, "203.0.113.9"));
    h.expect_all(&[
        clean(
            "after the /8 went",
            udp("10.200.3.4", DST4, 1, 2),
            Class::Udp,
        ),
        blocked("the /40 stays", udp("2001:db8:aaf3:9::1", DST6, 1, 2)),
    ]);
}

/// Lists pinned by a run whose summary is missing (an older Levee, or a lost pin) are
/// summarised again at load: the reused blocklist holds from the first packet.
#[test]
fn reused_lists_without_a_summary_still_match() {
    use filter_common::abi::map;
    use levee::dataplane::{Dataplane, LoadOptions};
    // A bpffs of the test's own: /sys/fs/bpf is not mounted on a fresh machine (the test
    // passed only after a daemon test had mounted it).
    let bpffs = std::path::PathBuf::from(format!("/run/levee-test-summary-{}", std::process::id()));
    std::fs::create_dir_all(&bpffs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&bpffs)
        .status()
        .expect("mount")
        .success();
    assert!(mounted, "cannot mount bpffs at {}", bpffs.display());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unmount = Unmount(bpffs.clone());
    let dir = bpffs.join("levee");
    let options = LoadOptions {
        max_sources: 1 << 12,
        pin_dir: Some(dir.clone()),
        ..LoadOptions::default()
    };
    let config = filter_common::abi::Config::new(Mode::Enforce);
    let mut first = Dataplane::load(&options, config).unwrap();
    first.block(net("198.18.1.0/24"), None).unwrap();
    first.block(net("2001:db8:1::/48"), None).unwrap();
    drop(first);
    std::fs::remove_file(dir.join(map::LIST_SUMMARY)).unwrap();
    let second = Dataplane::load(&options, config).unwrap();
    let verdicts = [
        second.test_run(&udp(SRC4, DST4, 1, 2), 1).unwrap().0,
        second
            .test_run(&udp("2001:db8:1::9", DST6, 1, 2), 1)
            .unwrap()
            .0,
    ];
    drop(second);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(verdicts, [XDP_DROP, XDP_DROP]);
}
