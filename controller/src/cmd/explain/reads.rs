//! The maps' answers to the shared stage decisions (`filter_common::stage`), for a packet
//! explain was asked about. A detail it was not given (a port, the destination) or cannot
//! know from the maps (the host's sockets) is answered as the packet would be refused, and
//! noted: a say that objects under such an answer depends on it; one that passes even so
//! passes.

use std::net::IpAddr;

use anyhow::Result;
use filter_common::{
    abi::{Config, Mode, flags},
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket, TCP_ACK, TCP_SYN},
    stage::{
        signatures::SignatureMaps,
        strict::{Socket, StrictMaps},
    },
};
use ipnet::IpNet;

use crate::{
    api::ExplainPacket,
    dataplane::{Dataplane, TriggerHeld, abi_address},
};

/// An address and port.
type End = (IpAddr, u16);

pub(super) struct Reads<'a> {
    dp: &'a Dataplane,
    cfg: &'a Config,
    packet: &'a ExplainPacket,
    pub held: TriggerHeld,
    /// What the flow lookup found; None if not asked or not given the details it needs.
    pub flow: Option<bool>,
    /// Asked for a flow without the details it needs.
    pub flow_unknown: bool,
    /// What AMP_PORTS says of the source port, if asked and given.
    pub amp: Option<bool>,
    /// The service's budget slot, if asked and found.
    pub service: Option<u32>,
    /// The prefixes the asked port is served on, when no `--dst` was given and no service
    /// bound to every address serves it.
    pub served_on: Vec<IpNet>,
    /// Details the say depends on, answered as the packet would be refused.
    pub assumed: Vec<&'static str>,
    error: Option<anyhow::Error>,
}

impl<'a> Reads<'a> {
    pub fn new(dp: &'a Dataplane, cfg: &'a Config, packet: &'a ExplainPacket) -> Result<Self> {
        Ok(Reads {
            dp,
            cfg,
            packet,
            held: dp.trigger_held(cfg)?,
            flow: None,
            flow_unknown: false,
            amp: None,
            service: None,
            served_on: Vec::new(),
            assumed: Vec::new(),
            error: None,
        })
    }

    /// The first read that failed, if any: then no say is given.
    pub fn finish(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read<T>(&mut self, r: Result<T>, otherwise: T) -> T {
        r.unwrap_or_else(|e| {
            self.error.get_or_insert(e);
            otherwise
        })
    }

    fn assume(&mut self, detail: &'static str) {
        if !self.assumed.contains(&detail) {
            self.assumed.push(detail);
        }
    }

    /// The ends and protocol as the flow lookup needs them (UDP flows need no source port).
    fn flow_tuple(&self) -> Option<(End, End, u8)> {
        let p = self.packet;
        let proto = p.proto?;
        let sport = match (proto, p.sport) {
            (IPPROTO_UDP, s) => s.unwrap_or(0),
            (_, s) => s?,
        };
        Some(((p.source, sport), (p.dst?, p.dport?), proto))
    }
}

/// The packet's facts as the parser would give them: plain headers, a whole datagram, a
/// SYN or an ACK; what was not given is zero. None without a protocol.
pub(super) fn facts(p: &ExplainPacket) -> Option<IpPacket> {
    let proto = p.proto?;
    let v6 = p.source.is_ipv6();
    let l3 = 14;
    Some(IpPacket {
        v6,
        src: abi_address(p.source),
        dst: p.dst.map(abi_address).unwrap_or([0; 16]),
        l3,
        l4: l3 + if v6 { 40 } else { 20 },
        proto,
        class: p.class()?,
        fragment: Fragment::No,
        src_port: p.sport.unwrap_or(0),
        dst_port: p.dport.unwrap_or(0),
        tcp_flags: match (proto, p.syn) {
            (IPPROTO_TCP, true) => TCP_SYN,
            (IPPROTO_TCP, false) => TCP_ACK,
            _ => 0,
        },
        frag_id: 0,
    })
}

impl SignatureMaps for Reads<'_> {
    fn amp_port(&mut self, _port: u16) -> bool {
        match self.packet.sport {
            Some(port) => {
                let r = self.dp.amp_port(port);
                let amp = self.read(r, false);
                self.amp = Some(amp);
                amp
            }
            None => {
                self.assume("--sport");
                true
            }
        }
    }

    fn answers_the_host(&mut self) -> bool {
        self.flow_known()
    }
}

impl StrictMaps for Reads<'_> {
    fn flow_known(&mut self) -> bool {
        let Some((src, dst, proto)) = self.flow_tuple() else {
            self.flow_unknown = true;
            return false;
        };
        let r = self.dp.flow_known(self.cfg, src, dst, proto);
        let known = self.read(r, false);
        self.flow = Some(known);
        known
    }

    fn service(&mut self) -> Option<u32> {
        let p = self.packet;
        let (Some(proto), Some(port)) = (p.proto, p.dport) else {
            self.assume("--dport");
            return None;
        };
        let v6 = p.source.is_ipv6();
        let r = self.dp.service_slot(v6, proto, port, p.dst);
        let slot = self.read(r, None);
        if slot.is_none() && p.dst.is_none() {
            let r = self.dp.service_prefixes(v6, proto, port);
            self.served_on = self.read(r, Vec::new());
            if !self.served_on.is_empty() {
                self.assume("--dst");
            }
        }
        self.service = slot;
        slot
    }

    fn familiar(&mut self) -> bool {
        if self.cfg.flags & flags::FAMILIAR == 0 {
            return false;
        }
        let r = self
            .dp
            .familiar_ago(self.packet.source, self.cfg.familiar_ttl_ns)
            .map(|a| a.is_some());
        self.read(r, false)
    }

    fn trigger_holds_udp(&mut self) -> bool {
        self.held.udp
    }

    /// The trigger's mode while it holds strict on some CPU: explain cannot tell which CPU
    /// the packet lands on, and takes the trigger's (as a flood's packets meet it).
    fn syn_mode(&mut self) -> Mode {
        let mode = self.cfg.mode();
        if self.held.cpus > 0 && mode == Mode::Monitor && self.cfg.flags & flags::AUTO_ENFORCE != 0
        {
            Mode::Enforce
        } else {
            mode
        }
    }

    fn hand_to_cookie(&mut self) -> bool {
        self.assume("a listening socket");
        true
    }

    fn socket(&mut self) -> Socket {
        self.assume("a connection of the host");
        Socket::Nothing
    }
}
