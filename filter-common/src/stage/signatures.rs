//! The static signatures: floods no legitimate client sends (fragments while the fragment
//! signature is on, impossible TCP flags, UDP from an amplification port that answers no
//! query of the host).

use crate::{
    abi::{Reason, flags},
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, impossible_tcp_flags},
};

/// What the static signatures need of the maps.
pub trait SignatureMaps {
    /// AMP_PORTS holds `port`.
    fn amp_port(&mut self, port: u16) -> bool;
    /// The packet answers a query the host sent: FLOWS holds it (asked only for UDP from an
    /// amplification port, while the host's flows are tracked, of a whole datagram).
    fn answers_the_host(&mut self) -> bool;
}

/// The reason a static signature objects to `pkt` with, under the CONFIG flags `f`.
#[inline(always)]
pub fn judge(f: u32, pkt: &IpPacket, maps: &mut impl SignatureMaps) -> Option<Reason> {
    if pkt.fragment != Fragment::No && f & flags::SIG_FRAGMENTS != 0 {
        return Some(Reason::Fragment);
    }
    if pkt.fragment == Fragment::Later {
        return None;
    }
    if pkt.proto == IPPROTO_TCP
        && f & flags::SIG_TCP_FLAGS != 0
        && impossible_tcp_flags(pkt.tcp_flags)
    {
        return Some(Reason::TcpFlags);
    }
    if pkt.proto == IPPROTO_UDP && f & flags::SIG_AMP_PORTS != 0 && maps.amp_port(pkt.src_port) {
        // A reply to the host's own DNS or NTP query comes from an amplification port.
        let answer =
            f & flags::TRACK_FLOWS != 0 && pkt.fragment == Fragment::No && maps.answers_the_host();
        if !answer {
            return Some(Reason::AmpPort);
        }
    }
    None
}
