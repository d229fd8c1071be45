//! Issue 24: `levee explain` and the program agree. Thousands of packets, in every mode and
//! with the map states the stages read (allow- and blocklist entries, one covering another,
//! a timed block, BGP neighbours inside a blocked prefix, received FlowSpec discards, the
//! amplification ports), each run through the loaded program (BPF_PROG_TEST_RUN) and through
//! explain's evaluation of the same maps: the same action, reason and class, every time.
//!
//! Explain's say of a packet whose every detail is given never depends on anything else in
//! the first test: the stages that would (per-source limits, ceilings, strict) are off, so a
//! packet whose verdict explain leaves open is a failure there. The second engages strict.

use std::{net::IpAddr, time::Duration};

use filter_common::{
    abi::{Action, Class, Config, Mode, flags},
    frames::{FrameSpec, L4},
    parse::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_SYN},
    signature::{Facts, FloodSignature, field},
};
use levee::{
    api::ExplainPacket,
    cmd::explain::{NoBooks, evaluate},
    dataplane::Counters,
    escalation::{FlowAction, received::EnforcedRule},
};
use levee_tests::{Harness, XDP_DROP, XDP_PASS, ip};

use crate::{DST4, DST6, net};

/// Sources, one per kind of map state they meet.
const SOURCES: &[&str] = &[
    // Allowlisted, and inside a blocked /25: the allowlist comes first. Also a BGP
    // neighbour, whose sessions come before the allowlist.
    "198.18.5.200",
    "2001:db8:5::5",
    // Blocked for good, and for an hour.
    "198.18.6.6",
    "198.18.7.7",
    "2001:db8:6::6",
    // A BGP neighbour inside a blocked /24: its sessions pass, nothing else of it.
    "198.18.8.8",
    // Nothing listed; the first meets the received rules.
    "198.18.9.9",
    "2001:db8:9::9",
];
/// Familiar under strict (a source seen within its limits while calm).
const FAMILIAR: &str = "198.18.9.9";
const NEIGHBOURS: &[&str] = &["198.18.8.8", "198.18.5.200"];
const SOURCE_PORTS: &[u16] = &[40000, 123, 179, 53];
const DST_PORTS: &[u16] = &[80, 179, 5000];

/// One packet, as explain is asked about it and as a frame.
struct Packet {
    source: IpAddr,
    dst: IpAddr,
    /// TCP flags for TCP; None for UDP (with ports) or ICMP (without).
    l4: L4,
}

impl Packet {
    fn frame(&self) -> Vec<u8> {
        let spec = FrameSpec::new(self.source, self.dst, self.l4);
        match self.l4 {
            L4::Udp { .. } => spec.payload(if self.source.is_ipv4() { 22 } else { 2 }),
            _ => spec,
        }
        .build()
    }

    fn asked(&self) -> ExplainPacket {
        let (proto, sport, dport, syn) = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => (IPPROTO_TCP, Some(sport), Some(dport), flags & TCP_SYN != 0),
            L4::Udp { sport, dport } => (IPPROTO_UDP, Some(sport), Some(dport), false),
            _ if self.source.is_ipv4() => (IPPROTO_ICMP, None, None, false),
            _ => (IPPROTO_ICMPV6, None, None, false),
        };
        ExplainPacket::new(self.source, Some(proto), sport, dport, syn)
            .and_then(|p| p.to(Some(self.dst)))
            .unwrap_or_else(|e| panic!("explain packet: {e:#}"))
    }

    fn name(&self) -> String {
        format!("{:?} from {} to {}", self.l4, self.source, self.dst)
    }
}

/// Every packet of the test: each source with TCP SYN and ACK and UDP over every port pair,
/// and ICMP.
fn packets() -> Vec<Packet> {
    let mut out = Vec::new();
    for s in SOURCES {
        let source = ip(s);
        let dst = ip(if source.is_ipv4() { DST4 } else { DST6 });
        out.push(Packet {
            source,
            dst,
            l4: L4::Icmp,
        });
        for &sport in SOURCE_PORTS {
            for &dport in DST_PORTS {
                for flags in [TCP_SYN, TCP_ACK] {
                    out.push(Packet {
                        source,
                        dst,
                        l4: L4::Tcp {
                            sport,
                            dport,
                            flags,
                        },
                    });
                }
                out.push(Packet {
                    source,
                    dst,
                    l4: L4::Udp { sport, dport },
                });
            }
        }
    }
    out
}

/// An IPv4 address as the maps hold it.
fn abi(addr: &str) -> [u8; 16] {
    levee::dataplane::abi_address(ip(addr))
}

/// The one counter slot a run moved.
fn counted(before: &Counters, after: &Counters) -> (Action, filter_common::abi::Reason, Class) {
    let moved: Vec<_> = after
        .non_zero()
        .into_iter()
        .filter(|(a, r, c, n)| before.get(*a, *r, *c).packets != n.packets)
        .map(|(a, r, c, _)| (a, r, c))
        .collect();
    assert_eq!(moved.len(), 1, "one slot counted: {moved:?}");
    moved[0]
}

/// The received rules: UDP of the plain /24 to port 5000, and TCP to the protected host's
/// port 179 (which would cut a BGP session that were not exempt).
fn received() -> Vec<filter_common::abi::UpstreamRule> {
    let rule = |src: &str, proto: u8, dport: u16| EnforcedRule {
        dst: net("198.18.0.0/24"),
        src: Some(net(src)),
        proto: Some((proto, proto)),
        src_port: None,
        dst_port: Some((dport, dport)),
        len: None,
        action: FlowAction::Discard,
    };
    vec![
        rule("198.18.9.0/24", IPPROTO_UDP, 5000).to_abi(1),
        rule("198.18.0.0/16", IPPROTO_TCP, 179).to_abi(1),
    ]
}

/// Runs every packet through explain and the program in the state `h` holds now; returns how
/// many explain decided (and were compared) and how many it left open.
fn agree(h: &Harness, packets: &[Packet], state: &str) -> (usize, usize) {
    let (mut compared, mut open) = (0, 0);
    for p in packets {
        let what = format!("{} in {state}", p.name());
        let said = evaluate(&NoBooks, &h.dp, "test".into(), &p.asked())
            .unwrap_or_else(|e| panic!("{what}: explain: {e:#}"));
        let before = h.counters();
        let xdp = h.run(&p.frame());
        let (action, reason, class) = counted(&before, &h.counters());
        if !said.unless.is_empty() {
            open += 1;
            continue;
        }
        let explained_class = p.asked().class().map(Class::name);
        assert_eq!(
            (said.action.name(), said.reason.name(), explained_class),
            (action.name(), reason.name(), Some(class.name())),
            "{what}: explain (left) and the program (right) disagree; explain's stages: {:#?}",
            said.stages
                .iter()
                .map(|s| format!("{} {}: {}", s.stage.name(), s.outcome.name(), s.say))
                .collect::<Vec<_>>()
        );
        let want = if action == Action::Drop {
            XDP_DROP
        } else {
            XDP_PASS
        };
        assert_eq!(xdp, want, "{what}: XDP action");
        compared += 1;
    }
    (compared, open)
}

#[test]
fn explain_and_the_program_agree_on_every_packet() {
    let mut h = Harness::new(Config::new(Mode::Enforce));
    h.dp.allow(net("198.18.5.0/24")).unwrap();
    h.dp.allow(net("2001:db8:5::/48")).unwrap();
    for block in [
        "198.18.5.128/25",
        "198.18.6.0/24",
        "198.18.8.0/24",
        "2001:db8:6::/48",
    ] {
        h.dp.block(net(block), None).unwrap();
    }
    h.dp.block(net("198.18.7.0/24"), Some(Duration::from_secs(3600)))
        .unwrap();
    let packets = packets();
    let mut compared = 0;
    for mode in [Mode::Off, Mode::Monitor, Mode::Enforce, Mode::Lockdown] {
        h.set_mode(mode);
        for peers in [false, true] {
            let neighbours: Vec<IpAddr> = match peers {
                true => NEIGHBOURS.iter().map(|n| ip(n)).collect(),
                false => Vec::new(),
            };
            h.dp.set_bgp_peers(&neighbours).unwrap();
            for rules in [false, true] {
                let table = if rules { received() } else { Vec::new() };
                h.dp.set_upstream_rules(&table, &[]).unwrap();
                let state = format!(
                    "{} (neighbours {peers}, received rules {rules})",
                    mode.name()
                );
                let (n, open) = agree(&h, &packets, &state);
                assert_eq!(open, 0, "{state}: every detail given, explain decides");
                compared += n;
            }
        }
    }
    eprintln!("explain and the program agreed on {compared} packets");
    assert!(compared >= 3000);
}

/// Strict engaged, with a UDP service on the protected /24 and a TCP one on any address, one
/// familiar source, the UDP budget applying or not, and flood signatures in force or not
/// (one of UDP to the service from port 40000, one of SYNs to port 80 from port 123): the
/// services, the flows (none: the amplification ports answer no query), the familiar
/// source, the signatures and strict's reasons. Explain leaves open what only the kernel's
/// sockets decide (a SYN cookie needs a listener, a segment a connection): those are
/// counted, not compared.
#[test]
fn explain_and_the_program_agree_under_strict() {
    use levee::dataplane::ServiceRule;
    let mut compared = 0;
    let mut open = 0;
    let packets = packets();
    for (mode, budget) in [Mode::Monitor, Mode::Enforce]
        .into_iter()
        .flat_map(|m| [(m, true), (m, false)])
    {
        let mut cfg = Config::new(mode);
        // A familiar source passes before the UDP budget, while it applies.
        for flag in [flags::STRICT, flags::TRACK_FLOWS, flags::FAMILIAR] {
            cfg.set_flag(flag, true);
        }
        cfg.set_flag(flags::UDP_BUDGET, budget);
        cfg.familiar_ttl_ns = 3_600_000_000_000;
        let mut h = Harness::new(cfg);
        let now = levee::dataplane::monotonic_coarse_ns();
        let familiar = filter_common::abi::Familiar {
            first_ns: now - 5_000_000_000,
            last_ns: now - 1_000_000_000,
        };
        let key = filter_common::abi::verified_key(&abi(FAMILIAR), false);
        h.dp.restore_familiar(&[(key, familiar)]).unwrap();
        h.dp.block(net("198.18.6.0/24"), None).unwrap();
        h.dp.allow(net("198.18.5.0/24")).unwrap();
        let service = |proto, port, dst: &str| ServiceRule {
            proto,
            port,
            dst: net(dst),
        };
        h.dp.set_services(&[
            service(IPPROTO_UDP, 5000, "198.18.0.0/24"),
            service(IPPROTO_TCP, 80, "0.0.0.0/0"),
            service(IPPROTO_TCP, 80, "::/0"),
        ])
        .unwrap();
        for signatures in [false, true] {
            let table = if signatures {
                flood_signatures().to_vec()
            } else {
                Vec::new()
            };
            h.dp.set_signatures(&table, &[]).unwrap();
            let state = format!(
                "strict, {}, UDP budget {budget}, flood signatures {signatures}",
                mode.name()
            );
            let (n, o) = agree(&h, &packets, &state);
            compared += n;
            open += o;
        }
    }
    eprintln!("under strict: agreed on {compared} packets, explain left {open} open");
    assert!(compared >= 1600, "{compared} compared");
}

/// Flood signatures explain can match from the details it is given: ports.
fn flood_signatures() -> [FloodSignature; 2] {
    let sig = |id, proto, dst_port, src_port| FloodSignature {
        fields: field::DST_PORT | field::SRC_PORT,
        id,
        facts: Facts {
            dst_port,
            src_port,
            proto,
            ..Facts::default()
        },
        payload_mask: [0; 8],
    };
    [
        sig(1, IPPROTO_UDP, 5000, 40000),
        sig(2, IPPROTO_TCP, 80, 123),
    ]
}

/// The per-source limiter: low limits and a penalty, every packet looked up (the sketch gate
/// at 0, as for a source that keeps sending, which is what explain describes). Each source
/// sends until it is over its limit and then serves its penalty; explain's say comes from the
/// source's buckets before each packet.
#[test]
fn explain_and_the_program_agree_on_the_limiter() {
    use filter_common::config::Rate;
    let mut cfg = Config::new(Mode::Enforce);
    cfg.set_flag(flags::SOURCE_LIMITS, true);
    cfg.sketch_threshold = 0;
    cfg.penalty_ns = Duration::from_secs(60).as_nanos() as u64;
    let rate = |pps, burst_packets| {
        Rate {
            pps,
            burst_packets,
            ..Rate::default()
        }
        .encode()
    };
    cfg.source[Class::Udp as usize] = rate(1, 3);
    cfg.source[Class::Icmp as usize] = rate(1, 2);
    cfg.source[Class::TcpSyn as usize] = rate(1, 1);
    let mut h = Harness::new(cfg);
    let mut compared = 0;
    let mut objected = 0;
    for (m, mode) in [Mode::Monitor, Mode::Enforce].into_iter().enumerate() {
        h.set_mode(mode);
        // Two of them share the first's slot: their state lives in SOURCES.
        let first = format!("198.18.{}.0", 20 + m);
        let mates = crate::source_slots::slot_mates(&first, 2);
        for i in 0..22u8 {
            let source = match i {
                20 | 21 => ip(&mates[usize::from(i - 20)]),
                _ if i % 2 == 0 => ip(&format!("198.18.{}.{}", 20 + m, i)),
                _ => ip(&format!("2001:db8:{}:{i}::1", 20 + m)),
            };
            let dst = ip(if source.is_ipv4() { DST4 } else { DST6 });
            let kinds = [
                L4::Udp {
                    sport: 40000,
                    dport: 5000,
                },
                L4::Icmp,
                L4::Tcp {
                    sport: 40000,
                    dport: 80,
                    flags: TCP_SYN,
                },
            ];
            let packets: Vec<Packet> = (0..8)
                .map(|n| Packet {
                    source,
                    dst,
                    l4: kinds[n % kinds.len()],
                })
                .collect();
            let (n, open) = agree(&h, &packets, &format!("the limiter, {}", mode.name()));
            assert_eq!(open, 0, "every detail given, explain decides");
            compared += n;
        }
        objected += h
            .counters()
            .non_zero()
            .iter()
            .filter(|(_, r, _, _)| {
                matches!(
                    r,
                    filter_common::abi::Reason::SourceRate
                        | filter_common::abi::Reason::SourcePenalty
                )
            })
            .count();
    }
    eprintln!("the limiter: agreed on {compared} packets");
    assert!(objected > 0, "sources went over their limits");
}
