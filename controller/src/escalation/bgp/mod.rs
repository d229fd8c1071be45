//! What Levee holds at its upstream: the rules announced through gobgpd, each with its expiry,
//! and the gobgpd carrying them. Every rule passes [`policy::check`] first; every one is
//! withdrawn when its time is up, when the operator says so, and when Levee stops. What
//! gobgpd's RIB really holds is read back: a rule missing there (gobgpd restarted) is
//! announced again, a path of Levee's that no rule holds (an earlier run) is withdrawn.
//!
//! The books live here, on the controller's thread; gobgpd is only ever asked from other
//! threads ([`Calls`], and the [`Withdrawer`] for withdrawals), so a gobgpd that hangs never
//! stalls the tick. A command that needs gobgpd's answer (announce, withdraw, list) hands its
//! reply over and is answered when gobgpd has answered, or when its wait ran out.
//!
//! - `announce`: announcing a rule and settling what gobgpd said;
//! - `rib`: reading the RIB back, for `levee escalate list` and to reconcile;
//! - `received`: the FlowSpec rules the neighbours sent;
//! - `withdraw`: withdrawals, which count only once gobgpd confirms them.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use tracing::{error, info, warn};

pub use super::views::{EscalationsView, Origin, ReceivedView, RuleView};
use super::{
    Audience, Rule,
    calls::{CALL_TIMEOUT, Calls, Done, Job},
    gobgp::{Gobgp, Managed},
    received::EnforcedRule,
    watch::Watch,
    withdrawer::Withdrawer,
};
use crate::{
    api::Response,
    config::{EscalationMode, EscalationSettings, escalation::BgpApi},
    metrics::SharedMetrics,
};

mod announce;
mod received;
mod rib;
mod withdraw;

pub use announce::Keep;
pub use received::ReceivedNews;

/// Where the answer to a command goes once gobgpd has answered.
pub type Reply = tokio::sync::oneshot::Sender<Response>;

/// A rule announced now (or being announced).
#[derive(Clone, Debug)]
pub struct Active {
    pub rule: Rule,
    /// The neighbour group(s) it goes to.
    pub to: Audience,
    pub by: Origin,
    pub expires: Instant,
    /// Until when its path last told receivers it is held (its `UNTIL` mark).
    sent_until: Instant,
    /// When to send it again, after sending it again failed.
    resend_at: Option<Instant>,
    /// How long it was asked for: its time counts from gobgpd's confirmation.
    ttl: Duration,
    /// gobgpd's id of the path; None until gobgpd confirmed the announcement.
    uuid: Option<Vec<u8>>,
    /// The first RIB read that can show its path (one sent before it was confirmed cannot).
    visible_from_read: u64,
    /// Being withdrawn (and why), not yet confirmed.
    withdrawing: Option<&'static str>,
    /// Tries of its withdrawal that failed (the first is logged as an error).
    failures: u32,
}

/// A command waiting for gobgpd's answer.
enum Waiter {
    Announce {
        id: u32,
        reply: Reply,
    },
    Withdraw {
        ids: Vec<u32>,
        views: Vec<RuleView>,
        deadline: Instant,
        reply: Reply,
    },
    List {
        token: u64,
        deadline: Instant,
        reply: Reply,
    },
}

pub struct Bgp {
    settings: EscalationSettings,
    /// Set when Levee started gobgpd itself (restarted if it dies).
    managed: Option<Managed>,
    /// The thread that asks gobgpd; None in dry-run mode (nothing is started or announced).
    calls: Option<Calls>,
    /// Withdraws on a thread of its own.
    withdrawer: Option<Withdrawer>,
    /// Tells when the received rules changed (escalation.accept_flowspec).
    watch: Option<Watch>,
    /// Where a managed gobgpd keeps its config and API socket.
    dir: PathBuf,
    rules: BTreeMap<u32, Active>,
    next_id: u32,
    /// When the rules of the last minute were announced, and to whom (escalation.max_per_minute,
    /// escalation.fleet.max_per_minute).
    recent: VecDeque<(Instant, Audience)>,
    metrics: SharedMetrics,
    waiters: Vec<Waiter>,
    /// Rules whose announcement failed or timed out, and since when: gobgpd may hold their
    /// path all the same, so the RIB is searched for them a while (and what is found
    /// withdrawn).
    abandoned: BTreeMap<u32, (Rule, Instant)>,
    /// Detection's rules whose announcement failed, until detection asks after them.
    failed: BTreeSet<u32>,
    /// The RIB reads: the last one's token, those not answered yet, and the one that
    /// reconciles.
    last_read: u64,
    reads_out: usize,
    reconciling: Option<u64>,
    next_reconcile: Instant,
    /// Received FlowSpec rules as last read, the ones the program enforces, and a read's
    /// outcome not yet taken by the controller.
    received: Vec<ReceivedView>,
    enforced: Vec<EnforcedRule>,
    received_news: Option<ReceivedNews>,
    reading_received: bool,
    next_poll: Instant,
}

/// How often the RIB is read back and compared with the rules held.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);
/// How long a path whose announcement failed is looked for in the RIB.
const ABANDONED_FOR: Duration = Duration::from_secs(60);

impl Bgp {
    /// Starts escalation as configured: nothing for mode off; for mode on, the managed gobgpd
    /// (in `dir`) or a connection to the operator's, whose paths left by an earlier run are
    /// withdrawn first. Must run on a thread that lives as long as the daemon (a managed
    /// gobgpd dies with it).
    pub fn start(
        settings: &EscalationSettings,
        dir: &Path,
        metrics: SharedMetrics,
    ) -> Result<Option<Bgp>> {
        if settings.mode == EscalationMode::Off {
            return Ok(None);
        }
        let mut upstream = Bgp {
            settings: settings.clone(),
            managed: None,
            calls: None,
            withdrawer: None,
            watch: None,
            dir: dir.to_path_buf(),
            rules: BTreeMap::new(),
            next_id: 1,
            recent: VecDeque::new(),
            metrics,
            waiters: Vec::new(),
            abandoned: BTreeMap::new(),
            failed: BTreeSet::new(),
            last_read: 0,
            reads_out: 0,
            reconciling: None,
            next_reconcile: Instant::now() + RECONCILE_EVERY,
            received: Vec::new(),
            enforced: Vec::new(),
            received_news: None,
            reading_received: false,
            next_poll: Instant::now(),
        };
        if settings.mode == EscalationMode::On {
            upstream.managed = upstream.start_managed()?;
            let api = upstream.api();
            // At start, and only then, Levee waits for gobgpd: a start that cannot clear an
            // earlier run's paths is refused.
            let stale = block_on(async {
                let mut client = Gobgp::connect(&api, settings.asn).await?;
                client.withdraw_stale(&settings.protected_prefixes).await
            })
            .context("cannot withdraw what an earlier run announced")?;
            if stale > 0 {
                warn!(paths = stale, "withdrew paths an earlier run of Levee left");
            }
            upstream.calls = Some(Calls::start(api.clone(), settings)?);
            if settings.accept_flowspec {
                upstream.watch = Some(Watch::start(api.clone(), settings.asn)?);
            }
            upstream.withdrawer = Some(Withdrawer::start(api, settings.asn)?);
        }
        info!(
            mode = settings.mode.name(),
            speaker = %upstream.speaker_name(),
            "escalation upstream ready"
        );
        upstream.set_up(true);
        Ok(Some(upstream))
    }

    /// Starts the managed gobgpd (escalation.api = "managed"); None for the operator's.
    fn start_managed(&self) -> Result<Option<Managed>> {
        if self.settings.api != BgpApi::Managed {
            return Ok(None);
        }
        block_on(Managed::start(&self.settings, &self.dir))
            .context("cannot start the BGP daemon for escalation")
            .map(Some)
    }

    /// Where gobgpd's API is.
    fn api(&self) -> BgpApi {
        match &self.managed {
            Some(m) => m.api(),
            None => self.settings.api.clone(),
        }
    }

    fn speaker_name(&self) -> String {
        match (&self.calls, &self.managed, &self.settings.api) {
            (None, _, _) => "none (dry-run: nothing is announced)".into(),
            (Some(_), Some(m), _) => format!("gobgpd started by Levee (pid {})", m.pid()),
            (Some(_), None, BgpApi::Unix(p)) => format!("gobgpd at unix://{}", p.display()),
            (Some(_), None, BgpApi::Tcp(a)) => format!("gobgpd at {a}"),
            (Some(_), None, BgpApi::Managed) => "gobgpd".into(),
        }
    }

    pub fn settings(&self) -> &EscalationSettings {
        &self.settings
    }

    /// One turn, once a second: a managed gobgpd that died is started again, what gobgpd
    /// answered is settled, rules whose time is up are handed to the withdrawer, and the RIB
    /// and the received rules are asked for when due. Never waits on gobgpd.
    pub fn tick(&mut self) {
        if self.calls.is_none() {
            return;
        }
        self.restart_managed();
        self.collect();
        let now = Instant::now();
        let due: Vec<u32> = self
            .rules
            .iter()
            .filter(|(_, a)| a.expires <= now && a.withdrawing.is_none() && a.uuid.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.begin_withdraw(id, "ttl");
        }
        self.announce_renewed();
        self.abandoned
            .retain(|_, (_, since)| now.duration_since(*since) < ABANDONED_FOR);
        if now >= self.next_reconcile && self.reconciling.is_none() {
            self.next_reconcile = now + RECONCILE_EVERY;
            self.reconciling = Some(self.read_rib(now + RECONCILE_EVERY));
        }
        self.ask_received(now);
    }

    /// A managed gobgpd that died is started again (this waits for its API, up to 10 s: the
    /// one wait on gobgpd left on the controller's thread, after a crash of gobgpd).
    fn restart_managed(&mut self) {
        let Some(status) = self.managed.as_mut().and_then(Managed::exited) else {
            return;
        };
        error!(
            %status,
            rules = self.rules.len(),
            "the BGP daemon for escalation died: the upstream dropped every rule; starting it again"
        );
        self.count_error();
        self.set_up(false);
        match self.start_managed() {
            Ok(m) => {
                self.managed = m;
                if let Some(calls) = &self.calls {
                    calls.send(Job::Reconnect, Instant::now() + RECONCILE_EVERY);
                }
                self.set_up(true);
                self.next_reconcile = Instant::now();
            }
            Err(e) => error!("cannot start the BGP daemon again, trying next second: {e:#}"),
        }
    }

    /// Settles what gobgpd answered since the last look and answers the commands whose
    /// answer is known (or whose wait ran out). Cheap: called every 100 ms.
    pub fn collect(&mut self) {
        let outcomes = self
            .withdrawer
            .as_ref()
            .map(Withdrawer::outcomes)
            .unwrap_or_default();
        for outcome in outcomes {
            self.settle(outcome);
        }
        let done = self.calls.as_ref().map(Calls::done).unwrap_or_default();
        for d in done {
            match d {
                Done::Announced { id, again, uuid } => self.announced(id, again, uuid),
                Done::Rib { token, owned } => self.rib_read(token, owned),
                Done::StrayWithdrawn { prefix, result } => match result {
                    Ok(()) => info!(path = %prefix, "stray path of Levee's withdrawn"),
                    Err(e) => {
                        self.count_error();
                        error!(path = %prefix, "cannot withdraw a stray path of Levee's: {e}");
                    }
                },
                Done::Received(paths) => self.received_read(paths),
            }
        }
        self.answer_waiters();
    }

    /// Answers the waiting commands that can be: withdrawals confirmed or out of time, lists
    /// out of time (a list answered by its read is answered in `rib_read`).
    fn answer_waiters(&mut self) {
        let now = Instant::now();
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            match w {
                Waiter::Withdraw {
                    ids,
                    views,
                    deadline,
                    reply,
                } => {
                    let pending: Vec<u32> = ids
                        .iter()
                        .copied()
                        .filter(|id| self.rules.contains_key(id))
                        .collect();
                    if pending.is_empty() {
                        let _ = reply.send(Response::ok(views));
                    } else if now >= deadline {
                        let _ = reply.send(Response::error(&self.pending_error(&pending)));
                    } else {
                        self.waiters.push(Waiter::Withdraw {
                            ids,
                            views,
                            deadline,
                            reply,
                        });
                    }
                }
                Waiter::List {
                    deadline, reply, ..
                } if now >= deadline => {
                    let error =
                        format!("gobgpd did not answer within {}s", rib::LIST_WAIT.as_secs());
                    let _ = reply.send(Response::ok(self.list_view(None, Some(error))));
                }
                other => self.waiters.push(other),
            }
        }
    }

    fn with_metrics(&self, f: impl FnOnce(&mut crate::metrics::Metrics)) {
        if let Ok(mut m) = self.metrics.lock() {
            f(&mut m);
        }
    }

    fn update_gauges(&self) {
        let count = |kind: &str| {
            self.rules
                .values()
                .filter(|a| a.rule.kind() == kind)
                .count()
        };
        let kinds = ["rtbh", "flowspec", "source_block"].map(|k| (k, count(k) as i64));
        let pending = self
            .rules
            .values()
            .filter(|a| a.withdrawing.is_some())
            .count();
        self.with_metrics(|m| {
            m.escalation_withdrawals_pending.set(pending as i64);
            for (kind, n) in kinds {
                m.escalations_active
                    .get_or_create(&crate::metrics::KindLabels { kind: kind.into() })
                    .set(n);
            }
        });
    }

    fn set_up(&self, up: bool) {
        let on = self.settings.mode == EscalationMode::On;
        self.with_metrics(|m| {
            m.escalation_speaker_up.set(i64::from(up && on));
        });
    }

    fn count_refused(&self) {
        self.with_metrics(|m| {
            m.escalation_refused.inc();
        });
    }

    fn count_error(&self) {
        self.with_metrics(|m| {
            m.escalation_errors.inc();
        });
    }
}

impl Drop for Bgp {
    fn drop(&mut self) {
        // The managed gobgpd (if any) is killed by its own Drop; say so.
        if self.managed.is_some() {
            info!("stopping the BGP daemon for escalation");
        }
    }
}

fn m_labels(rule: &Rule, cause: &str) -> crate::metrics::EscalationLabels {
    crate::metrics::EscalationLabels {
        kind: rule.kind().into(),
        cause: cause.into(),
    }
}

/// Runs `f` to completion within [`CALL_TIMEOUT`], on a runtime of its own: only at start
/// and when a managed gobgpd is started again.
fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            tokio::time::timeout(CALL_TIMEOUT * 3, f)
                .await
                .map_err(|_| {
                    anyhow!(
                        "gobgpd did not answer within {}s",
                        CALL_TIMEOUT.as_secs() * 3
                    )
                })?
        })
}
