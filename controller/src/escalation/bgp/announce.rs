//! Announcing a rule: checked by the policy, booked at once, sent to gobgpd by [`Calls`],
//! and counted as announced only when gobgpd confirms it.

use std::time::{Duration, Instant};

use anyhow::Result;
use ipnet::IpNet;
use tracing::{info, warn};

use super::{Active, Bgp, Reply, RuleView, Waiter, m_labels};
use crate::{
    api::Response,
    escalation::{
        Audience, Marks, Rule,
        calls::{CALL_TIMEOUT, Job},
        policy::{self, Held},
        views::Origin,
    },
};

/// What became of a rule detection holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Keep {
    /// Held, its time extended.
    Held,
    /// Withdrawn (by the operator, or its time ran out).
    Gone,
    /// gobgpd did not take it.
    Failed,
}

impl Bgp {
    /// Keeps rule `id` for at least `ttl` more (quietly: automatic escalation renews its
    /// rules every second while their attack lasts).
    pub fn keep(&mut self, id: u32, ttl: Duration) -> Keep {
        if self.failed.remove(&id) {
            return Keep::Failed;
        }
        let Some(a) = self.rules.get_mut(&id).filter(|a| a.withdrawing.is_none()) else {
            return Keep::Gone;
        };
        a.expires = a.expires.max(Instant::now() + ttl);
        Keep::Held
    }

    /// Announces `rule` to the neighbour group(s) `to` for `ttl` (escalation.default_ttl when
    /// None) if the policy allows it; with `dry_run` (or in dry-run mode) only checks and logs
    /// it. The same rule again extends its time rather than announcing twice (and, asked for
    /// another group, goes to both: gobgpd holds one path per rule). A new rule is booked and
    /// sent to gobgpd without waiting: its view says `announce_pending` until gobgpd confirms
    /// it ([`Bgp::answer_when_announced`]).
    pub fn announce(
        &mut self,
        rule: Rule,
        to: Audience,
        ttl: Option<Duration>,
        by: Origin,
        allowlisted: impl Fn(IpNet) -> bool,
        dry_run: bool,
    ) -> Result<RuleView> {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        let ttl = ttl.unwrap_or(self.settings.default_ttl);
        if let Some((&id, held_to)) = self
            .rules
            .iter()
            .find(|(_, a)| a.rule == rule && a.withdrawing.is_none())
            .map(|(id, a)| (id, a.to))
        {
            // Checked as a new rule would be; it counts against a group's limits only when
            // that group is new to it.
            let newly = match (held_to, held_to.and(to)) {
                (before, after) if before == after => None,
                (Audience::Upstream, _) => Some(Audience::Fleet),
                _ => Some(Audience::Upstream),
            };
            let mut held = self.held();
            if held_to.upstream() {
                (held.active, held.last_minute) = (0, 0);
            }
            if held_to.fleet() {
                (held.fleet_active, held.fleet_last_minute) = (0, 0);
            }
            policy::check(&rule, to, Some(ttl), &self.settings, &allowlisted, &held)
                .inspect_err(|_| self.count_refused())?;
            if dry_run {
                return Ok(self.dry_run(rule, to, ttl, by));
            }
            let active = self.rules.get_mut(&id).expect("found");
            active.expires = active.expires.max(now + ttl);
            if let (Some(group), Some(_)) = (newly, self.calls.as_ref()) {
                active.to = Audience::Both;
                self.recent.push_back((now, group));
                info!(id, rule = %rule, added = group.name(), "already announced; now sent to both groups");
                self.announce_again(id);
            } else {
                info!(id, rule = %rule, ttl_secs = ttl.as_secs(), "already announced; time extended");
            }
            return Ok(self.view(id, None));
        }
        let held = self.held();
        policy::check(&rule, to, Some(ttl), &self.settings, &allowlisted, &held)
            .inspect_err(|_| self.count_refused())?;
        let Some(calls) = self.calls.as_ref().filter(|_| !dry_run) else {
            return Ok(self.dry_run(rule, to, ttl, by));
        };
        // Taken before the call: a call that timed out may still have added the path, and
        // its id must not name the next rule (the RIB is searched for it and it is withdrawn).
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        calls.send(
            Job::Announce {
                id,
                rule: rule.clone(),
                marks: Marks::for_time(to, ttl),
                again: false,
            },
            now + CALL_TIMEOUT,
        );
        self.recent.push_back((now, to));
        self.rules.insert(
            id,
            Active {
                rule,
                to,
                by,
                expires: now + ttl,
                sent_until: now + ttl,
                resend_at: None,
                ttl,
                uuid: None,
                visible_from_read: u64::MAX,
                withdrawing: None,
                failures: 0,
            },
        );
        self.update_gauges();
        Ok(self.view(id, None))
    }

    /// Answers `reply` when gobgpd confirmed (or refused) the announcement of rule `id`.
    pub fn answer_when_announced(&mut self, id: u32, reply: Reply) {
        self.waiters.push(Waiter::Announce { id, reply });
    }

    /// What gobgpd said to an announcement (`again`: of a rule it had lost).
    pub(super) fn announced(&mut self, id: u32, again: bool, uuid: Result<Vec<u8>, String>) {
        let reply = self.take_announce_waiter(id);
        match (uuid, self.rules.get_mut(&id)) {
            (Ok(uuid), Some(a)) => {
                a.uuid = Some(uuid);
                a.resend_at = None;
                a.visible_from_read = self.last_read + 1;
                if !again {
                    // The time counts from the announcement, however long gobgpd took.
                    a.expires = a.expires.max(Instant::now() + a.ttl);
                    let (rule, by) = (a.rule.clone(), a.by);
                    info!(id, rule = %rule, ttl_secs = a.ttl.as_secs(), by = by.name(), "announced {}", a.to.towards());
                    self.with_metrics(|m| {
                        m.escalation_announcements
                            .get_or_create(&m_labels(&rule, by.name()))
                            .inc();
                    });
                }
                // Withdrawn while gobgpd was still taking it: withdrawn now.
                if let Some(why) = self.rules[&id].withdrawing {
                    self.rules.get_mut(&id).expect("held").withdrawing = None;
                    self.begin_withdraw(id, why);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Response::ok(self.view(id, None)));
                }
            }
            // The rule went while gobgpd took its path: the RIB is read at once, and the
            // path, a stray now, withdrawn.
            (Ok(_), None) => self.next_reconcile = Instant::now(),
            (Err(e), _) if again => {
                self.count_error();
                self.set_up(false);
                warn!(
                    id,
                    "cannot announce a rule again (lost by gobgpd, or its groups or time changed), trying in {}s: {e}",
                    super::RECONCILE_EVERY.as_secs()
                );
                if let Some(a) = self.rules.get_mut(&id) {
                    a.resend_at = Some(Instant::now() + super::RECONCILE_EVERY);
                }
            }
            (Err(e), _) => {
                self.count_error();
                let Some(a) = self.rules.remove(&id) else {
                    return;
                };
                warn!(id, rule = %a.rule, "not announced: {e}");
                if a.by == Origin::Detection {
                    self.failed.insert(id);
                }
                self.abandoned.insert(id, (a.rule.clone(), Instant::now()));
                if let Some(reply) = reply {
                    let e = anyhow::anyhow!("{e}: {} is not announced", a.rule);
                    let _ = reply.send(Response::error(&e));
                }
                self.update_gauges();
            }
        }
    }

    fn take_announce_waiter(&mut self, id: u32) -> Option<Reply> {
        let i = self
            .waiters
            .iter()
            .position(|w| matches!(w, Waiter::Announce { id: x, .. } if *x == id))?;
        match self.waiters.swap_remove(i) {
            Waiter::Announce { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// What each group holds now: rules active and announced in the last minute.
    fn held(&self) -> Held {
        let count = |group: fn(Audience) -> bool| {
            (
                self.rules.values().filter(|a| group(a.to)).count(),
                self.recent.iter().filter(|(_, t)| group(*t)).count(),
            )
        };
        let (active, last_minute) = count(Audience::upstream);
        let (fleet_active, fleet_last_minute) = count(Audience::fleet);
        Held {
            active,
            last_minute,
            fleet_active,
            fleet_last_minute,
        }
    }

    /// Sends held rule `id` to gobgpd again, with its groups and time as they are now: one
    /// gobgpd lost, one that goes to another group now, one whose time moved on.
    pub(super) fn announce_again(&mut self, id: u32) {
        let (Some(calls), Some(a)) = (&self.calls, self.rules.get_mut(&id)) else {
            return;
        };
        let now = Instant::now();
        a.sent_until = a.expires;
        a.resend_at = None;
        calls.send(
            Job::Announce {
                id,
                rule: a.rule.clone(),
                marks: Marks::for_time(a.to, a.expires.saturating_duration_since(now)),
                again: true,
            },
            now + CALL_TIMEOUT,
        );
    }

    /// Sends again the rules whose time moved on since it was sent once what receivers were
    /// told comes within half a TTL (a renewal every half TTL at most while a rule is kept),
    /// and those whose sending again failed, when due.
    pub(super) fn announce_renewed(&mut self) {
        let now = Instant::now();
        let renewed: Vec<u32> = self
            .rules
            .iter()
            .filter(|(_, a)| {
                let moved = a.expires > a.sent_until + Duration::from_secs(1)
                    && a.sent_until <= now + a.ttl / 2;
                a.uuid.is_some()
                    && a.withdrawing.is_none()
                    && (moved || a.resend_at.is_some_and(|t| t <= now))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in renewed {
            self.announce_again(id);
        }
    }

    fn dry_run(&self, rule: Rule, to: Audience, ttl: Duration, by: Origin) -> RuleView {
        info!(rule = %rule, ttl_secs = ttl.as_secs(), by = by.name(), "dry-run: would announce {}", to.towards());
        RuleView {
            id: 0,
            rule,
            to,
            by,
            ttl_left_secs: ttl.as_secs(),
            in_rib: None,
            announce_pending: false,
            withdraw_pending: false,
            dry_run: true,
        }
    }

    pub(super) fn view(&self, id: u32, in_rib: Option<String>) -> RuleView {
        let a = &self.rules[&id];
        RuleView {
            id,
            rule: a.rule.clone(),
            to: a.to,
            by: a.by,
            // Rounded up: a rule just announced for 600 s shows 600.
            ttl_left_secs: a
                .expires
                .saturating_duration_since(Instant::now())
                .as_millis()
                .div_ceil(1000) as u64,
            in_rib,
            announce_pending: a.uuid.is_none(),
            withdraw_pending: a.withdrawing.is_some(),
            dry_run: false,
        }
    }
}
