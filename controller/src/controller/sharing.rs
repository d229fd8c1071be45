//! Sharing with the fleet (escalation.fleet.share): what detection learns on this node goes to
//! every other node through the fleet's route reflectors at once, whether or not the link is
//! full. An attacked class goes as a FlowSpec rule, renewed while the attack lasts and
//! withdrawn the tick it is over; a verified offender's block goes as a source block toward
//! each protected prefix of its family, withdrawn when the block ends here. Every rule passes
//! the same policy as an operator's, with the fleet's own limits.
//!
//! The other nodes are not under this attack yet, and their crowd is there: a class's rule
//! goes only when it is narrower than the service itself. A flood signature in force that
//! FlowSpec can say whole (ports and IP length) goes as it is; else the attack's shape, when
//! its packets share a source port (a reflection: no listener sends from NTP's 123). A shape
//! naming only the service's own port would drop the whole audience of every node, which is
//! the attacker's aim: it stays here, and each node's own defences meet the flood.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use filter_common::{
    abi::Class,
    signature::{FloodSignature, field},
};
use ipnet::IpNet;
use tracing::{info, warn};

use super::lists::ListBook;
use crate::{
    engine::{AttackState, Engine},
    escalation::{
        Audience, FlowRule, Rule,
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
    /// Classes whose attack's rule stays on the node (it names only the service), said once
    /// an attack.
    kept: [bool; Class::COUNT],
    not_before: [Option<Instant>; Class::COUNT],
    /// The blocks shared, by blocked prefix.
    blocks: BTreeMap<IpNet, SharedBlock>,
}

/// One block shared with the fleet: a source block toward each protected prefix of its
/// family, tried again while one is missing (refused by the fleet's limits, say) and the
/// block lasts here.
#[derive(Debug)]
struct SharedBlock {
    /// The rule carrying it toward each protected prefix.
    ids: BTreeMap<IpNet, u32>,
    /// Protected prefixes whose rule was withdrawn (by the operator, or at its time): never
    /// shared again for this block.
    gone: BTreeSet<IpNet>,
    /// When the block ends here.
    until: Instant,
    /// When a missing rule is tried again.
    retry_at: Instant,
}

impl Sharing {
    /// One turn, once a second: a class newly under attack is shared, one still under attack
    /// is renewed, one calm again is withdrawn; so are blocks that ended here.
    pub fn step(
        &mut self,
        u: &mut Bgp,
        engine: &Engine,
        shapes: &Shapes,
        signatures: &[FloodSignature],
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
            if state == AttackState::Normal {
                self.kept[i] = false;
            }
            if let Some(id) = self.classes[i] {
                if state == AttackState::Normal {
                    u.release(id, Audience::Fleet, "attack_over");
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
            let Some(shape) = shapes.rule(class as u32) else {
                continue;
            };
            let Some(flow) = fleet_rule(shape.clone(), signatures) else {
                if !std::mem::replace(&mut self.kept[i], true) {
                    info!(class = class.name(), shape = %Rule::FlowSpec(shape), "detection keeps its rule for this attack on the node: it names only the service's port, and would drop every node's crowd there");
                }
                continue;
            };
            let allowed = |net| lists.allows_any(&net);
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
        self.step_blocks(u, lists, now);
    }

    /// Blocks that ended here are withdrawn from the fleet; rules of blocks still in force
    /// that were refused (the fleet's limits, say) or failed are tried again every [`RETRY`].
    fn step_blocks(&mut self, u: &mut Bgp, lists: &ListBook, now: Instant) {
        let nets: Vec<IpNet> = self.blocks.keys().copied().collect();
        for net in nets {
            let shared = self.blocks.get_mut(&net).expect("listed");
            if lists.block(&net).is_none() || shared.until <= now {
                for id in shared.ids.values() {
                    u.release(*id, Audience::Fleet, "block_over");
                }
                self.blocks.remove(&net);
                continue;
            }
            // Only a refused or failed rule is tried again; one the operator withdrew stays so.
            shared
                .ids
                .retain(|dst, id| match u.keep(*id, Duration::ZERO) {
                    Keep::Held => true,
                    Keep::Failed => {
                        shared.retry_at = now + RETRY;
                        false
                    }
                    Keep::Gone => {
                        shared.gone.insert(*dst);
                        false
                    }
                });
            if shared.retry_at <= now {
                self.share_missing(u, net, lists, now);
            }
        }
    }

    /// Shares detection's block of `src` for `ttl` (at most escalation.max_ttl) as a source
    /// block toward each protected prefix of its family.
    pub fn share_block(&mut self, u: &mut Bgp, src: IpNet, ttl: Duration, lists: &ListBook) {
        if !u.settings().fleet.share || self.blocks.contains_key(&src) {
            return;
        }
        let now = Instant::now();
        self.blocks.insert(
            src,
            SharedBlock {
                ids: BTreeMap::new(),
                gone: BTreeSet::new(),
                until: now + ttl,
                retry_at: now,
            },
        );
        self.share_missing(u, src, lists, now);
    }

    /// Announces the source blocks of `src` not held yet, for the block's time left.
    fn share_missing(&mut self, u: &mut Bgp, src: IpNet, lists: &ListBook, now: Instant) {
        let s = u.settings().clone();
        let Some(shared) = self.blocks.get_mut(&src) else {
            return;
        };
        let ttl = shared.until.saturating_duration_since(now).min(s.max_ttl);
        let missing: Vec<IpNet> = s
            .protected_prefixes
            .iter()
            .filter(|p| p.addr().is_ipv4() == src.addr().is_ipv4())
            .filter(|p| !shared.ids.contains_key(p) && !shared.gone.contains(p))
            .copied()
            .collect();
        let retry = !shared.ids.is_empty();
        let mut shared_now = 0;
        for dst in missing {
            let rule = Rule::SourceBlock { src, dst };
            let allowed = |net| lists.allows_any(&net);
            match u.announce(
                rule,
                Audience::Fleet,
                Some(ttl),
                Origin::Detection,
                allowed,
                false,
            ) {
                // A dry run shares nothing, and is not tried again.
                Ok(view) if view.dry_run => shared.retry_at = shared.until,
                Ok(view) => {
                    shared.ids.insert(dst, view.id);
                    shared_now += 1;
                }
                Err(e) => {
                    shared.retry_at = now + RETRY;
                    warn!(cidr = %src, "detection could not share its block with the fleet, trying again in {}s: {e:#}", RETRY.as_secs());
                }
            }
        }
        if shared_now > 0 {
            let again = if retry { " again" } else { "" };
            info!(cidr = %src, rules = shared_now, ttl_secs = ttl.as_secs(), "detection shared a block with the fleet{again}");
        }
    }
}

/// The rule a class's attack is shared as, if one is narrower than the attacked service: a
/// signature of its protocol FlowSpec can say whole (destination and source port, IP length)
/// with a length or a source port, toward the shape's destination; else the shape, if it has
/// a source port. None for a shape with only the service's port.
fn fleet_rule(shape: FlowRule, signatures: &[FloodSignature]) -> Option<FlowRule> {
    let expressible = field::DST_PORT | field::SRC_PORT | field::IP_LEN;
    let narrow = field::SRC_PORT | field::IP_LEN;
    let signature = signatures.iter().find(|s| {
        Some(s.facts.proto) == shape.proto
            && s.fields != 0
            && s.fields & !expressible == 0
            && s.fields & narrow != 0
    });
    if let Some(s) = signature {
        let f = &s.facts;
        let has = |bit| s.fields & bit != 0;
        return Some(FlowRule {
            dst_port: has(field::DST_PORT).then_some(f.dst_port),
            src_port: has(field::SRC_PORT).then_some(f.src_port),
            len: has(field::IP_LEN).then_some((f.ip_len, f.ip_len)),
            ..shape
        });
    }
    shape.src_port.is_some().then_some(shape)
}

#[cfg(test)]
mod tests {
    use filter_common::signature::Facts;

    use super::*;
    use crate::escalation::FlowAction;

    fn shape(src_port: Option<u16>) -> FlowRule {
        FlowRule {
            dst: "192.0.2.10".parse().unwrap(),
            proto: Some(17),
            src_port,
            dst_port: if src_port.is_some() { None } else { Some(9000) },
            len: None,
            action: FlowAction::Discard,
        }
    }

    fn signature(fields: u32) -> FloodSignature {
        FloodSignature {
            fields,
            id: 1,
            facts: Facts {
                dst_port: 9000,
                src_port: 4444,
                ip_len: 540,
                proto: 17,
                ttl: 64,
                ..Facts::default()
            },
            payload_mask: [0; 8],
        }
    }

    #[test]
    fn only_what_is_narrower_than_the_service_is_shared() {
        // A reflection's shape goes as it is.
        assert_eq!(fleet_rule(shape(Some(123)), &[]), Some(shape(Some(123))));
        // The service's port alone would drop every node's crowd: nothing goes.
        assert_eq!(fleet_rule(shape(None), &[]), None);
        // A signature FlowSpec can say whole narrows it: port and length.
        let sig = signature(field::DST_PORT | field::IP_LEN);
        let rule = fleet_rule(shape(None), &[sig]).expect("the signature's rule");
        assert_eq!(
            (rule.dst_port, rule.len, rule.src_port),
            (Some(9000), Some((540, 540)), None)
        );
        assert_eq!(rule.dst, shape(None).dst);
        // One with a TTL (or an IP id, or payload bytes) cannot be said: the shape decides.
        let ttl = signature(field::DST_PORT | field::IP_LEN | field::TTL);
        assert_eq!(fleet_rule(shape(None), &[ttl]), None);
        // One of another protocol does not apply; one with the port alone is no narrower.
        let syn = FloodSignature {
            facts: Facts {
                proto: 6,
                ..sig.facts
            },
            ..sig
        };
        assert_eq!(
            fleet_rule(shape(None), &[syn, signature(field::DST_PORT)]),
            None
        );
    }
}
