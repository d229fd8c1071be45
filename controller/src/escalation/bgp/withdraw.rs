//! Withdrawing the rules Levee announced: each counts only once gobgpd confirms it
//! ([`Withdrawer`]); until then the rule stays in the books as `withdraw pending`.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use tracing::{error, info};

use super::{Bgp, Reply, RuleView, Waiter, m_labels};
use crate::{
    api::Response,
    escalation::{Audience, gobgp::Lookup, withdrawer::Outcome},
};

/// How long `levee escalate withdraw` waits for gobgpd to confirm before it answers that
/// the withdrawal is pending.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);
/// How long a stop waits for the last withdrawals to be confirmed.
const STOP_WAIT: Duration = Duration::from_secs(8);

impl Bgp {
    /// Withdraws rule `id`, or all of them (`why` is logged and counted); with `dry_run` only
    /// says what would go. Answered once gobgpd confirms every one, within
    /// [`CONFIRM_WAIT`]; otherwise the answer is an error saying which are pending (retried
    /// until confirmed).
    pub fn withdraw(&mut self, id: Option<u32>, why: &'static str, dry_run: bool, reply: Reply) {
        let ids: Vec<u32> = match id {
            Some(id) if !self.rules.contains_key(&id) => {
                let e = anyhow!("no escalation rule #{id} (see levee escalate list)");
                let _ = reply.send(Response::error(&e));
                return;
            }
            Some(id) => vec![id],
            None => self.rules.keys().copied().collect(),
        };
        let mut views: Vec<RuleView> = ids.iter().map(|id| self.view(*id, None)).collect();
        if dry_run || self.withdrawer.is_none() {
            for v in &mut views {
                info!(id = v.id, rule = %v.rule, "dry-run: would withdraw");
                v.dry_run = true;
            }
            let _ = reply.send(Response::ok(views));
            return;
        }
        for id in &ids {
            self.begin_withdraw(*id, why);
        }
        self.waiters.push(Waiter::Withdraw {
            ids,
            views,
            deadline: Instant::now() + CONFIRM_WAIT,
            reply,
        });
        // Answered at once if every one was confirmed already (none pending).
        self.answer_waiters();
    }

    /// Withdraws rule `id` without waiting for gobgpd (detection, when its attack is over);
    /// false when there is no such rule.
    pub fn withdraw_later(&mut self, id: u32, why: &'static str) -> bool {
        if !self.rules.contains_key(&id) {
            return false;
        }
        self.begin_withdraw(id, why);
        true
    }

    /// Ends `group`'s hold on rule `id` without waiting (detection, when its attack or block
    /// is over): a rule both groups hold is announced again for the other group alone, one
    /// only `group` holds is withdrawn, one `group` no longer holds is left alone. False
    /// when there is no such rule.
    pub fn release(&mut self, id: u32, group: Audience, why: &'static str) -> bool {
        let Some(a) = self.rules.get_mut(&id) else {
            return false;
        };
        let left = match (a.to, group) {
            (Audience::Both, Audience::Fleet) => Audience::Upstream,
            (Audience::Both, Audience::Upstream) => Audience::Fleet,
            (to, g) if to == g || g == Audience::Both => return self.withdraw_later(id, why),
            _ => return true,
        };
        a.to = left;
        info!(id, rule = %a.rule, why, "now sent {} only", left.towards());
        self.announce_again(id);
        self.update_gauges();
        true
    }

    /// Hands rule `id`'s withdrawal to the withdrawer (once); a rule gobgpd has not
    /// confirmed yet is handed over when it does.
    pub(super) fn begin_withdraw(&mut self, id: u32, why: &'static str) {
        let (Some(w), Some(a)) = (&self.withdrawer, self.rules.get_mut(&id)) else {
            return;
        };
        if a.withdrawing.is_none() {
            a.withdrawing = Some(why);
            if let Some(uuid) = &a.uuid {
                w.withdraw(id, uuid.clone(), Lookup::of([&a.rule]));
            }
        }
        self.update_gauges();
    }

    /// Takes the withdrawer's outcomes until none of `ids` is pending or `within` passed;
    /// returns those still pending.
    fn confirm(&mut self, ids: &[u32], within: Duration) -> Vec<u32> {
        let deadline = Instant::now() + within;
        loop {
            let pending: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|id| self.rules.contains_key(id))
                .collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if pending.is_empty() || left.is_zero() {
                return pending;
            }
            if let Some(outcome) = self.withdrawer.as_ref().and_then(|w| w.next(left)) {
                self.settle(outcome);
            }
        }
    }

    pub(super) fn pending_error(&self, ids: &[u32]) -> anyhow::Error {
        let named: Vec<String> = ids
            .iter()
            .filter_map(|id| self.rules.get(id).map(|a| format!("#{id} {}", a.rule)))
            .collect();
        anyhow!(
            "withdraw pending for {}: gobgpd has not confirmed it; Levee retries until it does (levee escalate list shows it)",
            named.join(", ")
        )
    }

    /// One outcome of the withdrawer: a confirmed rule leaves the books.
    pub(super) fn settle(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Withdrawn(id) => {
                let Some(active) = self.rules.remove(&id) else {
                    return;
                };
                let why = active.withdrawing.unwrap_or("operator");
                info!(id, rule = %active.rule, why, "withdrawn {}", active.to.towards());
                self.with_metrics(|m| {
                    m.escalation_withdrawals
                        .get_or_create(&m_labels(&active.rule, why))
                        .inc();
                });
            }
            Outcome::Failed { id, error } => {
                self.count_error();
                let Some(a) = self.rules.get_mut(&id) else {
                    return;
                };
                a.failures += 1;
                if a.failures == 1 {
                    error!(id, rule = %a.rule, "withdraw pending: {error}; retrying until gobgpd confirms");
                }
            }
        }
        self.update_gauges();
    }

    /// Withdraws every rule before Levee exits (a managed gobgpd is then stopped too),
    /// waiting at most [`STOP_WAIT`] for gobgpd to confirm; says which it could not.
    /// Commands still waiting are told Levee is stopping.
    pub fn stop(&mut self) {
        self.collect();
        for w in std::mem::take(&mut self.waiters) {
            let (Waiter::Announce { reply, .. }
            | Waiter::Withdraw { reply, .. }
            | Waiter::List { reply, .. }) = w;
            let _ = reply.send(Response::error(&anyhow!("Levee is stopping")));
        }
        if self.rules.is_empty() || self.withdrawer.is_none() {
            return;
        }
        let ids: Vec<u32> = self.rules.keys().copied().collect();
        for id in &ids {
            self.begin_withdraw(*id, "stop");
        }
        let pending = self.confirm(&ids, STOP_WAIT);
        if pending.is_empty() {
            info!(rules = ids.len(), "escalation rules withdrawn at stop");
        } else {
            error!(
                "{}; a managed gobgpd takes them with it, an operator's keeps them until Levee's next start",
                self.pending_error(&pending)
            );
        }
    }
}
