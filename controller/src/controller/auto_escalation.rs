//! Automatic escalation (escalation.auto): when a class stays under attack with the host's
//! receive rate near the uplink's capacity for escalation.auto_after, a FlowSpec rule for the
//! attack's shape goes upstream (and an RTBH route with auto_rtbh). It is renewed while the
//! attack lasts and withdrawn once the class has been calm for escalation.auto_hold. Every
//! rule passes the same policy as an operator's.

use std::time::{Duration, Instant};

use filter_common::abi::Class;
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

/// After a refused or failed escalation, the next try for the class waits this long.
const RETRY: Duration = Duration::from_secs(30);

/// The rules up for one class's attack.
#[derive(Debug)]
struct Escalated {
    ids: Vec<u32>,
    /// Since when the class has been calm (state normal).
    calm_since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct AutoEscalation {
    /// Since when the receive rate has been near the link's capacity.
    full_since: Option<Instant>,
    held: [Option<Escalated>; Class::COUNT],
    not_before: [Option<Instant>; Class::COUNT],
}

/// What one turn looks at.
pub struct Inputs<'a> {
    pub engine: &'a Engine,
    pub shapes: &'a Shapes,
    pub lists: &'a ListBook,
    /// Bits a second the program saw in the last interval, every interface.
    pub received_bps: u64,
}

impl AutoEscalation {
    /// One turn, once a second.
    pub fn step(&mut self, u: &mut Bgp, inputs: &Inputs, now: Instant) {
        let s = u.settings().clone();
        if !s.auto {
            return;
        }
        let full = inputs.received_bps as f64 >= s.link_capacity_bps as f64 * s.auto_link_share;
        self.full_since = if full {
            Some(self.full_since.unwrap_or(now))
        } else {
            None
        };
        let sustained = self
            .full_since
            .is_some_and(|t| now.duration_since(t) >= s.auto_after);
        for class in Class::ALL {
            let i = class as usize;
            let state = inputs.engine.state(class);
            if let Some(held) = &mut self.held[i] {
                if state != AttackState::Normal {
                    held.calm_since = None;
                    // A rule the operator withdrew stays withdrawn for this attack; one gobgpd
                    // did not take is tried again later.
                    let mut failed = false;
                    held.ids.retain(|id| match u.keep(*id, s.default_ttl) {
                        Keep::Held => true,
                        Keep::Gone => false,
                        Keep::Failed => {
                            failed = true;
                            false
                        }
                    });
                    if failed && held.ids.is_empty() {
                        self.held[i] = None;
                        self.not_before[i] = Some(now + RETRY);
                    }
                    continue;
                }
                let since = *held.calm_since.get_or_insert(now);
                if now.duration_since(since) < s.auto_hold {
                    continue;
                }
                // Handed to the withdrawer, which retries until gobgpd confirms each (a rule
                // the fleet holds too stays for the fleet).
                for id in held.ids.drain(..) {
                    u.release(id, Audience::Upstream, "attack_over");
                }
                self.held[i] = None;
                continue;
            }
            let ready = self.not_before[i].is_none_or(|t| now >= t);
            if state != AttackState::UnderAttack || !sustained || !ready {
                continue;
            }
            self.held[i] = self.escalate(u, class, inputs, now);
        }
    }

    /// Announces the rules for `class`'s attack; None (and a retry later) when none went up.
    fn escalate(
        &mut self,
        u: &mut Bgp,
        class: Class,
        inputs: &Inputs,
        now: Instant,
    ) -> Option<Escalated> {
        let Some(flow) = inputs.shapes.rule(class as u32) else {
            warn!(
                class = class.name(),
                "the link is near full but no sampled headers show the attack's shape (events.sample_every = 0?): nothing escalated"
            );
            self.not_before[class as usize] = Some(now + RETRY);
            return None;
        };
        let mut rules = vec![Rule::FlowSpec(flow.clone())];
        if u.settings().auto_rtbh {
            rules.push(Rule::Rtbh { dst: flow.dst });
        }
        let mut ids = Vec::new();
        let mut dry_run = false;
        for rule in rules {
            let allowed = |net| inputs.lists.allows_any(&net);
            match u.announce(
                rule,
                Audience::Upstream,
                None,
                Origin::Detection,
                allowed,
                false,
            ) {
                Ok(view) if view.dry_run => dry_run = true,
                Ok(view) => ids.push(view.id),
                Err(e) => warn!(
                    class = class.name(),
                    "detection could not escalate, trying again in {}s: {e:#}",
                    RETRY.as_secs()
                ),
            }
        }
        if ids.is_empty() && !dry_run {
            self.not_before[class as usize] = Some(now + RETRY);
            return None;
        }
        info!(
            class = class.name(),
            rules = ids.len(),
            "detection escalated upstream: the link is near full"
        );
        Some(Escalated {
            ids,
            calm_since: None,
        })
    }
}
