//! Program tests: the compiled XDP object loaded into the kernel and driven with crafted frames
//! through BPF_PROG_TEST_RUN. One test per verdict and reason, in every mode, IPv4 and IPv6,
//! VLAN-tagged, and malformed frames. Most tests are tables of [`Case`]s, one table per state
//! of the maps. One module per feature, all in one test binary: cargo links every file under
//! `tests/` on its own, and one binary keeps the helpers below in one place.

mod capture;
mod events;
mod explain_agreement;
mod familiar;
mod flood_signatures;
mod fragments;
mod gate;
mod limiter;
mod lists;
mod malformed;
mod modes;
mod no_cookie;
mod penalty;
mod received;
mod signatures;
mod source_slots;
mod strict;
mod trigger;
mod verifier;

use filter_common::abi::{Action, Class, Config, Event, Mode, Reason};
use ipnet::IpNet;
use levee_tests::{Case, Harness, XDP_DROP, XDP_PASS};

const SRC4: &str = "198.18.1.10";
const DST4: &str = "198.18.0.1";
const SRC6: &str = "2001:db8:1:2::10";
const DST6: &str = "2001:db8:18::1";

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn enforce() -> Harness {
    Harness::new(Config::new(Mode::Enforce))
}

/// What the mode makes of a frame the rules object to.
fn objected(mode: Mode) -> (u32, Action) {
    match mode.objected() {
        Action::Drop => (XDP_DROP, Action::Drop),
        action => (XDP_PASS, action),
    }
}

/// One ring-buffer record as the program wrote it.
fn read_event(item: &[u8]) -> Event {
    assert!(item.len() >= size_of::<Event>(), "short event record");
    // SAFETY: the length is checked above, and Event is plain old data.
    unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) }
}

/// A frame the program passes as clean, counted under `class`.
fn clean(what: impl Into<String>, frame: Vec<u8>, class: Class) -> Case {
    Case {
        what: what.into(),
        frame,
        xdp: XDP_PASS,
        action: Action::Pass,
        reason: Reason::Clean,
        class,
    }
}
