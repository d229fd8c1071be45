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
        AllowEntry, BlockEntry, Class, Config, Limit, Mode, Reason, Stage as StageName,
        UpstreamRule, flags,
    },
    limit::is_unlimited,
    parse::{IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    api::{
        ExplainPacket,
        views::{ExplainView, InterfaceExplain, Outcome, Prefix, StageView},
    },
    controller::Controller,
    dataplane::{Dataplane, ListLookup, Probe, abi_address},
};

const NS: u64 = 1_000_000_000;

/// A frame of the smallest size, for the byte buckets.
const MIN_FRAME: u64 = 64;

/// `levee explain SOURCE ...`: the verdict a packet would get now on each interface, and
/// every stage's say. The CLI builds the packet from its arguments (`cli::Command::Explain`),
/// checked there and again here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Explain {
    pub packet: ExplainPacket,
    #[serde(skip)]
    pub json: bool,
}

impl super::Command for Explain {
    type View = ExplainView;
    fn apply(self, c: &mut Controller) -> Result<ExplainView> {
        explain(c, self.packet)
    }
    fn print(&self, view: &ExplainView, out: &mut dyn std::io::Write) -> Result<()> {
        Ok(crate::cli::print::Print::print(view, out)?)
    }
    fn json(&self) -> bool {
        self.json
    }
}

fn explain(c: &Controller, packet: ExplainPacket) -> Result<ExplainView> {
    let verification = c.verification(packet.source);
    let mut interfaces = Vec::new();
    for i in &c.fleet.interfaces {
        interfaces.push(evaluate(c, &i.dp, i.name.clone(), &packet)?);
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
        familiar_secs_ago: familiar_ago(c, packet.source)?.map(|a| a.as_secs()),
        interfaces,
    })
}

/// How long ago `source` last sent within its limits while calm, if it is familiar on any
/// interface.
fn familiar_ago(c: &Controller, source: std::net::IpAddr) -> Result<Option<std::time::Duration>> {
    let ttl = c.settings.strict.familiar_ttl.as_nanos() as u64;
    let mut best: Option<std::time::Duration> = None;
    for i in &c.fleet.interfaces {
        if let Some(ago) = i.dp.familiar_ago(source, ttl)? {
            best = Some(best.map_or(ago, |b| b.min(ago)));
        }
    }
    Ok(best)
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

impl Say {
    /// The say of a shared stage decision (`filter_common::stage`) that objected with
    /// `reason`, or passed, when the details in `assumed` were answered as the packet
    /// would be refused: a refusal depends on them; a pass passes whatever they are.
    fn of(reason: Option<Reason>, assumed: &[&'static str]) -> Say {
        match reason {
            None => Say::Passes,
            Some(r) if assumed.is_empty() => Say::Objects(r),
            Some(r) => Say::Depends(assumed.to_vec(), Some(r)),
        }
    }
}

pub(crate) struct Stage {
    say: Say,
    view: StageView,
}

impl Stage {
    fn new(stage: StageName, say: Say, text: impl Into<String>) -> Stage {
        Stage {
            say,
            view: StageView::new(stage, text.into()),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut StageView)) -> Stage {
        f(&mut self.view);
        self
    }
}

/// The verdict: the first stage that objects decides, in the mode of the interface's CONFIG.
pub(crate) fn verdict(interface: String, mode: Mode, stages: Vec<Stage>) -> InterfaceExplain {
    let mut decided: Option<(StageName, Reason)> = None;
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
                (Outcome::NotReached, reason)
            }
            (None, Say::Passes, _) => (Outcome::Passes, None),
            (None, Say::PassesAs(r), _) => {
                passes_as = r;
                (Outcome::Passes, None)
            }
            (None, Say::Objects(r), _) => {
                decided = Some((view.stage, r));
                (Outcome::Decides, Some(r))
            }
            (None, Say::Depends(on, r), _) => {
                unless.push(format!("{} ({})", view.stage.name(), on.join(", ")));
                view.depends_on = on.iter().map(|s| s.to_string()).collect();
                (Outcome::Depends, r)
            }
        };
        view.outcome = outcome;
        view.reason = reason;
        views.push(view);
    }
    let (decided_by, reason) = match (mode, decided) {
        (Mode::Off, _) => (Some("mode".to_string()), Reason::ModeOff),
        (_, Some((stage, r))) => (Some(stage.name().to_string()), r),
        (_, None) => (None, passes_as),
    };
    InterfaceExplain {
        interface,
        mode,
        action: filter_common::abi::action(mode, reason),
        reason,
        decided_by,
        unless,
        stages: views,
    }
}

/// One interface's verdict on `packet` and every stage's say, from its maps as they are now;
/// `books` adds what only the controller knows (who set an entry, the attack state).
pub fn evaluate(
    books: &dyn Books,
    dp: &Dataplane,
    interface: String,
    packet: &ExplainPacket,
) -> Result<InterfaceExplain> {
    let probe = dp.probe(packet.source, packet.class())?;
    let stages = stages(books, dp, &probe, packet)?;
    Ok(verdict(interface, probe.config.mode(), stages))
}

/// Every stage's say, in the program's order ([`StageName::ALL`], filter-common's).
fn stages(
    books: &dyn Books,
    dp: &Dataplane,
    p: &Probe,
    packet: &ExplainPacket,
) -> Result<Vec<Stage>> {
    StageName::ALL
        .iter()
        .map(|stage| {
            Ok(match stage {
                StageName::BgpSession => bgp_session(p, packet),
                StageName::Allowlist => allowlist(books, packet.source, &p.allow),
                StageName::Lockdown => lockdown(p.config.mode()),
                StageName::Blocklist => blocklist(books, packet.source, &p.block, p.now_ns),
                StageName::Signatures => signatures(dp, &p.config, packet)?,
                StageName::Strict => strict(dp, &p.config, packet)?,
                StageName::PerSource => per_source(&p.config, p, packet),
                StageName::Aggregate => aggregate(books, &p.config, p, packet),
                StageName::Received => received(&p.upstream, packet),
            })
        })
        .collect()
}

fn lockdown(mode: Mode) -> Stage {
    if mode == Mode::Lockdown {
        Stage::new(
            StageName::Lockdown,
            Say::Objects(Reason::Lockdown),
            "mode lockdown: all that is not allowlisted is dropped",
        )
    } else {
        Stage::new(
            StageName::Lockdown,
            Say::Passes,
            format!("not in lockdown (mode {})", mode.name()),
        )
    }
}

fn allowlist(books: &dyn Books, ip: IpAddr, found: &ListLookup<AllowEntry>) -> Stage {
    match found {
        ListLookup::Hit(_) => {
            let entry = books.allow_entry(ip);
            let text = match &entry {
                Some(e) => format!("{} from {}", e.net, e.origins.join(" and ")),
                None => "an entry the controller does not know of matches".to_string(),
            };
            Stage::new(
                StageName::Allowlist,
                Say::Objects(Reason::Allowlisted),
                text,
            )
            .with(|v| {
                if let Some(e) = entry {
                    v.entry = Some(Prefix(e.net));
                    v.origins = e.origins;
                }
            })
        }
        ListLookup::SummarySkips { trie_holds: true } => Stage::new(
            StageName::Allowlist,
            Say::Passes,
            "skipped: the list summary says no entry, yet the trie holds one (a summary hole)",
        ),
        _ => Stage::new(StageName::Allowlist, Say::Passes, "no entry"),
    }
}

/// A BGP session with a neighbour of escalation's passes before every stage (as BGP_PEERS
/// holds them: the neighbours the config names, while escalation is on).
fn bgp_session(p: &Probe, packet: &ExplainPacket) -> Stage {
    if !p.bgp_peer {
        return Stage::new(
            StageName::BgpSession,
            Say::Passes,
            "not a BGP neighbour of Levee's",
        );
    }
    let port = filter_common::abi::BGP_PORT;
    let ports = [packet.sport, packet.dport];
    match packet.proto {
        Some(IPPROTO_TCP) if ports.contains(&Some(port)) => Stage::new(
            StageName::BgpSession,
            Say::Objects(Reason::BgpSession),
            format!(
                "Levee's BGP session with {}: no stage may cut it",
                packet.source
            ),
        ),
        Some(IPPROTO_TCP) if ports.iter().all(Option::is_some) => Stage::new(
            StageName::BgpSession,
            Say::Passes,
            format!("a BGP neighbour, but neither port is {port}"),
        ),
        Some(IPPROTO_TCP) | None => Stage::new(
            StageName::BgpSession,
            Say::Depends(vec!["--proto tcp", "--sport", "--dport"], None),
            format!("a BGP neighbour: its TCP to or from port {port} passes before every stage"),
        ),
        Some(_) => Stage::new(
            StageName::BgpSession,
            Say::Passes,
            "a BGP neighbour, not TCP",
        ),
    }
}

fn blocklist(books: &dyn Books, ip: IpAddr, found: &ListLookup<BlockEntry>, now: u64) -> Stage {
    let entry = match found {
        ListLookup::Hit(e) => *e,
        ListLookup::SummarySkips { trie_holds: true } => {
            return Stage::new(
                StageName::Blocklist,
                Say::Passes,
                "skipped: the list summary says no entry, yet the trie holds one (a summary hole)",
            );
        }
        _ => return Stage::new(StageName::Blocklist, Say::Passes, "no entry"),
    };
    let known = books.block_entry(ip);
    let mut text = match &known {
        Some(e) => format!("{} from {}", e.net, e.origins.join(" and ")),
        None => "an entry the controller does not know of".to_string(),
    };
    let note = known.as_ref().and_then(|e| e.note.clone());
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
    Stage::new(StageName::Blocklist, say, text).with(|v| {
        if let Some(e) = known {
            v.entry = Some(Prefix(e.net));
            v.origins = e.origins;
        }
        v.note = note;
        v.ttl_secs = ttl_secs;
    })
}

mod books;
mod limits;
mod reads;
mod received;
mod signatures;
mod strict;

pub use self::books::{Books, NoBooks};
use self::{
    limits::{aggregate, ceiling_pps, per_source},
    received::received,
    signatures::signatures,
    strict::strict,
};

#[cfg(test)]
mod tests;
