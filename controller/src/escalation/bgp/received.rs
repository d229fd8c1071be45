//! The FlowSpec rules the neighbours sent (escalation.accept_flowspec): read by
//! [`crate::escalation::calls::Calls`] as soon as gobgpd's watch tells of a change (and every
//! 10 s all the same; every second while the watch is down), chosen by precedence, and handed
//! to the controller when what the program must enforce changed.

use std::time::Instant;

use anyhow::anyhow;
use tracing::info;

use super::{Bgp, RECONCILE_EVERY};
use crate::{
    config::escalation::Role,
    escalation::{
        calls::Job, gobgp::api, precedence, received::EnforcedRule, views::NeighborView,
        watch::Watch,
    },
};

/// What a read of the received rules came to.
pub enum ReceivedNews {
    /// The program must enforce `now` instead of `before`.
    Changed {
        now: Vec<EnforcedRule>,
        before: Vec<EnforcedRule>,
    },
    Unchanged,
    /// gobgpd could not be read; the rules in force stay.
    Failed(anyhow::Error),
}

/// How often the received rules are read while gobgpd's watch is down.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Bgp {
    /// Asks for the received rules at once when the watch told of a change (a read under
    /// way may predate it: the next one starts as soon as it is back). Called every 100 ms.
    pub fn follow_received(&mut self) {
        let now = Instant::now();
        if self.watch.as_ref().is_some_and(Watch::take_change) {
            self.next_poll = now;
        }
        self.ask_received(now);
    }

    /// Asks for the received rules when due and no read is under way.
    pub(super) fn ask_received(&mut self, now: Instant) {
        if !self.settings.accept_flowspec || self.reading_received || now < self.next_poll {
            return;
        }
        if let Some(calls) = &self.calls {
            self.reading_received = true;
            let watched = self.watch.as_ref().is_some_and(Watch::watching);
            self.next_poll = now + if watched { RECONCILE_EVERY } else { POLL_EVERY };
            calls.send(Job::ReadReceived, now + POLL_EVERY);
        }
    }

    /// A read of the received rules came back.
    pub(super) fn received_read(
        &mut self,
        paths: Result<Vec<(String, String, api::Path)>, String>,
    ) {
        self.reading_received = false;
        let paths = match paths {
            Ok(p) => p,
            Err(e) => {
                // A hung gobgpd is asked again later, not every second.
                self.next_poll = Instant::now() + RECONCILE_EVERY;
                self.tell_received(ReceivedNews::Failed(anyhow!(
                    "cannot read the FlowSpec rules the neighbours sent: {e}"
                )));
                return;
            }
        };
        let (views, mut enforced) = precedence::choose(&paths, &self.settings);
        // The next read comes no later than the first enforced rule's sender time runs out.
        if let Some(left) = views
            .iter()
            .filter(|v| v.state == "enforced")
            .filter_map(|v| v.ttl_left_secs)
            .min()
        {
            let due = Instant::now() + std::time::Duration::from_secs(left + 1);
            self.next_poll = self.next_poll.min(due);
        }
        enforced.sort_by_key(EnforcedRule::precedence);
        for v in views.iter().filter(|v| !self.received.contains(v)) {
            info!(rule = %v.rule, neighbor = %v.neighbor, state = %v.state, detail = %v.detail, "FlowSpec rule received");
        }
        self.received = views;
        self.with_metrics(|m| {
            for state in ["enforced", "skipped", "ignored", "refused", "expired"] {
                let n = self.received.iter().filter(|v| v.state == state).count();
                m.upstream_rules
                    .get_or_create(&crate::metrics::StateOnlyLabels {
                        state: state.into(),
                    })
                    .set(n as i64);
            }
        });
        let before = std::mem::replace(&mut self.enforced, enforced.clone());
        let news = if enforced == before {
            ReceivedNews::Unchanged
        } else {
            ReceivedNews::Changed {
                now: enforced,
                before,
            }
        };
        self.tell_received(news);
    }

    /// Keeps the news for the controller; a change it has not taken yet is never lost: a
    /// later change still counts from what the program enforced before it.
    fn tell_received(&mut self, news: ReceivedNews) {
        self.received_news = match (self.received_news.take(), news) {
            (Some(ReceivedNews::Changed { before, .. }), ReceivedNews::Changed { now, .. }) => {
                Some(ReceivedNews::Changed { now, before })
            }
            (Some(changed @ ReceivedNews::Changed { .. }), _) => Some(changed),
            (_, news) => Some(news),
        };
    }

    /// What the reads of the received rules came to since the last look; None when no read
    /// came back since.
    pub fn received_news(&mut self) -> Option<ReceivedNews> {
        self.received_news.take()
    }

    /// Whether the program enforces received rules now.
    pub fn enforces_received(&self) -> bool {
        !self.enforced.is_empty()
    }

    /// The program could not take the rules of a [`ReceivedNews::Changed`]: it still enforces
    /// `before`, and the next read tries again.
    pub fn enforcing_failed(&mut self, before: Vec<EnforcedRule>) {
        self.enforced = before;
    }
}

impl Bgp {
    /// Each neighbour: the configured ones, then any other that sent rules (through the
    /// operator's own gobgpd), with what Levee sends its group and what it sent.
    pub fn neighbors_view(&self) -> Vec<NeighborView> {
        let mut out: Vec<NeighborView> = self
            .settings
            .neighbors
            .iter()
            .map(|n| NeighborView {
                address: n.address.to_string(),
                role: n.role.name().into(),
                sent: self
                    .rules
                    .values()
                    .filter(|a| match n.role {
                        Role::Upstream => a.to.upstream(),
                        Role::Fleet => a.to.fleet(),
                    })
                    .count(),
                ..NeighborView::default()
            })
            .collect();
        for r in &self.received {
            let i = match out.iter().position(|n| n.address == r.neighbor) {
                Some(i) => i,
                None => {
                    out.push(NeighborView {
                        address: r.neighbor.clone(),
                        ..NeighborView::default()
                    });
                    out.len() - 1
                }
            };
            let n = &mut out[i];
            n.received += 1;
            n.enforced += usize::from(r.state == "enforced");
            if let Some(t) = r.ttl_left_secs {
                n.ends_in_secs = Some(
                    n.ends_in_secs
                        .map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))),
                );
            }
        }
        out
    }
}
