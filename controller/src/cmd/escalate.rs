//! `levee escalate rtbh|flowspec|list|withdraw`: rules announced upstream through the BGP
//! daemon, each checked by the policy first (see [`crate::escalation`]).

use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::{
    controller::Controller,
    escalation::{
        Rule,
        upstream::{EscalationsView, Origin, RuleView, Upstream},
    },
};

fn upstream(u: &mut Option<Upstream>) -> Result<&mut Upstream> {
    u.as_mut().ok_or_else(|| {
        anyhow!("escalation is off: set escalation.mode in the config and restart levee")
    })
}

pub fn add(
    c: &mut Controller,
    rule: Rule,
    ttl: Option<Duration>,
    dry_run: bool,
) -> Result<RuleView> {
    let lists = &c.lists;
    upstream(&mut c.upstream)?.announce(
        rule,
        ttl,
        Origin::Operator,
        |ip| lists.allows_address(ip),
        dry_run,
    )
}

pub fn list(c: &mut Controller) -> Result<EscalationsView> {
    upstream(&mut c.upstream)?.list()
}

/// Withdraws one rule, or all of them.
pub fn withdraw(c: &mut Controller, id: Option<u32>, dry_run: bool) -> Result<Vec<RuleView>> {
    let u = upstream(&mut c.upstream)?;
    match id {
        Some(id) => Ok(vec![u.withdraw(id, "operator", dry_run)?]),
        None => u.withdraw_all("operator", dry_run),
    }
}
