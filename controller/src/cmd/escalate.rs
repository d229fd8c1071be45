//! `levee escalate rtbh|flowspec|list|withdraw`: rules announced upstream through the BGP
//! daemon, each checked by the policy first (see [`crate::escalation`]).

use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::{
    api::{Request, Response},
    controller::Controller,
    escalation::{
        Rule,
        bgp::{Bgp, Origin, Reply, RuleView},
    },
};

fn upstream(u: &mut Option<Bgp>) -> Result<&mut Bgp> {
    u.as_mut().ok_or_else(|| {
        anyhow!("escalation is off: set escalation.mode in the config and restart levee")
    })
}

/// `list` and `withdraw` while escalation is off (when on, they are answered later).
pub fn off(c: &mut Controller) -> Result<()> {
    upstream(&mut c.bgp)?;
    Err(anyhow!("an escalation command reached the wrong handler"))
}

/// `escalate rtbh|flowspec --dry-run`, or any while escalation is off.
pub fn add(
    c: &mut Controller,
    rule: Rule,
    ttl: Option<Duration>,
    dry_run: bool,
) -> Result<RuleView> {
    let lists = &c.lists;
    upstream(&mut c.bgp)?.announce(
        rule,
        ttl,
        Origin::Operator,
        |ip| lists.allows_address(ip),
        dry_run,
    )
}

/// Hands an escalation command's reply over to be answered once gobgpd has answered
/// (announce, list, withdraw), so the controller never waits on gobgpd. The reply comes back
/// when the request is not one of those, or escalation is off: `dispatch` answers it.
pub fn answer_later(c: &mut Controller, request: &Request, reply: Reply) -> Result<(), Reply> {
    let Some(u) = c.bgp.as_mut() else {
        return Err(reply);
    };
    match request {
        Request::Escalate {
            rule,
            ttl,
            dry_run: false,
        } => {
            let lists = &c.lists;
            let announced = u.announce(
                rule.clone(),
                *ttl,
                Origin::Operator,
                |ip| lists.allows_address(ip),
                false,
            );
            match announced {
                Ok(view) if view.announce_pending => u.answer_when_announced(view.id, reply),
                done => {
                    let _ = reply.send(Response::from_result(done));
                }
            }
        }
        Request::EscalateList => u.list(reply),
        Request::EscalateWithdraw { id, dry_run } => u.withdraw(*id, "operator", *dry_run, reply),
        _ => return Err(reply),
    }
    Ok(())
}
