//! Who may be blocked: an offence blocklists its source (in every class) only if the source
//! is verified and no live connection of the host's depends on it, so a spoofer borrowing an
//! address cannot turn Levee against its owner.
//!
//! A source is verified while the host holds, or lately held (`strict.flow_timeout`), a TCP
//! connection with it past the handshake: the egress program, attached whatever strict's
//! mode, records the address in VERIFIED when the host sends such a segment (a SYN-ACK or a
//! RST goes to any address and proves nothing; so does a UDP answer). An offence in class
//! `tcp_other` while strict is engaged is evidence by itself: only segments of a flow or with
//! a valid cookie reach the limiter there.
//!
//! A source the host is talking to right now (it sent to it within [`LIVE`]) is never
//! blocklisted by detection: its offences may be a spoofer's, and a block would cut a real
//! listener off mid-stream. They stay penalties in their class, like everyone else's (a SYN
//! penalty is answered with cookies, so a real client still connects).

use std::{net::IpAddr, time::Duration};

use filter_common::abi::Class;
use tracing::error;

use super::Controller;

/// How recently the host must have sent to a source for it to count as live: a few times
/// the program's refresh of the time (`VERIFIED_REFRESH_NS`).
pub const LIVE: Duration = Duration::from_secs(2);

/// What Levee knows of a source's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The host is talking to it now: last sent this long ago, within [`LIVE`].
    Live(Duration),
    /// The host held a TCP connection with it past the handshake, this long ago.
    Verified(Duration),
    /// No such connection within `strict.flow_timeout`.
    Unverified,
}

impl Verification {
    pub fn name(self) -> &'static str {
        match self {
            Verification::Live(_) => "live",
            Verification::Verified(_) => "verified",
            Verification::Unverified => "unverified",
        }
    }

    /// How long ago the host last sent to it on a connection, if it did.
    pub fn ago(self) -> Option<Duration> {
        match self {
            Verification::Live(a) | Verification::Verified(a) => Some(a),
            Verification::Unverified => None,
        }
    }
}

impl Controller {
    /// What Levee knows of `src`, from every interface's VERIFIED table. A table that cannot
    /// be read is logged and counts as no connection (nobody is blocked on a guess).
    pub(crate) fn verification(&self, src: IpAddr) -> Verification {
        let mut newest: Option<Duration> = None;
        for iface in &self.fleet.interfaces {
            match iface.dp.verified_ago(src) {
                Ok(Some(ago)) => newest = Some(newest.map_or(ago, |n| n.min(ago))),
                Ok(None) => {}
                Err(e) => error!(iface = %iface.name, source = %src, "cannot verify: {e:#}"),
            }
        }
        match newest {
            Some(ago) if ago < LIVE => Verification::Live(ago),
            Some(ago) if ago < self.settings.strict.flow_timeout => Verification::Verified(ago),
            _ => Verification::Unverified,
        }
    }

    /// Whether an offence of `src` in `class` may count toward blocklisting it.
    pub(super) fn offence_is_evidence(&self, src: IpAddr, class: Class) -> bool {
        (self.strict.engaged && class == Class::TcpOther)
            || matches!(self.verification(src), Verification::Verified(_))
    }
}
