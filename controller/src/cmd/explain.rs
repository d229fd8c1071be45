//! `levee explain`: the verdict a packet from a source would get now, on each interface, and
//! what every stage of the program says of it, in the program's order. The say comes from the
//! live maps (read as the program reads them, see `dataplane::explain`); the controller adds
//! what only it knows: who set a list entry and why, and the class's attack state.
//!
//! The first stage that objects decides; the stages after it still say what they hold, marked
//! not reached. A stage whose say depends on a detail not given (no `--proto`, no `--sport`)
//! is marked so and taken to let the packet on, and the verdict names it.
//!
//! The per-source say is that of a source that keeps sending: the program looks a source's
//! entry up only once the sketch gate sees it heavy, so after a pause its first few packets
//! pass the gate before a penalty applies again.

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::Result;
use filter_common::{
    abi::{
        Action, AllowEntry, BlockEntry, Class, Config, Limit, Mode, Reason, UpstreamRule, flags,
    },
    limit::{admit, is_unlimited},
    parse::{IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    api::{
        ExplainPacket,
        views::{ExplainView, InterfaceExplain, Prefix, StageView},
    },
    controller::{
        Controller,
        lists::{Allow, Block, Setter},
    },
    dataplane::{Dataplane, ListLookup, Probe, abi_address},
};

const NS: u64 = 1_000_000_000;

/// A frame of the smallest size, for the byte buckets.
const MIN_FRAME: u64 = 64;

pub fn explain(c: &Controller, packet: ExplainPacket) -> Result<ExplainView> {
    let verification = c.verification(packet.source);
    let mut interfaces = Vec::new();
    for i in &c.fleet.interfaces {
        let probe = i.dp.probe(packet.source, packet.class())?;
        let stages = stages(c, &i.dp, &probe, &packet)?;
        interfaces.push(verdict(i.name.clone(), probe.config.mode(), stages));
    }
    Ok(ExplainView {
        source: packet.source,
        dst: packet.dst,
        proto: packet.proto,
        sport: packet.sport,
        dport: packet.dport,
        syn: packet.syn,
        class: packet.class().map(|k| k.name().to_string()),
        verification: verification.name().to_string(),
        verified_secs_ago: verification.ago().map(|a| a.as_secs()),
        interfaces,
    })
}

/// What one stage says of the packet.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Say {
    Passes,
    /// Passes, and the program counts a packet nothing later objects to under this reason
    /// (strict's known flow) rather than `clean`.
    PassesAs(Reason),
    Objects(Reason),
    /// Its say depends on details not given; it objects with the reason, if any, when they
    /// turn out so.
    Depends(Vec<&'static str>, Option<Reason>),
}

pub(crate) struct Stage {
    say: Say,
    view: StageView,
}

impl Stage {
    fn new(stage: &str, say: Say, text: impl Into<String>) -> Stage {
        Stage {
            say,
            view: StageView {
                stage: stage.to_string(),
                say: text.into(),
                ..StageView::default()
            },
        }
    }

    fn with(mut self, f: impl FnOnce(&mut StageView)) -> Stage {
        f(&mut self.view);
        self
    }
}

/// The verdict: the first stage that objects decides, in the mode of the interface's CONFIG.
pub(crate) fn verdict(interface: String, mode: Mode, stages: Vec<Stage>) -> InterfaceExplain {
    let mut decided: Option<(String, Reason)> = None;
    let mut passes_as = Reason::Clean;
    let mut unless = Vec::new();
    let mut views = Vec::with_capacity(stages.len());
    for Stage { say, mut view } in stages {
        let (outcome, reason) = match (&decided, say, mode) {
            (_, say, Mode::Off) | (Some(_), say, _) => {
                let reason = match say {
                    Say::Objects(r) | Say::Depends(_, Some(r)) => Some(r),
                    _ => None,
                };
                ("not_reached", reason)
            }
            (None, Say::Passes, _) => ("passes", None),
            (None, Say::PassesAs(r), _) => {
                passes_as = r;
                ("passes", None)
            }
            (None, Say::Objects(r), _) => {
                decided = Some((view.stage.clone(), r));
                ("decides", Some(r))
            }
            (None, Say::Depends(on, r), _) => {
                unless.push(format!("{} ({})", view.stage, on.join(", ")));
                view.depends_on = on.iter().map(|s| s.to_string()).collect();
                ("depends", r)
            }
        };
        view.outcome = outcome.to_string();
        view.reason = reason.map(|r| r.name().to_string());
        views.push(view);
    }
    let (decided_by, reason) = match (mode, decided) {
        (Mode::Off, _) => (Some("mode".to_string()), Reason::ModeOff),
        (_, Some((stage, r))) => (Some(stage), r),
        (_, None) => (None, passes_as),
    };
    let action = match (reason, mode) {
        (Reason::Clean | Reason::Flow | Reason::Allowlisted | Reason::ModeOff, _)
        | (_, Mode::Off) => Action::Pass,
        (_, Mode::Monitor) => Action::WouldDrop,
        _ => Action::Drop,
    };
    InterfaceExplain {
        interface,
        mode,
        action: action.name().to_string(),
        reason: reason.name().to_string(),
        decided_by,
        unless,
        stages: views,
    }
}

/// Every stage in the program's order (filter-ebpf `check`, then the upstream rules).
fn stages(c: &Controller, dp: &Dataplane, p: &Probe, packet: &ExplainPacket) -> Result<Vec<Stage>> {
    let mode = p.config.mode();
    let lockdown = if mode == Mode::Lockdown {
        Stage::new(
            "lockdown",
            Say::Objects(Reason::Lockdown),
            "mode lockdown: all that is not allowlisted is dropped",
        )
    } else {
        Stage::new(
            "lockdown",
            Say::Passes,
            format!("not in lockdown (mode {})", mode.name()),
        )
    };
    Ok(vec![
        allowlist(c, packet.source, &p.allow),
        lockdown,
        blocklist(c, packet.source, &p.block, p.now_ns),
        signatures(dp, &p.config, packet)?,
        strict(dp, &p.config, packet)?,
        per_source(&p.config, p, packet),
        aggregate(c, &p.config, p, packet),
        upstream(&p.upstream, packet),
    ])
}

fn allowlist(c: &Controller, ip: IpAddr, found: &ListLookup<AllowEntry>) -> Stage {
    match found {
        ListLookup::Hit(_) => {
            let (entry, allow) = match c.lists.allow_covering(ip) {
                Some((net, a)) => (Some(net), a),
                None => (None, Allow::default()),
            };
            let origins = allow_origins(c, entry, &allow);
            let text = match entry {
                Some(net) => format!("{net} from {}", origins.join(" and ")),
                None => "an entry the controller does not know of matches".to_string(),
            };
            Stage::new("allowlist", Say::Objects(Reason::Allowlisted), text).with(|v| {
                v.entry = entry.map(Prefix);
                v.origins = origins;
            })
        }
        ListLookup::SummarySkips { trie_holds: true } => Stage::new(
            "allowlist",
            Say::Passes,
            "skipped: the list summary says no entry, yet the trie holds one (a summary hole)",
        ),
        _ => Stage::new("allowlist", Say::Passes, "no entry"),
    }
}

/// config (named in the config file), file (in one of its list files), cli, adopted.
fn allow_origins(c: &Controller, net: Option<ipnet::IpNet>, a: &Allow) -> Vec<String> {
    let mut out = Vec::new();
    if a.config {
        out.push(config_or_file(
            net.is_some_and(|n| c.settings.lists.allow.contains(&n)),
        ));
    }
    if a.cli {
        out.push("cli".to_string());
    }
    if a.adopted {
        out.push("adopted".to_string());
    }
    out
}

fn config_or_file(in_config: bool) -> String {
    if in_config { "config" } else { "file" }.to_string()
}

fn blocklist(c: &Controller, ip: IpAddr, found: &ListLookup<BlockEntry>, now: u64) -> Stage {
    let entry = match found {
        ListLookup::Hit(e) => *e,
        ListLookup::SummarySkips { trie_holds: true } => {
            return Stage::new(
                "blocklist",
                Say::Passes,
                "skipped: the list summary says no entry, yet the trie holds one (a summary hole)",
            );
        }
        _ => return Stage::new("blocklist", Say::Passes, "no entry"),
    };
    let (net, block) = match c.lists.block_covering(ip) {
        Some((net, b)) => (Some(net), b.clone()),
        None => (None, Block::default()),
    };
    let mut origins = Vec::new();
    if block.config {
        origins.push(config_or_file(
            net.is_some_and(|n| c.settings.lists.block.contains(&n)),
        ));
    }
    let note = block.operator.as_ref().and_then(|o| o.reason.clone());
    if let Some(o) = &block.operator {
        origins.push(
            match o.by {
                Setter::Cli => "cli",
                Setter::Detection => "detection",
                Setter::Adopted => "adopted",
            }
            .to_string(),
        );
    }
    let mut text = match net {
        Some(net) => format!("{net} from {}", origins.join(" and ")),
        None => "an entry the controller does not know of".to_string(),
    };
    if let Some(n) = &note {
        text.push_str(&format!(", reason {n:?}"));
    }
    let expires = entry.expires_ns;
    let (say, ttl_secs) = if expires == 0 {
        text.push_str(", permanent");
        (Say::Objects(Reason::Blocklisted), None)
    } else if expires > now {
        let left = (expires - now).div_ceil(NS);
        text.push_str(&format!(", {left} s left"));
        (Say::Objects(Reason::Blocklisted), Some(left))
    } else {
        text.push_str(", expired (the program ignores it; the controller removes it)");
        (Say::Passes, None)
    };
    Stage::new("blocklist", say, text).with(|v| {
        v.entry = net.map(Prefix);
        v.origins = origins;
        v.note = note;
        v.ttl_secs = ttl_secs;
    })
}

fn signatures(dp: &Dataplane, cfg: &Config, packet: &ExplainPacket) -> Result<Stage> {
    let f = cfg.flags;
    let amp = f & flags::SIG_AMP_PORTS != 0;
    let whole = "a whole datagram assumed (fragments: signature on)";
    let frag = if f & flags::SIG_FRAGMENTS != 0 {
        format!("; {whole}")
    } else {
        String::new()
    };
    Ok(match packet.proto {
        None if amp => Stage::new(
            "signatures",
            Say::Depends(vec!["--proto", "--sport"], Some(Reason::AmpPort)),
            format!("drops UDP from an amplification port (no --proto given){frag}"),
        ),
        Some(IPPROTO_UDP) if amp => match packet.sport {
            None => Stage::new(
                "signatures",
                Say::Depends(vec!["--sport"], Some(Reason::AmpPort)),
                format!("drops UDP from an amplification port (no --sport given){frag}"),
            ),
            Some(port) if dp.amp_port(port)? => {
                let text = format!("UDP source port {port} is an amplification port");
                // The program lets an answer to the host's own query through (a live flow).
                match (f & flags::TRACK_FLOWS != 0, packet.dst, packet.dport) {
                    (false, _, _) => Stage::new("signatures", Say::Objects(Reason::AmpPort), text),
                    (true, Some(dst), Some(dport)) => {
                        if dp.flow_known(cfg, (packet.source, port), (dst, dport), IPPROTO_UDP)? {
                            Stage::new(
                                "signatures",
                                Say::Passes,
                                format!("{text}, but it answers a query this host sent (a flow)"),
                            )
                        } else {
                            Stage::new(
                                "signatures",
                                Say::Objects(Reason::AmpPort),
                                format!("{text}, and answers no query this host sent"),
                            )
                        }
                    }
                    // Floods are the common case: dropped, and the exception named.
                    (true, _, _) => Stage::new(
                        "signatures",
                        Say::Objects(Reason::AmpPort),
                        format!(
                            "{text} (unless it answers a query this host sent: give --dst and --dport to check)"
                        ),
                    ),
                }
            }
            Some(port) => Stage::new(
                "signatures",
                Say::Passes,
                format!("UDP source port {port} is not an amplification port{frag}"),
            ),
        },
        Some(IPPROTO_TCP) if f & flags::SIG_TCP_FLAGS != 0 => Stage::new(
            "signatures",
            Say::Passes,
            format!("legitimate TCP flags assumed{frag}"),
        ),
        _ => Stage::new("signatures", Say::Passes, format!("none apply{frag}")),
    })
}

fn strict(dp: &Dataplane, cfg: &Config, packet: &ExplainPacket) -> Result<Stage> {
    if cfg.flags & flags::STRICT == 0 {
        return Ok(Stage::new("strict", Say::Passes, "not engaged"));
    }
    let v6 = packet.source.is_ipv6();
    let (proto, name) = match packet.proto {
        None => {
            return Ok(Stage::new(
                "strict",
                Say::Depends(vec!["--proto"], Some(Reason::NoService)),
                "engaged: TCP and UDP pass only to a service or in a flow of the host",
            ));
        }
        Some(IPPROTO_TCP) => (IPPROTO_TCP, "tcp"),
        Some(IPPROTO_UDP) => (IPPROTO_UDP, "udp"),
        Some(_) => {
            return Ok(Stage::new(
                "strict",
                Say::Passes,
                "engaged; applies to TCP and UDP only",
            ));
        }
    };
    // A flow of the host passes first, as in the program.
    let flow = match (packet.dst, packet.dport, packet.sport) {
        (Some(dst), Some(dport), sport) if proto == IPPROTO_UDP || sport.is_some() => {
            let src = (packet.source, sport.unwrap_or(0));
            Some(dp.flow_known(cfg, src, (dst, dport), proto)?)
        }
        _ => None,
    };
    if flow == Some(true) {
        return Ok(Stage::new(
            "strict",
            Say::PassesAs(Reason::Flow),
            "engaged: a flow of the host (it started or answered it)",
        ));
    }
    let flow_note = match flow {
        Some(_) => "no flow of the host",
        None => "a flow of the host would let it pass (give --dst and the ports to check)",
    };
    if proto == IPPROTO_TCP && !packet.syn {
        return Ok(Stage::new(
            "strict",
            Say::Depends(vec!["a connection of the host"], Some(Reason::NoFlow)),
            "engaged: a TCP segment passes only in a flow or connection of the host, or with a valid SYN cookie",
        ));
    }
    let Some(port) = packet.dport else {
        return Ok(Stage::new(
            "strict",
            Say::Depends(vec!["--dport"], Some(Reason::NoService)),
            format!("engaged: {name} passes only to a served port; {flow_note}"),
        ));
    };
    let Some(slot) = dp.service_slot(v6, proto, port, packet.dst)? else {
        let bound = dp.service_prefixes(v6, proto, port)?;
        let on: Vec<String> = bound.iter().map(|n| n.to_string()).collect();
        return Ok(match packet.dst {
            None if !bound.is_empty() => Stage::new(
                "strict",
                Say::Depends(vec!["--dst"], Some(Reason::NoService)),
                format!("engaged: {name}/{port} is served on {} only", on.join(", ")),
            ),
            None => Stage::new(
                "strict",
                Say::Objects(Reason::NoService),
                format!("engaged: no service {name}/{port}; {flow_note}"),
            ),
            Some(dst) => Stage::new(
                "strict",
                Say::Objects(Reason::NoService),
                format!("engaged: no service {name}/{port} on {dst}; {flow_note}"),
            ),
        });
    };
    if proto == IPPROTO_TCP {
        // In enforce the program answers only for a listening socket of the host (and a SYN
        // without IP options); else the later stages decide.
        let say = if cfg.mode() == Mode::Enforce {
            Say::Depends(vec!["a listening socket"], Some(Reason::SynCookie))
        } else {
            Say::Objects(Reason::SynCookie)
        };
        return Ok(Stage::new(
            "strict",
            say,
            format!(
                "engaged: tcp/{port} served; the SYN is answered with a SYN cookie when a socket of the host listens"
            ),
        ));
    }
    if cfg.flags & flags::UDP_BUDGET == 0 {
        return Ok(Stage::new(
            "strict",
            Say::Passes,
            format!("engaged: udp/{port} served; {flow_note}"),
        ));
    }
    let (refusing, cpus) = dp.budget_refusing(cfg, slot)?;
    let budget = match ceiling_pps(&cfg.unknown_budget, cpus) {
        Some(pps) => format!("unknown sources share its budget of {pps} pps"),
        None => "unknown sources share its budget".to_string(),
    };
    let head = format!("engaged: udp/{port} served, {flow_note}; {budget}");
    Ok(if refusing == cpus {
        Stage::new(
            "strict",
            Say::Objects(Reason::UnknownBudget),
            format!("{head}, spent on every CPU"),
        )
    } else if refusing > 0 {
        Stage::new(
            "strict",
            Say::Depends(vec!["the receiving CPU"], Some(Reason::UnknownBudget)),
            format!("{head}, spent on {refusing} of {cpus} CPUs"),
        )
    } else {
        Stage::new("strict", Say::Passes, format!("{head}, room on every CPU"))
    })
}

/// Packets left in a packet bucket of `limit` whose TAT is `tat`, at `now`.
fn tokens(limit: &Limit, tat: u64, now: u64) -> Option<u64> {
    if limit.pkt_cost_ns == 0 {
        return None;
    }
    let backlog = tat.saturating_sub(now);
    Some(limit.pkt_burst_ns.saturating_sub(backlog) / limit.pkt_cost_ns)
}

fn per_source(cfg: &Config, p: &Probe, packet: &ExplainPacket) -> Stage {
    if cfg.flags & flags::SOURCE_LIMITS == 0 {
        return Stage::new("per_source", Say::Passes, "per-source limits off");
    }
    let now = p.now_ns;
    let class = packet.class();
    let Some(s) = p.source else {
        let text = match class {
            Some(k) if is_unlimited(&cfg.source[k as usize]) => {
                format!("not tracked; no {} limit", k.name())
            }
            _ => "not tracked (its first packets pass; a heavy source gets an entry)".to_string(),
        };
        return Stage::new("per_source", Say::Passes, text).with(|v| v.tracked = Some(false));
    };
    let penalties: BTreeMap<String, u64> = Class::ALL
        .iter()
        .filter(|k| s.blocked_until[**k as usize] > now)
        .map(|k| {
            let left = (s.blocked_until[*k as usize] - now).div_ceil(NS);
            (k.name().to_string(), left)
        })
        .collect();
    let penalty_text = |only: Option<Class>| -> Vec<String> {
        penalties
            .iter()
            .filter(|(k, _)| only.is_none_or(|o| o.name() == k.as_str()))
            .map(|(k, left)| format!("{k} penalty {left} s left"))
            .collect()
    };
    let offences = match s.offences {
        1 => "1 offence".to_string(),
        n => format!("{n} offences"),
    };
    let (say, mut parts, tokens_left) = match class {
        None => {
            let parts = penalty_text(None);
            let say = if penalties.is_empty() {
                Say::Passes
            } else {
                Say::Depends(vec!["--proto"], Some(Reason::SourcePenalty))
            };
            (say, parts, None)
        }
        Some(k) => {
            let c = k as usize;
            let limit = &cfg.source[c];
            let (mut pt, mut bt) = (s.pkt_tat[c], s.byte_tat[c]);
            let left = tokens(limit, s.pkt_tat[c], now);
            if s.blocked_until[c] > now {
                (
                    Say::Objects(Reason::SourcePenalty),
                    penalty_text(Some(k)),
                    left,
                )
            } else if is_unlimited(limit) {
                (Say::Passes, vec![format!("no {} limit", k.name())], None)
            } else if !admit(&mut pt, &mut bt, limit, MIN_FRAME, now) {
                (
                    Say::Objects(Reason::SourceRate),
                    vec![format!("over its {} limit", k.name())],
                    left,
                )
            } else {
                let burst = limit.pkt_burst_ns.checked_div(limit.pkt_cost_ns);
                let text = match (left, burst) {
                    (Some(l), Some(b)) => format!("{} {l} of {b} packets left", k.name()),
                    _ => format!("{} within its limit", k.name()),
                };
                (Say::Passes, vec![text], left)
            }
        }
    };
    parts.push(offences);
    // In enforce, with strict configured, a SYN the penalty refuses is answered with a
    // cookie instead (the program's PenaltyCookie), so a real client behind the address
    // still connects.
    let say = match say {
        Say::Objects(Reason::SourcePenalty | Reason::SourceRate)
            if class == Some(Class::TcpSyn)
                && cfg.mode() == Mode::Enforce
                && cfg.flags & flags::TRACK_FLOWS != 0 =>
        {
            parts.push(
                "a SYN is answered with a cookie, not dropped, where a local socket listens"
                    .to_string(),
            );
            Say::Objects(Reason::PenaltyCookie)
        }
        say => say,
    };
    if let Some(k) = class {
        // Penalties in other classes leave this packet alone, but they are the source's state.
        parts.extend(
            penalty_text(None)
                .into_iter()
                .filter(|t| !t.starts_with(&format!("{} ", k.name()))),
        );
    }
    Stage::new("per_source", say, format!("tracked: {}", parts.join(", "))).with(|v| {
        v.tracked = Some(true);
        v.penalty_secs = penalties;
        v.tokens = tokens_left;
        v.offences = Some(s.offences);
    })
}

/// A per-CPU limit's rate, packets a second, all `cpus`.
fn ceiling_pps(limit: &Limit, cpus: usize) -> Option<u64> {
    let per_cpu = NS.checked_div(limit.pkt_cost_ns)?;
    Some(per_cpu * cpus as u64)
}

fn aggregate(c: &Controller, cfg: &Config, p: &Probe, packet: &ExplainPacket) -> Stage {
    let Some(k) = packet.class() else {
        let ceilings: Vec<&str> = Class::ALL
            .iter()
            .filter(|k| !is_unlimited(&cfg.aggregate[**k as usize]))
            .map(|k| k.name())
            .collect();
        let attacked: Vec<String> = Class::ALL
            .iter()
            .filter(|k| c.engine.state(**k) != crate::engine::AttackState::Normal)
            .map(|k| format!("{} {}", k.name(), c.engine.state(*k).name()))
            .collect();
        let attack = if attacked.is_empty() {
            "no class under attack".to_string()
        } else {
            attacked.join(", ")
        };
        return if ceilings.is_empty() {
            Stage::new(
                "aggregate",
                Say::Passes,
                format!("{attack}; no aggregate ceilings"),
            )
        } else {
            Stage::new(
                "aggregate",
                Say::Depends(vec!["--proto"], Some(Reason::Aggregate)),
                format!("{attack}; ceilings on {}", ceilings.join(", ")),
            )
        };
    };
    let state = c.engine.state(k).name();
    let baseline = c.engine.baseline_pps(k);
    let age = c.engine.attack_age(k).map(|d| d.as_secs());
    let head = match age {
        Some(secs) => format!(
            "class {}: {state}, attack declared {secs} s ago (baseline {baseline} pps)",
            k.name()
        ),
        None => format!("class {}: {state} (baseline {baseline} pps)", k.name()),
    };
    let limit = &cfg.aggregate[k as usize];
    let (say, text, ceiling) = match p.aggregate_refusing {
        None => (Say::Passes, format!("{head}, no aggregate ceiling"), None),
        Some((refusing, cpus)) => {
            let ceiling = ceiling_pps(limit, cpus);
            let rate = match ceiling {
                Some(pps) => format!("aggregate ceiling {pps} pps"),
                None => "aggregate ceiling in bytes".to_string(),
            };
            if refusing == cpus {
                (
                    Say::Objects(Reason::Aggregate),
                    format!("{head}, {rate}, reached on every CPU"),
                    ceiling,
                )
            } else if refusing > 0 {
                (
                    Say::Depends(vec!["the receiving CPU"], Some(Reason::Aggregate)),
                    format!("{head}, {rate}, reached on {refusing} of {cpus} CPUs"),
                    ceiling,
                )
            } else {
                (
                    Say::Passes,
                    format!("{head}, {rate}, room on every CPU"),
                    ceiling,
                )
            }
        }
    };
    Stage::new("aggregate", say, text).with(|v| {
        v.attack = Some(state.to_string());
        v.attack_secs = age;
        v.ceiling_pps = ceiling;
    })
}

/// Whether a rule can match the packet: no, yes, or depending on these details.
fn rule_match(rule: &UpstreamRule, packet: &ExplainPacket) -> Option<Vec<&'static str>> {
    let (src, v6) = (abi_address(packet.source), packet.source.is_ipv6());
    if (rule.family == 6) != v6 {
        return None;
    }
    if (0..16).any(|i| src[i] & rule.src_mask[i] != rule.src[i]) {
        return None;
    }
    let mut depends = Vec::new();
    match packet.dst {
        _ if rule.dst_mask.iter().all(|b| *b == 0) => {}
        Some(dst) => {
            let dst = abi_address(dst);
            if (0..16).any(|i| dst[i] & rule.dst_mask[i] != rule.dst[i]) {
                return None;
            }
        }
        None => depends.push("--dst"),
    }
    let within = |v: u16, r: [u16; 2]| v >= r[0] && v <= r[1];
    if rule.proto != [0, 255] {
        match packet.proto {
            Some(p) if p < rule.proto[0] || p > rule.proto[1] => return None,
            Some(_) => {}
            None => depends.push("--proto"),
        }
    }
    let ported = matches!(packet.proto, Some(IPPROTO_TCP | IPPROTO_UDP));
    if rule.ports != 0 && packet.proto.is_some() && !ported {
        return None;
    }
    for (name, port, range) in [
        ("--sport", packet.sport, rule.src_port),
        ("--dport", packet.dport, rule.dst_port),
    ] {
        if range != [0, u16::MAX] {
            match port {
                Some(p) if !within(p, range) => return None,
                Some(_) => {}
                None => depends.push(name),
            }
        }
    }
    if rule.len != [0, u16::MAX] {
        depends.push("the packet's length");
    }
    Some(depends)
}

fn upstream(rules: &[UpstreamRule], packet: &ExplainPacket) -> Stage {
    if rules.is_empty() {
        return Stage::new("upstream", Say::Passes, "no rules received");
    }
    // The program takes the first rule that matches. A rule that may match leaves the answer
    // open, but a later rule that surely discards still decides if the earlier ones do not.
    let mut maybe: Vec<String> = Vec::new();
    let mut on: Vec<&'static str> = Vec::new();
    let mut all_discard = true;
    for (i, rule) in rules.iter().enumerate() {
        let Some(depends) = rule_match(rule, packet) else {
            continue;
        };
        let discard = rule.action == filter_common::abi::upstream_action::DISCARD;
        let what = if discard { "discard" } else { "rate limit" };
        if depends.is_empty() && discard {
            let text = format!("rule {i} of {} matches: {what}", rules.len());
            if maybe.is_empty() {
                return Stage::new("upstream", Say::Objects(Reason::UpstreamRule), text);
            }
            maybe.push(text);
            // Which rule it is depends on the details; that it is discarded does not, when
            // every rule that may match first discards too.
            let say = if all_discard {
                Say::Objects(Reason::UpstreamRule)
            } else {
                Say::Depends(on, Some(Reason::UpstreamRule))
            };
            return Stage::new("upstream", say, maybe.join("; "));
        }
        all_discard &= discard;
        maybe.push(format!("rule {i} of {} may match: {what}", rules.len()));
        for d in depends {
            if !on.contains(&d) {
                on.push(d);
            }
        }
        if !discard && !on.contains(&"the rule's rate") {
            on.push("the rule's rate");
        }
    }
    if maybe.is_empty() {
        return Stage::new(
            "upstream",
            Say::Passes,
            format!("none of {} received rules matches", rules.len()),
        );
    }
    Stage::new(
        "upstream",
        Say::Depends(on, Some(Reason::UpstreamRule)),
        maybe.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, say: Say) -> Stage {
        Stage::new(name, say, name)
    }

    #[test]
    fn the_first_stage_that_objects_decides_and_the_mode_gives_the_action() {
        let run = |mode| {
            verdict(
                "eth0".into(),
                mode,
                vec![
                    stage("allowlist", Say::Passes),
                    stage(
                        "signatures",
                        Say::Depends(vec!["--sport"], Some(Reason::AmpPort)),
                    ),
                    stage("blocklist", Say::Objects(Reason::Blocklisted)),
                    stage("per_source", Say::Objects(Reason::SourcePenalty)),
                ],
            )
        };
        let v = run(Mode::Enforce);
        assert_eq!(
            (v.action.as_str(), v.reason.as_str()),
            ("drop", "blocklisted")
        );
        assert_eq!(v.decided_by.as_deref(), Some("blocklist"));
        assert_eq!(v.unless, ["signatures (--sport)"]);
        let outcomes: Vec<_> = v.stages.iter().map(|s| s.outcome.as_str()).collect();
        assert_eq!(outcomes, ["passes", "depends", "decides", "not_reached"]);
        assert_eq!(v.stages[3].reason.as_deref(), Some("source_penalty"));
        assert_eq!(run(Mode::Monitor).action, "would_drop");
        let off = run(Mode::Off);
        assert_eq!(
            (off.action.as_str(), off.reason.as_str()),
            ("pass", "mode_off")
        );
        assert!(off.stages.iter().all(|s| s.outcome == "not_reached"));

        let allowed = verdict(
            "eth0".into(),
            Mode::Lockdown,
            vec![
                stage("allowlist", Say::Objects(Reason::Allowlisted)),
                stage("lockdown", Say::Objects(Reason::Lockdown)),
            ],
        );
        assert_eq!(
            (allowed.action.as_str(), allowed.reason.as_str()),
            ("pass", "allowlisted")
        );
        let clean = verdict("eth0".into(), Mode::Enforce, vec![stage("x", Say::Passes)]);
        assert_eq!(
            (clean.action.as_str(), clean.reason.as_str()),
            ("pass", "clean")
        );
        assert_eq!(clean.decided_by, None);
    }

    #[test]
    fn tokens_left_follow_the_bucket() {
        let limit = filter_common::config::Rate {
            pps: 100,
            burst_packets: 20,
            ..Default::default()
        }
        .encode();
        let now = 1_000 * NS;
        assert_eq!(tokens(&limit, 0, now), Some(20), "idle: a full bucket");
        // Five packets paid at `now`: 15 left.
        assert_eq!(tokens(&limit, now + 5 * limit.pkt_cost_ns, now), Some(15));
        assert_eq!(tokens(&limit, now + limit.pkt_burst_ns, now), Some(0));
        assert_eq!(tokens(&Limit::default(), 0, now), None);
        assert_eq!(ceiling_pps(&limit, 2), Some(200));
    }

    #[test]
    fn upstream_rules_match_on_what_is_known() {
        let mut rule = UpstreamRule {
            family: 4,
            action: filter_common::abi::upstream_action::DISCARD,
            proto: [17, 17],
            src_port: [123, 123],
            dst_port: [0, u16::MAX],
            len: [0, u16::MAX],
            ports: 1,
            ..UpstreamRule::default()
        };
        let packet = |proto, sport| {
            ExplainPacket::new("192.0.2.7".parse().unwrap(), proto, sport, None, false).unwrap()
        };
        assert_eq!(
            rule_match(&rule, &packet(Some(17), Some(123))),
            Some(vec![])
        );
        assert_eq!(rule_match(&rule, &packet(Some(17), Some(53))), None);
        assert_eq!(rule_match(&rule, &packet(Some(1), None)), None);
        assert_eq!(
            rule_match(&rule, &packet(None, None)),
            Some(vec!["--proto", "--sport"])
        );
        rule.src = [198, 51, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        rule.src_mask = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            rule_match(&rule, &packet(Some(17), Some(123))),
            None,
            "another source"
        );
        let s = upstream(&[rule], &packet(Some(17), Some(123)));
        assert_eq!(s.say, Say::Passes);
    }

    #[test]
    fn a_rule_that_may_match_leaves_a_later_sure_discard_deciding_if_it_does_not() {
        let any = UpstreamRule {
            family: 4,
            action: filter_common::abi::upstream_action::DISCARD,
            proto: [0, 255],
            src_port: [0, u16::MAX],
            dst_port: [0, u16::MAX],
            len: [0, u16::MAX],
            ..UpstreamRule::default()
        };
        let mut to_one_host = any;
        to_one_host.dst = [198, 18, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        to_one_host.dst_mask = [255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut from_a_net = any;
        from_a_net.src = [203, 0, 113, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        from_a_net.src_mask = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let rules = [to_one_host, from_a_net];
        let from = |dst: Option<&str>| {
            ExplainPacket::new("203.0.113.9".parse().unwrap(), None, None, None, false)
                .unwrap()
                .to(dst.map(|d| d.parse().unwrap()))
                .unwrap()
        };
        // Whatever the destination, it is discarded: rule 0 only decides which rule does it.
        let s = upstream(&rules, &from(None));
        assert_eq!(s.say, Say::Objects(Reason::UpstreamRule));
        assert!(s.view.say.contains("rule 1 of 2 matches"), "{}", s.view.say);
        // Were rule 0 a rate, the drop would depend on the destination (and the rate).
        let mut rated = rules;
        rated[0].action = filter_common::abi::upstream_action::RATE;
        let s = upstream(&rated, &from(None));
        assert_eq!(
            s.say,
            Say::Depends(vec!["--dst", "the rule's rate"], Some(Reason::UpstreamRule))
        );
        let s = upstream(&rules, &from(Some("198.18.0.1")));
        assert_eq!(s.say, Say::Objects(Reason::UpstreamRule));
        assert_eq!(s.view.say, "rule 1 of 2 matches: discard");
    }
}
