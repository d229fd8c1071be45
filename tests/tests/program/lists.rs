//! The blocklist and allowlist: longest-prefix matches on IPv4 and IPv6 sources, an entry's
//! expiry enforced by the program itself, and the allowlist above every other rule.

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
