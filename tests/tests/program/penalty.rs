//! Issue 21: a SYN over its source's limit is answered with a cookie, not dropped, whether or
//! not strict is engaged, so a spoofer borrowing an address cannot deny it a connection.
//! Without a listener, or with strict configured off, the penalty drops as before.

use std::time::Duration;

use filter_common::{
    abi::{Action, Class, Config, Mode, Reason, flags},
    config::Rate,
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS};

use crate::{
    DST4, DST6, SRC4, SRC6,
    strict::{Host, listen, strict, syn},
};

const XDP_TX: u32 = 3;

/// Strict configured (flows tracked, the kernel's cookie settings Levee's) but not engaged;
/// one SYN per source, then a 10 s penalty.
fn one_syn_each(track_flows: bool) -> Config {
    let mut cfg = strict(Mode::Enforce);
    cfg.set_flag(flags::STRICT, false);
    cfg.set_flag(flags::TRACK_FLOWS, track_flows);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.sketch_threshold = 1;
    cfg.penalty_ns = Duration::from_secs(10).as_nanos() as u64;
    cfg.source[Class::TcpSyn as usize] = Rate {
        pps: 1,
        burst_packets: 1,
        ..Rate::default()
    }
    .encode();
    cfg
}

#[test]
fn a_penalised_syn_gets_a_cookie_v4_and_v6() {
    let host = Host::new();
    host.run(|| {
        for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
            let (_listener, port) = listen(dst);
            let h = Harness::new(one_syn_each(true));
            h.expect(
                &format!("{src}: the first SYN, within the limit"),
                &syn(src, dst, 40000, port, &[]),
                XDP_PASS,
                Action::Pass,
                Reason::Clean,
                Class::TcpSyn,
            );
            h.expect(
                &format!("{src}: the second, over it: a cookie SYN-ACK, not a drop"),
                &syn(src, dst, 40001, port, &[]),
                XDP_TX,
                Action::Drop,
                Reason::PenaltyCookie,
                Class::TcpSyn,
            );
            h.expect(
                &format!("{src}: the third, in the penalty: a cookie again"),
                &syn(src, dst, 40002, port, &[]),
                XDP_TX,
                Action::Drop,
                Reason::PenaltyCookie,
                Class::TcpSyn,
            );
        }
    });
}

#[test]
fn without_a_listener_or_cookies_the_penalty_drops() {
    let host = Host::new();
    host.run(|| {
        let (_listener, port) = listen(DST4);
        // Strict configured off: the kernel's cookie settings are not Levee's to rely on.
        let h = Harness::new(one_syn_each(false));
        h.expect(
            "strict off: the first SYN",
            &syn(SRC4, DST4, 40000, port, &[]),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::TcpSyn,
        );
        h.expect(
            "strict off: over the limit, dropped",
            &syn(SRC4, DST4, 40001, port, &[]),
            XDP_DROP,
            Action::Drop,
            Reason::SourceRate,
            Class::TcpSyn,
        );
        // Nothing listens on the port: no cookie can be made, the penalty drops.
        let h = Harness::new(one_syn_each(true));
        let closed = port.wrapping_add(1);
        h.expect(
            "no listener: the first SYN",
            &syn(SRC4, DST4, 40000, closed, &[]),
            XDP_PASS,
            Action::Pass,
            Reason::Clean,
            Class::TcpSyn,
        );
        h.expect(
            "no listener: over the limit, dropped",
            &syn(SRC4, DST4, 40001, closed, &[]),
            XDP_DROP,
            Action::Drop,
            Reason::SourceRate,
            Class::TcpSyn,
        );
        h.expect(
            "no listener: in the penalty, dropped",
            &syn(SRC4, DST4, 40002, closed, &[]),
            XDP_DROP,
            Action::Drop,
            Reason::SourcePenalty,
            Class::TcpSyn,
        );
    });
}
