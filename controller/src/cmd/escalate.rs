//! `levee escalate rtbh|flowspec|list|withdraw`: rules announced upstream through the BGP
//! daemon, each checked by the policy first (see [`crate::escalation`]).

use std::{io::Write, time::Duration};

use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};

use super::{Command, Request};
use crate::{
    api::{Response, wire},
    cli::print::Print as _,
    controller::Controller,
    escalation::{
        Audience, Rule,
        bgp::{Bgp, EscalationsView, Origin, Reply, RuleView},
    },
};

/// `levee escalate rtbh|flowspec`: announces a rule upstream for `ttl`
/// (escalation.default_ttl when absent); with `dry_run`, checks and logs it only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalate {
    pub rule: Rule,
    /// The neighbour group(s) it goes to.
    #[serde(default)]
    pub to: Audience,
    #[serde(default, rename = "ttl_secs", with = "wire::opt_secs")]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub dry_run: bool,
}

impl Command for Escalate {
    type View = RuleView;
    /// Without gobgpd's answer: a dry run, or escalation off (see [`answer_later`]).
    fn apply(self, c: &mut Controller) -> Result<RuleView> {
        add(c, self.rule, self.to, self.ttl, self.dry_run)
    }
    fn print(&self, r: &RuleView, out: &mut dyn Write) -> Result<()> {
        if r.dry_run {
            writeln!(
                out,
                "dry-run: would announce {}{} for {}s (nothing sent)",
                r.rule,
                to_whom(r),
                r.ttl_left_secs
            )?;
        } else {
            writeln!(
                out,
                "announced #{} {}{} for {}s",
                r.id,
                r.rule,
                to_whom(r),
                r.ttl_left_secs
            )?;
        }
        Ok(())
    }
}

/// " to the fleet" for a rule that goes there; nothing for the upstream's (escalation's first
/// and usual audience).
fn to_whom(r: &RuleView) -> String {
    match r.to {
        Audience::Upstream => String::new(),
        to => format!(" {}", to.towards()),
    }
}

/// `levee escalate list [--received] [--json]`: the rules announced, read back from the BGP
/// daemon's RIB, and the ones received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateList {
    /// Print the received rules instead.
    #[serde(skip)]
    pub received: bool,
    #[serde(skip)]
    pub json: bool,
}

impl Command for EscalateList {
    type View = EscalationsView;
    fn apply(self, c: &mut Controller) -> Result<EscalationsView> {
        off(c)
    }
    fn print(&self, view: &EscalationsView, out: &mut dyn Write) -> Result<()> {
        match (self.json, self.received) {
            (true, false) => serde_json::to_writer_pretty(&mut *out, view)?,
            (true, true) => serde_json::to_writer_pretty(&mut *out, &view.received)?,
            (false, false) => view.print(out)?,
            (false, true) => view.received.print(out)?,
        }
        if self.json {
            writeln!(out)?;
        }
        Ok(())
    }
}

/// `levee escalate withdraw ID|--all [--dry-run]`: withdraws rule `id`, or every rule when
/// `id` is absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateWithdraw {
    #[serde(default)]
    pub id: Option<u32>,
    #[serde(default)]
    pub dry_run: bool,
}

impl Command for EscalateWithdraw {
    type View = Vec<RuleView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<RuleView>> {
        off(c)
    }
    fn print(&self, gone: &Vec<RuleView>, out: &mut dyn Write) -> Result<()> {
        for r in gone {
            let verb = if r.dry_run {
                "would withdraw"
            } else {
                "withdrew"
            };
            writeln!(out, "{verb} #{} {}", r.id, r.rule)?;
        }
        if gone.is_empty() {
            writeln!(out, "no rules to withdraw")?;
        }
        Ok(())
    }
}

fn upstream(u: &mut Option<Bgp>) -> Result<&mut Bgp> {
    u.as_mut().ok_or_else(|| {
        anyhow!("escalation is off: set escalation.mode in the config and restart levee")
    })
}

/// `list` and `withdraw` while escalation is off (when on, they are answered later).
fn off<T>(c: &mut Controller) -> Result<T> {
    upstream(&mut c.bgp)?;
    Err(anyhow!("an escalation command reached the wrong handler"))
}

/// `escalate rtbh|flowspec --dry-run`, or any while escalation is off.
fn add(
    c: &mut Controller,
    rule: Rule,
    to: Audience,
    ttl: Option<Duration>,
    dry_run: bool,
) -> Result<RuleView> {
    let lists = &c.lists;
    upstream(&mut c.bgp)?.announce(
        rule,
        to,
        ttl,
        Origin::Operator,
        |net| lists.allows_any(&net),
        dry_run,
    )
}

/// Hands an escalation command's reply over to be answered once gobgpd has answered
/// (announce, list, withdraw), so the controller never waits on gobgpd. The reply comes back
/// when the request is not one of those, or escalation is off: [`Request::apply`] answers it.
pub fn answer_later(c: &mut Controller, request: &Request, reply: Reply) -> Result<(), Reply> {
    let Some(u) = c.bgp.as_mut() else {
        return Err(reply);
    };
    match request {
        Request::Escalate(Escalate {
            rule,
            to,
            ttl,
            dry_run: false,
        }) => {
            let lists = &c.lists;
            let announced = u.announce(
                rule.clone(),
                *to,
                *ttl,
                Origin::Operator,
                |net| lists.allows_any(&net),
                false,
            );
            match announced {
                Ok(view) if view.announce_pending => u.answer_when_announced(view.id, reply),
                done => {
                    let _ = reply.send(Response::from_result(done));
                }
            }
        }
        Request::EscalateList(_) => u.list(reply),
        Request::EscalateWithdraw(EscalateWithdraw { id, dry_run }) => {
            u.withdraw(*id, "operator", *dry_run, reply)
        }
        _ => return Err(reply),
    }
    Ok(())
}
