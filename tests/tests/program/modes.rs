//! The four modes: off passes everything unchecked, monitor counts what it would drop, lockdown
//! drops all IP that is not allowlisted, and a switch between them needs no reload. Non-IP
//! frames pass in all of them. What each mode makes of a particular rule is tested with the
//! rule.

use filter_common::{
    abi::{Action, Class, Mode, Reason},
    frames::arp,
    parse::TCP_SYN,
};
use levee_tests::{Case, XDP_DROP, XDP_PASS, tcp, udp};

use crate::{DST4, DST6, SRC4, SRC6, enforce, net};

#[test]
fn non_ip_passes_in_every_mode() {
    let mut h = enforce();
    for mode in Mode::ALL {
        h.set_mode(mode);
        h.expect(
            mode.name(),
            &arp(),
            XDP_PASS,
            Action::Pass,
            Reason::NonIp,
            Class::Other,
        );
    }
}

#[test]
fn mode_off_passes_everything_without_checks() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.0/24"), None).unwrap();
    h.set_mode(Mode::Off);
    h.expect_all(&[
        Case {
            what: "blocklisted in off".into(),
            frame: udp(SRC4, DST4, 1, 2),
            xdp: XDP_PASS,
            action: Action::Pass,
            reason: Reason::ModeOff,
            class: Class::Udp,
        },
        Case {
            what: "amp port in off".into(),
            frame: udp(SRC6, DST6, 123, 2),
            xdp: XDP_PASS,
            action: Action::Pass,
            reason: Reason::ModeOff,
            class: Class::Udp,
        },
    ]);
}

#[test]
fn lockdown_drops_all_ip_that_is_not_allowlisted() {
    let mut h = enforce();
    h.dp.allow(net("198.18.1.10/32")).unwrap();
    h.set_mode(Mode::Lockdown);
    h.expect_all(&[
        Case {
            what: "allowlisted".into(),
            frame: udp(SRC4, DST4, 1, 2),
            xdp: XDP_PASS,
            action: Action::Pass,
            reason: Reason::Allowlisted,
            class: Class::Udp,
        },
        Case {
            what: "other v4".into(),
            frame: udp("198.18.1.11", DST4, 1, 2),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::Lockdown,
            class: Class::Udp,
        },
        Case {
            what: "v6 (empty v6 allowlist)".into(),
            frame: tcp(SRC6, DST6, TCP_SYN),
            xdp: XDP_DROP,
            action: Action::Drop,
            reason: Reason::Lockdown,
            class: Class::TcpSyn,
        },
        Case {
            what: "arp".into(),
            frame: arp(),
            xdp: XDP_PASS,
            action: Action::Pass,
            reason: Reason::NonIp,
            class: Class::Other,
        },
    ]);
}

#[test]
fn mode_switches_without_reload() {
    let mut h = enforce();
    h.dp.block(net("198.18.1.10/32"), None).unwrap();
    let f = udp(SRC4, DST4, 1, 2);
    for (mode, xdp, action, reason) in [
        (Mode::Enforce, XDP_DROP, Action::Drop, Reason::Blocklisted),
        (
            Mode::Monitor,
            XDP_PASS,
            Action::WouldDrop,
            Reason::Blocklisted,
        ),
        (Mode::Off, XDP_PASS, Action::Pass, Reason::ModeOff),
        (Mode::Lockdown, XDP_DROP, Action::Drop, Reason::Lockdown),
        (Mode::Enforce, XDP_DROP, Action::Drop, Reason::Blocklisted),
    ] {
        h.set_mode(mode);
        h.expect(mode.name(), &f, xdp, action, reason, Class::Udp);
    }
}
