//! Sharing with the fleet (escalation.fleet.share): what detection learns on this node goes to
//! every other node through the fleet's route reflectors at once, whether or not the link is
//! full. An attacked class's shape goes as a FlowSpec rule, renewed while the attack lasts and
//! withdrawn the tick it is over; a verified offender's block goes as a source block toward
//! each protected prefix of its family, withdrawn when the block ends here. Every rule passes
//! the same policy as an operator's, with the fleet's own limits.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use filter_common::abi::Class;
use ipnet::IpNet;
use tracing::{info, warn};

use super::lists::ListBook;
use crate::{
    engine::{AttackState, Engine},
    escalation::{
        Audience, Rule,
        bgp::{Bgp, Keep, Origin},
        shape::Shapes,
    },
};

/// After a refused or failed share, the next try for the class waits this long.
const RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Sharing {
    /// The rule shared for each class's attack.
    classes: [Option<u32>; Class::COUNT],
    not_before: [Option<Instant>; Class::COUNT],
    /// The blocks shared: the blocked prefix and the rules that carry it.
    blocks: BTreeMap<IpNet, Vec<u32>>,
}

impl Sharing {
    /// One turn, once a second: a class newly under attack is shared, one still under attack
    /// is renewed, one calm again is withdrawn; so are blocks that ended here.
    pub fn step(
        &mut self,
        u: &mut Bgp,
        engine: &Engine,
        shapes: &Shapes,
        lists: &ListBook,
        now: Instant,
    ) {
        let s = u.settings().clone();
        if !s.fleet.share {
            return;
        }
        for class in Class::ALL {
            let i = class as usize;
            let state = engine.state(class);
            if let Some(id) = self.classes[i] {
                if state == AttackState::Normal {
                    u.withdraw_later(id, "attack_over");
                    self.classes[i] = None;
                    continue;
                }
                match u.keep(id, s.default_ttl) {
                    Keep::Held => {}
                    // Withdrawn by the operator: stays withdrawn for this attack.
                    Keep::Gone => {}
                    Keep::Failed => {
                        self.classes[i] = None;
                        self.not_before[i] = Some(now + RETRY);
                    }
                }
                continue;
            }
            let ready = self.not_before[i].is_none_or(|t| now >= t);
            if state != AttackState::UnderAttack || !ready {
                continue;
            }
            let Some(flow) = shapes.rule(class as u32) else {
                continue;
            };
            let allowed = |ip| lists.allows_address(ip);
            let rule = Rule::FlowSpec(flow);
            match u.announce(
                rule.clone(),
                Audience::Fleet,
                None,
                Origin::Detection,
                allowed,
                false,
            ) {
                Ok(view) if view.dry_run => self.not_before[i] = Some(now + s.default_ttl),
                Ok(view) => {
                    info!(class = class.name(), id = view.id, rule = %rule, "detection shared its rule with the fleet");
                    self.classes[i] = Some(view.id);
                }
                Err(e) => {
                    warn!(
                        class = class.name(),
                        "detection could not share its rule with the fleet, trying again in {}s: {e:#}",
                        RETRY.as_secs()
                    );
                    self.not_before[i] = Some(now + RETRY);
                }
            }
        }
        let ended: Vec<IpNet> = self
            .blocks
            .keys()
            .filter(|net| lists.block(net).is_none())
            .copied()
            .collect();
        for net in ended {
            for id in self.blocks.remove(&net).unwrap_or_default() {
                u.withdraw_later(id, "block_over");
            }
        }
    }

    /// Shares detection's block of `src` for `ttl` (at most escalation.max_ttl) as a source
    /// block toward each protected prefix of its family.
    pub fn share_block(&mut self, u: &mut Bgp, src: IpNet, ttl: Duration, lists: &ListBook) {
        let s = u.settings().clone();
        if !s.fleet.share || self.blocks.contains_key(&src) {
            return;
        }
        let ttl = ttl.min(s.max_ttl);
        let mut ids = Vec::new();
        for dst in s
            .protected_prefixes
            .iter()
            .filter(|p| p.addr().is_ipv4() == src.addr().is_ipv4())
        {
            let rule = Rule::SourceBlock { src, dst: *dst };
            let allowed = |ip| lists.allows_address(ip);
            match u.announce(
                rule,
                Audience::Fleet,
                Some(ttl),
                Origin::Detection,
                allowed,
                false,
            ) {
                Ok(view) if view.dry_run => {}
                Ok(view) => ids.push(view.id),
                Err(e) => {
                    warn!(cidr = %src, "detection could not share its block with the fleet: {e:#}")
                }
            }
        }
        if !ids.is_empty() {
            info!(cidr = %src, rules = ids.len(), ttl_secs = ttl.as_secs(), "detection shared a block with the fleet");
            self.blocks.insert(src, ids);
        }
    }
}
