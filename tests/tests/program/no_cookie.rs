//! Issue 21: a SYN the program cannot answer with a cookie skips no stage. It comes back from
//! the cookie program to the main one, meets the per-source limiter, the aggregate ceiling
//! and the received rules as any packet, and is counted `syn_no_cookie`, never `clean`.

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason},
    config::Rate,
    parse::IPPROTO_TCP,
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS};

use crate::{
    DST4, SRC4,
    strict::{Host, listen, rule, strict, syn},
};

/// A limit of one packet, then none (the test thread keeps one CPU).
const ONE_THEN_NONE: Rate = Rate {
    pps: 1,
    burst_packets: 1,
    bits_per_sec: 0,
    burst_bytes: 0,
};

/// The program with `cfg`, TCP `port` of DST4 served, and the kernel making no cookies, as
/// with tcp_syncookies set to 0 behind Levee's back (the test puts it back).
fn without_cookies(cfg: Config, port: u16) -> Harness {
    let mut h = Harness::new(cfg);
    h.dp.set_services(&[rule(IPPROTO_TCP, port, &format!("{DST4}/32"))])
        .unwrap();
    std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "0").expect("tcp_syncookies");
    h
}

#[test]
fn a_syn_without_a_cookie_meets_the_later_stages() {
    let host = Host::new();
    host.run(|| {
        let (_listener, port) = listen(DST4);
        let mut cfg = strict(Mode::Enforce);
        // The SYN class's aggregate ceiling: one SYN, then none (this thread keeps one CPU).
        cfg.aggregate[Class::TcpSyn as usize] = ONE_THEN_NONE.encode();
        let h = without_cookies(cfg, port);
        h.expect(
            "a SYN without a cookie, under the ceiling",
            &syn(SRC4, DST4, 40000, port, &[]),
            XDP_PASS,
            Action::Pass,
            Reason::SynNoCookie,
            Class::TcpSyn,
        );
        h.expect(
            "the next one, over the ceiling",
            &syn(SRC4, DST4, 40001, port, &[]),
            XDP_DROP,
            Action::Drop,
            Reason::Aggregate,
            Class::TcpSyn,
        );
        // Cookies again: answered, as before, whatever the ceiling says.
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "2").expect("tcp_syncookies");
        h.expect(
            "a SYN with cookies back",
            &syn(SRC4, DST4, 40002, port, &[]),
            3,
            Action::Drop,
            Reason::SynCookie,
            Class::TcpSyn,
        );
    });
}

#[test]
fn a_syn_without_a_cookie_shares_the_unknown_budget() {
    let host = Host::new();
    host.run(|| {
        let (_listener, port) = listen(DST4);
        let mut cfg = strict(Mode::Enforce);
        // The service's budget for unknown sources: one SYN, then none.
        cfg.unknown_budget = ONE_THEN_NONE.encode();
        let h = without_cookies(cfg, port);
        h.expect(
            "a SYN without a cookie, within the budget",
            &syn(SRC4, DST4, 40000, port, &[]),
            XDP_PASS,
            Action::Pass,
            Reason::SynNoCookie,
            Class::TcpSyn,
        );
        // A random-source flood without cookies is held to the budget, not passed whole.
        h.expect(
            "a SYN without a cookie from another source, over the budget",
            &syn("198.18.7.7", DST4, 40001, port, &[]),
            XDP_DROP,
            Action::Drop,
            Reason::UnknownBudget,
            Class::TcpSyn,
        );
        std::fs::write("/proc/sys/net/ipv4/tcp_syncookies", "2").expect("tcp_syncookies");
    });
}
