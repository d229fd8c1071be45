//! Issue 21: strict judges fragments. A first fragment is judged as its whole datagram; a
//! later one passes only if its datagram's first fragment passed (FRAGMENTS, keyed by source,
//! destination, identification and protocol), else it is refused as its datagram was
//! (`no_service`). The fragment signature, when on, still drops every fragment first.

use filter_common::{
    abi::{Action, Class, Mode, Reason, flags},
    frames::{FrameSpec, L4},
    parse::IPPROTO_UDP,
};
use levee_tests::{Case, Harness, XDP_DROP, XDP_PASS, ip};

use crate::{
    DST4, DST6, SRC4, SRC6,
    strict::{rule, strict},
};

const SERVED: u16 = 7000;
const CLOSED: u16 = 7777;

/// A fragment of datagram `id` from `src` to `dst:dport`: the first (offset 0, more to come)
/// or a later one (the last).
fn fragment(src: &str, dst: &str, dport: u16, id: u32, first: bool) -> Vec<u8> {
    let spec = FrameSpec::new(
        ip(src),
        ip(dst),
        L4::Udp {
            sport: 40000,
            dport,
        },
    )
    .payload(32);
    let mut f = if first {
        spec.fragment(0, true).build()
    } else {
        spec.fragment(100, false).build()
    };
    if ip(src).is_ipv6() {
        // The Fragment header follows the IPv6 header: its identification at 4..8.
        f[14 + 40 + 4..14 + 40 + 8].copy_from_slice(&id.to_be_bytes());
    } else {
        f[14 + 4..14 + 6].copy_from_slice(&(id as u16).to_be_bytes());
    }
    f
}

fn case(what: String, frame: Vec<u8>, mode: Mode, refused: Option<Reason>) -> Case {
    let (xdp, action, reason) = match (refused, mode) {
        (None, _) => (XDP_PASS, Action::Pass, Reason::Clean),
        (Some(r), Mode::Monitor) => (XDP_PASS, Action::WouldDrop, r),
        (Some(r), _) => (XDP_DROP, Action::Drop, r),
    };
    Case {
        what,
        frame,
        xdp,
        action,
        reason,
        class: Class::Udp,
    }
}

#[test]
fn strict_judges_a_first_fragment_as_its_datagram_and_a_later_one_by_its_first() {
    for mode in [Mode::Enforce, Mode::Monitor] {
        let mut h = Harness::new(strict(mode));
        h.dp.set_services(&[
            rule(IPPROTO_UDP, SERVED, &format!("{DST4}/32")),
            rule(IPPROTO_UDP, SERVED, &format!("{DST6}/128")),
        ])
        .unwrap();
        let m = mode.name();
        for (src, dst) in [(SRC4, DST4), (SRC6, DST6)] {
            let no_service = Some(Reason::NoService);
            h.expect_all(&[
                case(
                    format!("{m} {src}: first fragment to a served port"),
                    fragment(src, dst, SERVED, 1, true),
                    mode,
                    None,
                ),
                case(
                    format!("{m} {src}: its later fragment"),
                    fragment(src, dst, SERVED, 1, false),
                    mode,
                    None,
                ),
                case(
                    format!("{m} {src}: first fragment to a closed port"),
                    fragment(src, dst, CLOSED, 2, true),
                    mode,
                    no_service,
                ),
                case(
                    format!("{m} {src}: its later fragment"),
                    fragment(src, dst, CLOSED, 2, false),
                    mode,
                    no_service,
                ),
                case(
                    format!("{m} {src}: a later fragment whose first was never seen"),
                    fragment(src, dst, SERVED, 3, false),
                    mode,
                    no_service,
                ),
            ]);
        }
    }
}

#[test]
fn the_fragment_signature_still_drops_every_fragment_first() {
    let mut cfg = strict(Mode::Enforce);
    cfg.set_flag(flags::SIG_FRAGMENTS, true);
    let mut h = Harness::new(cfg);
    h.dp.set_services(&[rule(IPPROTO_UDP, SERVED, &format!("{DST4}/32"))])
        .unwrap();
    h.expect_all(&[
        case(
            "first fragment to a served port".into(),
            fragment(SRC4, DST4, SERVED, 1, true),
            Mode::Enforce,
            Some(Reason::Fragment),
        ),
        case(
            "later fragment".into(),
            fragment(SRC4, DST4, SERVED, 1, false),
            Mode::Enforce,
            Some(Reason::Fragment),
        ),
    ]);
}
