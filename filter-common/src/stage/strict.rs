//! Strict's rules: while engaged, TCP and UDP pass only if something of this host asked for
//! them.
//!
//! - A packet of a flow the host started or answered (FLOWS, written by the egress program)
//!   is known.
//! - A SYN to a served port is answered with a SYN cookie; the listener never sees it.
//! - Another TCP segment needs a socket (an accepted connection the egress program has not
//!   seen yet) or a valid cookie in its ACK; anything else is dropped, so no RST is ever sent
//!   to a spoofed source.
//! - UDP to a served port passes; an unknown source shares the service's budget while the
//!   UDP class is under attack (after the per-source limiter, so a heavy source is
//!   penalised and leaves the budget to the crowd).
//! - TCP or UDP to a port no service and no flow accounts for is dropped.

use crate::{
    abi::{Mode, Reason, flags},
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, TCP_ACK, TCP_SYN},
};

/// What strict says of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strict {
    /// Nothing of the host accounts for it, nor objects: the later stages decide.
    Unknown,
    /// Known (a flow, a valid cookie, a familiar source): it goes on to the limiter with this
    /// pass reason.
    Known(Reason),
    /// Refused with this reason. [`Reason::SynCookie`]: handed to the cookie program (the
    /// SYN is answered); [`Reason::FloodSignature`]: handed to the signature program;
    /// [`Reason::Fragment`]: handed to the fragment program.
    Refuse(Reason),
    /// UDP from an unknown source to a service whose budget applies (UDP under attack): the
    /// limiter judges it first, so a heavy source is penalised rather than eating the
    /// crowd's budget, then it takes a token of budget `slot`.
    Budget(u32),
}

/// What the host's sockets say of a TCP segment outside any recorded flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// No socket, or a listener whose cookie the segment does not carry.
    Nothing,
    /// A connection the kernel holds (accepted, or closing): the host asked for it.
    Connection,
    /// A listener, and the ACK carries a valid SYN cookie.
    CookieAck,
}

/// What strict needs of the maps and the host.
pub trait StrictMaps {
    /// FLOWS holds the packet's flow, seen within the flow timeout.
    fn flow_known(&mut self) -> bool;
    /// The budget slot of the service the packet is addressed to (SERVICES), if any.
    fn service(&mut self) -> Option<u32>;
    /// The source is familiar (FAMILIAR on, seen within its TTL).
    fn familiar(&mut self) -> bool;
    /// The program's trigger holds UDP's budget on this CPU.
    fn trigger_holds_udp(&mut self) -> bool;
    /// The mode SYNs are judged in now (the trigger's, while it holds).
    fn syn_mode(&mut self) -> Mode;
    /// A local socket listens for this SYN, and the cookie program was handed it.
    fn hand_to_cookie(&mut self) -> bool;
    /// What the host's sockets say of a segment outside any flow.
    fn socket(&mut self) -> Socket;
}

/// Strict's say of `pkt` under the CONFIG flags `f`, while strict is engaged.
#[inline(always)]
pub fn judge(f: u32, pkt: &IpPacket, maps: &mut impl StrictMaps) -> Strict {
    let tcp = pkt.proto == IPPROTO_TCP;
    if !tcp && pkt.proto != IPPROTO_UDP {
        return Strict::Unknown;
    }
    // Fragments have a program of their own: a first one judged as its whole datagram, a
    // later one by its first.
    if pkt.fragment != Fragment::No {
        return Strict::Refuse(Reason::Fragment);
    }
    if maps.flow_known() {
        return Strict::Known(Reason::Flow);
    }
    if tcp {
        return if pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            // With SYN flood signatures in force, the signature program judges it first,
            // unless its source is familiar (a signature never matches a familiar source).
            if f & flags::SIGNATURES_SYN != 0 && !maps.familiar() {
                return Strict::Refuse(Reason::FloodSignature);
            }
            syn(pkt, maps)
        } else {
            match maps.socket() {
                Socket::Nothing => Strict::Refuse(Reason::NoFlow),
                Socket::Connection => Strict::Known(Reason::Flow),
                Socket::CookieAck => Strict::Known(Reason::CookieAck),
            }
        };
    }
    let Some(slot) = maps.service() else {
        return Strict::Refuse(Reason::NoService);
    };
    // The controller engages the budget for a spread UDP flood; the program's trigger for
    // one it saw first.
    if f & flags::UDP_BUDGET != 0 || maps.trigger_holds_udp() {
        // A source that sent within its limits while calm passes before the budget.
        if maps.familiar() {
            return Strict::Known(Reason::Familiar);
        }
        // With flood signatures in force, the signature program judges it (a flood's
        // fingerprint is dropped before it spends the budget the crowd's newcomers need).
        if f & flags::SIGNATURES != 0 {
            return Strict::Refuse(Reason::FloodSignature);
        }
        return Strict::Budget(slot);
    }
    Strict::Unknown
}

/// Strict's say once no flood signature matched a packet it handed to the signature
/// program ([`Reason::FloodSignature`]): a SYN goes on to its cookie, a datagram to its
/// service's budget.
#[inline(always)]
pub fn no_signature(pkt: &IpPacket, maps: &mut impl StrictMaps) -> Strict {
    if pkt.proto == IPPROTO_TCP {
        return syn(pkt, maps);
    }
    match maps.service() {
        Some(slot) => Strict::Budget(slot),
        None => Strict::Unknown,
    }
}

/// A connection attempt: refused if nothing serves the port, else answered with a cookie.
/// Monitor counts what it would do and leaves the SYN to the kernel. The cookie program's
/// SYN-ACK is built for plain headers; a SYN with IP options, or one no local socket
/// listens for (a service behind this host), is left to the later stages.
#[inline(always)]
pub fn syn(pkt: &IpPacket, maps: &mut impl StrictMaps) -> Strict {
    if maps.service().is_none() {
        return Strict::Refuse(Reason::NoService);
    }
    if maps.syn_mode() != Mode::Enforce {
        return Strict::Refuse(Reason::SynCookie);
    }
    if !plain_headers(pkt) || !maps.hand_to_cookie() {
        return Strict::Unknown;
    }
    Strict::Refuse(Reason::SynCookie)
}

/// The IP header has no options (IPv4) or extension headers (IPv6).
#[inline(always)]
pub fn plain_headers(pkt: &IpPacket) -> bool {
    let ip_len = if pkt.v6 { 40 } else { 20 };
    pkt.l4 == pkt.l3 + ip_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Class;

    /// Maps that answer as told, and count what they were asked.
    #[derive(Default)]
    struct Told {
        flow: bool,
        service: Option<u32>,
        familiar: bool,
        trigger: bool,
        mode: Option<Mode>,
        listening: bool,
        socket: Option<Socket>,
        asked_familiar: u32,
    }

    impl StrictMaps for Told {
        fn flow_known(&mut self) -> bool {
            self.flow
        }
        fn service(&mut self) -> Option<u32> {
            self.service
        }
        fn familiar(&mut self) -> bool {
            self.asked_familiar += 1;
            self.familiar
        }
        fn trigger_holds_udp(&mut self) -> bool {
            self.trigger
        }
        fn syn_mode(&mut self) -> Mode {
            self.mode.unwrap_or(Mode::Enforce)
        }
        fn hand_to_cookie(&mut self) -> bool {
            self.listening
        }
        fn socket(&mut self) -> Socket {
            self.socket.unwrap_or(Socket::Nothing)
        }
    }

    fn packet(proto: u8, tcp_flags: u8) -> IpPacket {
        IpPacket {
            v6: false,
            src: [0; 16],
            dst: [0; 16],
            l3: 14,
            l4: 34,
            proto,
            class: Class::Other,
            fragment: Fragment::No,
            src_port: 1000,
            dst_port: 53,
            tcp_flags,
            frag_id: 0,
        }
    }

    #[test]
    fn udp_meets_flow_service_familiar_signatures_then_budget() {
        let udp = packet(IPPROTO_UDP, 0);
        let mut m = Told::default();
        assert_eq!(judge(0, &udp, &mut m), Strict::Refuse(Reason::NoService));
        m.service = Some(3);
        assert_eq!(judge(0, &udp, &mut m), Strict::Unknown);
        assert_eq!(
            m.asked_familiar, 0,
            "familiar is asked only under the budget"
        );
        m.trigger = true;
        assert_eq!(judge(0, &udp, &mut m), Strict::Budget(3));
        let f = flags::SIGNATURES;
        assert_eq!(
            judge(f, &udp, &mut m),
            Strict::Refuse(Reason::FloodSignature)
        );
        assert_eq!(no_signature(&udp, &mut m), Strict::Budget(3));
        m.familiar = true;
        assert_eq!(judge(f, &udp, &mut m), Strict::Known(Reason::Familiar));
        m.flow = true;
        assert_eq!(judge(f, &udp, &mut m), Strict::Known(Reason::Flow));
    }

    #[test]
    fn a_syn_is_answered_with_a_cookie_only_in_enforce_with_a_listener() {
        let syn = packet(IPPROTO_TCP, TCP_SYN);
        let mut m = Told {
            service: Some(0),
            ..Told::default()
        };
        assert_eq!(judge(0, &syn, &mut m), Strict::Unknown, "no listener");
        m.listening = true;
        assert_eq!(judge(0, &syn, &mut m), Strict::Refuse(Reason::SynCookie));
        let f = flags::SIGNATURES_SYN;
        assert_eq!(
            judge(f, &syn, &mut m),
            Strict::Refuse(Reason::FloodSignature)
        );
        m.familiar = true;
        assert_eq!(judge(f, &syn, &mut m), Strict::Refuse(Reason::SynCookie));
        m.mode = Some(Mode::Monitor);
        m.listening = false;
        assert_eq!(judge(0, &syn, &mut m), Strict::Refuse(Reason::SynCookie));
        let mut options = syn;
        options.l4 += 4;
        m.mode = None;
        m.listening = true;
        assert_eq!(judge(0, &options, &mut m), Strict::Unknown, "IP options");
    }

    #[test]
    fn a_segment_needs_a_connection_or_a_cookie() {
        let ack = packet(IPPROTO_TCP, TCP_ACK);
        let mut m = Told::default();
        assert_eq!(judge(0, &ack, &mut m), Strict::Refuse(Reason::NoFlow));
        m.socket = Some(Socket::Connection);
        assert_eq!(judge(0, &ack, &mut m), Strict::Known(Reason::Flow));
        m.socket = Some(Socket::CookieAck);
        assert_eq!(judge(0, &ack, &mut m), Strict::Known(Reason::CookieAck));
        let mut fragment = ack;
        fragment.fragment = Fragment::First;
        assert_eq!(
            judge(0, &fragment, &mut m),
            Strict::Refuse(Reason::Fragment)
        );
    }
}
