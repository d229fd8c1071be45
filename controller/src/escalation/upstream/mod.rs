//! What Levee holds at its upstream: the rules announced through gobgpd, each with its expiry,
//! and the gobgpd carrying them. Every rule passes [`policy::check`] first; every one is
//! withdrawn when its time is up, when the operator says so, and when Levee stops. What
//! gobgpd's RIB really holds is read back: a rule missing there (gobgpd restarted) is
//! announced again, a path of Levee's that no rule holds (an earlier run) is withdrawn.
//!
//! gobgpd's API is async; the controller is not. Each call runs to completion on a small
//! runtime of this module's own, bounded by [`CALL_TIMEOUT`], so a stuck gobgpd costs the
//! controller seconds, never its loop. Withdrawals run on a thread of their own
//! ([`Withdrawer`]) and count only once gobgpd confirms them: until then a rule stays in the
//! books as `withdraw pending`.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    net::IpAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use tracing::{error, info, warn};

pub use super::views::{EscalationsView, Origin, ReceivedView, RuleView};
use super::{
    Rule,
    gobgp::{Gobgp, Managed},
    policy::{self, Held},
    precedence,
    received::EnforcedRule,
    withdrawer::Withdrawer,
};
use crate::{
    config::{EscalationMode, EscalationSettings, escalation::BgpApi},
    metrics::SharedMetrics,
};

mod withdraw;

/// How long one call to gobgpd's API may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the RIB is read back and compared with the rules held.
const RECONCILE_EVERY: Duration = Duration::from_secs(10);

/// A rule announced now.
#[derive(Clone, Debug)]
pub struct Active {
    pub rule: Rule,
    pub by: Origin,
    pub expires: Instant,
    /// gobgpd's id of the path.
    uuid: Vec<u8>,
    /// Being withdrawn (and why), not yet confirmed.
    withdrawing: Option<&'static str>,
    /// Tries of its withdrawal that failed (the first is logged as an error).
    failures: u32,
}

/// The gobgpd carrying the rules, and Levee's connection to it.
struct Speaker {
    /// Set when Levee started gobgpd itself (restarted if it dies).
    managed: Option<Managed>,
    api: Gobgp,
}

pub struct Upstream {
    settings: EscalationSettings,
    runtime: tokio::runtime::Runtime,
    /// None in dry-run mode: nothing is started and nothing announced.
    speaker: Option<Speaker>,
    /// Withdraws on a thread of its own (with the speaker).
    withdrawer: Option<Withdrawer>,
    /// Where a managed gobgpd keeps its config and API socket.
    dir: PathBuf,
    rules: BTreeMap<u32, Active>,
    next_id: u32,
    /// When the rules of the last minute were announced (escalation.max_per_minute).
    recent: VecDeque<Instant>,
    next_reconcile: Instant,
    metrics: SharedMetrics,
    /// Received FlowSpec rules as last read, and the ones the program enforces.
    received: Vec<ReceivedView>,
    enforced: Vec<EnforcedRule>,
    /// When the received rules may be read next (later after a failure).
    next_poll: Instant,
}

/// Runs one call to gobgpd to completion, within [`CALL_TIMEOUT`].
fn call<T>(runtime: &tokio::runtime::Runtime, f: impl Future<Output = Result<T>>) -> Result<T> {
    runtime.block_on(async {
        tokio::time::timeout(CALL_TIMEOUT, f)
            .await
            .map_err(|_| anyhow!("gobgpd did not answer within {}s", CALL_TIMEOUT.as_secs()))?
    })
}

impl Upstream {
    /// Starts escalation as configured: nothing for mode off; for mode on, the managed gobgpd
    /// (in `dir`) or a connection to the operator's, whose paths left by an earlier run are
    /// withdrawn first. Must run on a thread that lives as long as the daemon (a managed
    /// gobgpd dies with it).
    pub fn start(
        settings: &EscalationSettings,
        dir: &Path,
        metrics: SharedMetrics,
    ) -> Result<Option<Upstream>> {
        if settings.mode == EscalationMode::Off {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut upstream = Upstream {
            settings: settings.clone(),
            runtime,
            speaker: None,
            withdrawer: None,
            dir: dir.to_path_buf(),
            rules: BTreeMap::new(),
            next_id: 1,
            recent: VecDeque::new(),
            next_reconcile: Instant::now() + RECONCILE_EVERY,
            metrics,
            received: Vec::new(),
            enforced: Vec::new(),
            next_poll: Instant::now(),
        };
        if settings.mode == EscalationMode::On {
            upstream.speaker = Some(upstream.connect()?);
            let speaker = upstream.speaker.as_mut().expect("just set");
            let stale = call(&upstream.runtime, speaker.api.withdraw_stale())
                .context("cannot withdraw what an earlier run announced")?;
            if stale > 0 {
                warn!(paths = stale, "withdrew paths an earlier run of Levee left");
            }
            let api = match &speaker.managed {
                Some(m) => m.api(),
                None => settings.api.clone(),
            };
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

    /// Starts the managed gobgpd or connects to the operator's.
    fn connect(&self) -> Result<Speaker> {
        let s = &self.settings;
        match &s.api {
            BgpApi::Managed => {
                let managed = call(&self.runtime, Managed::start(s, &self.dir))
                    .context("cannot start the BGP daemon for escalation")?;
                let api = call(&self.runtime, Gobgp::connect(&managed.api(), s.asn))?;
                Ok(Speaker {
                    managed: Some(managed),
                    api,
                })
            }
            other => {
                let api = call(&self.runtime, Gobgp::connect(other, s.asn))?;
                Ok(Speaker { managed: None, api })
            }
        }
    }

    fn speaker_name(&self) -> String {
        match (&self.speaker, &self.settings.api) {
            (None, _) => "none (dry-run: nothing is announced)".into(),
            (
                Some(Speaker {
                    managed: Some(m), ..
                }),
                _,
            ) => format!("gobgpd started by Levee (pid {})", m.pid()),
            (Some(_), BgpApi::Unix(p)) => format!("gobgpd at unix://{}", p.display()),
            (Some(_), BgpApi::Tcp(a)) => format!("gobgpd at {a}"),
            (Some(_), BgpApi::Managed) => "gobgpd".into(),
        }
    }

    /// Keeps rule `id` for at least `ttl` more (quietly: automatic escalation renews its
    /// rules every second while their attack lasts). False when the rule is gone (withdrawn
    /// by the operator, or expired).
    pub fn keep(&mut self, id: u32, ttl: Duration) -> bool {
        let Some(a) = self.rules.get_mut(&id).filter(|a| a.withdrawing.is_none()) else {
            return false;
        };
        a.expires = a.expires.max(Instant::now() + ttl);
        true
    }

    pub fn settings(&self) -> &EscalationSettings {
        &self.settings
    }

    /// Announces `rule` for `ttl` (escalation.default_ttl when None) if the policy allows it;
    /// with `dry_run` (or in dry-run mode) only checks and logs it. The same rule again
    /// extends its time rather than announcing twice.
    pub fn announce(
        &mut self,
        rule: Rule,
        ttl: Option<Duration>,
        by: Origin,
        allowlisted: impl Fn(IpAddr) -> bool,
        dry_run: bool,
    ) -> Result<RuleView> {
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        let ttl = ttl.unwrap_or(self.settings.default_ttl);
        if let Some((&id, _)) = self
            .rules
            .iter()
            .find(|(_, a)| a.rule == rule && a.withdrawing.is_none())
        {
            // Checked as a new rule would be, without counting itself against the limits.
            policy::check(
                &rule,
                Some(ttl),
                &self.settings,
                &allowlisted,
                &Held::none(),
            )
            .inspect_err(|_| self.count_refused())?;
            if dry_run {
                return Ok(self.dry_run(rule, ttl, by));
            }
            let active = self.rules.get_mut(&id).expect("found");
            active.expires = active.expires.max(now + ttl);
            info!(id, rule = %rule, ttl_secs = ttl.as_secs(), "already announced; time extended");
            return Ok(self.view(id, None));
        }
        let held = Held {
            active: self.rules.len(),
            last_minute: self.recent.len(),
        };
        policy::check(&rule, Some(ttl), &self.settings, &allowlisted, &held)
            .inspect_err(|_| self.count_refused())?;
        let Some(speaker) = self.speaker.as_mut().filter(|_| !dry_run) else {
            return Ok(self.dry_run(rule, ttl, by));
        };
        // Taken before the call: a call that timed out may still have added the path, and
        // its id must not name the next rule (the next check withdraws it as a stray).
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let uuid = call(
            &self.runtime,
            announce(&mut speaker.api, id, &rule, &self.settings),
        )
        .inspect_err(|_| self.count_error())?;
        self.recent.push_back(now);
        info!(id, rule = %rule, ttl_secs = ttl.as_secs(), by = by.name(), "announced upstream");
        self.with_metrics(|m| {
            m.escalation_announcements
                .get_or_create(&m_labels(&rule, by.name()))
                .inc();
        });
        // The time counts from the announcement, however long gobgpd took.
        self.rules.insert(
            id,
            Active {
                rule,
                by,
                expires: Instant::now() + ttl,
                uuid,
                withdrawing: None,
                failures: 0,
            },
        );
        self.update_gauges();
        Ok(self.view(id, None))
    }

    fn dry_run(&self, rule: Rule, ttl: Duration, by: Origin) -> RuleView {
        info!(rule = %rule, ttl_secs = ttl.as_secs(), by = by.name(), "dry-run: would announce upstream");
        RuleView {
            id: 0,
            rule,
            by,
            ttl_left_secs: ttl.as_secs(),
            in_rib: None,
            withdraw_pending: false,
            dry_run: true,
        }
    }

    fn view(&self, id: u32, in_rib: Option<String>) -> RuleView {
        let a = &self.rules[&id];
        RuleView {
            id,
            rule: a.rule.clone(),
            by: a.by,
            // Rounded up: a rule just announced for 600 s shows 600.
            ttl_left_secs: a
                .expires
                .saturating_duration_since(Instant::now())
                .as_millis()
                .div_ceil(1000) as u64,
            in_rib,
            withdraw_pending: a.withdrawing.is_some(),
            dry_run: false,
        }
    }

    /// What gobgpd's RIB holds of Levee's, joined with the rules held.
    pub fn list(&mut self) -> Result<EscalationsView> {
        let mut view = EscalationsView {
            mode: self.settings.mode.name().into(),
            speaker: self.speaker_name(),
            ..Default::default()
        };
        let Some(speaker) = self.speaker.as_mut() else {
            return Ok(view);
        };
        // A RIB that cannot be read leaves the books to show, saying so.
        let owned = match call(&self.runtime, speaker.api.owned_paths()) {
            Ok(owned) => owned,
            Err(e) => {
                view.rib_error = Some(format!("cannot read gobgpd's RIB: {e:#}"));
                Vec::new()
            }
        };
        for id in self.rules.keys() {
            let in_rib = owned.iter().find(|o| o.id == *id).map(|o| o.prefix.clone());
            view.rules.push(self.view(*id, in_rib));
        }
        view.stray = owned
            .iter()
            .filter(|o| !self.rules.contains_key(&o.id))
            .map(|o| o.prefix.clone())
            .collect();
        view.received = self.received.clone();
        Ok(view)
    }

    /// Reads the FlowSpec rules the neighbours sent (escalation.accept_flowspec) and returns
    /// what the program must enforce when that changed, and what it enforced before. While
    /// gobgpd cannot be read, the rules in force stay (and the error is returned).
    #[allow(clippy::type_complexity)]
    pub fn poll_received(&mut self) -> Result<Option<(Vec<EnforcedRule>, Vec<EnforcedRule>)>> {
        if !self.settings.accept_flowspec {
            return Ok(None);
        }
        let Some(speaker) = self.speaker.as_mut() else {
            return Ok(None);
        };
        // After a failure, wait before asking again: a hung gobgpd must not take five seconds
        // of every controller tick.
        if Instant::now() < self.next_poll {
            return Ok(None);
        }
        let paths = match call(&self.runtime, speaker.api.received_flowspec()) {
            Ok(p) => p,
            Err(e) => {
                self.next_poll = Instant::now() + RECONCILE_EVERY;
                return Err(e.context("cannot read the FlowSpec rules the neighbours sent"));
            }
        };
        let (views, mut enforced) = precedence::choose(&paths, &self.settings);
        enforced.sort_by_key(EnforcedRule::precedence);
        for v in views.iter().filter(|v| !self.received.contains(v)) {
            info!(rule = %v.rule, neighbor = %v.neighbor, state = %v.state, detail = %v.detail, "FlowSpec rule received");
        }
        self.received = views;
        self.with_metrics(|m| {
            for state in ["enforced", "skipped", "ignored", "refused"] {
                let n = self.received.iter().filter(|v| v.state == state).count();
                m.upstream_rules
                    .get_or_create(&crate::metrics::StateOnlyLabels {
                        state: state.into(),
                    })
                    .set(n as i64);
            }
        });
        if enforced == self.enforced {
            return Ok(None);
        }
        let before = std::mem::replace(&mut self.enforced, enforced.clone());
        Ok(Some((enforced, before)))
    }

    /// Whether the program enforces received rules now.
    pub fn enforces_received(&self) -> bool {
        !self.enforced.is_empty()
    }

    /// The program could not take the rules `poll_received` returned: it still enforces
    /// `before`, and the next poll tries again.
    pub fn enforcing_failed(&mut self, before: Vec<EnforcedRule>) {
        self.enforced = before;
    }

    /// One turn: a managed gobgpd that died is started again, rules whose time is up are
    /// withdrawn, and now and then the RIB is compared with the rules held.
    pub fn tick(&mut self) {
        let Some(speaker) = self.speaker.as_mut() else {
            return;
        };
        if let Some(status) = speaker.managed.as_mut().and_then(Managed::exited) {
            error!(
                %status,
                rules = self.rules.len(),
                "the BGP daemon for escalation died: the upstream dropped every rule; starting it again"
            );
            self.count_error();
            self.set_up(false);
            match self.connect() {
                Ok(s) => {
                    self.speaker = Some(s);
                    self.set_up(true);
                    self.next_reconcile = Instant::now();
                }
                Err(e) => {
                    error!("cannot start the BGP daemon again, trying next second: {e:#}");
                    return;
                }
            }
        }
        for outcome in self
            .withdrawer
            .as_ref()
            .map(Withdrawer::outcomes)
            .unwrap_or_default()
        {
            self.settle(outcome);
        }
        let now = Instant::now();
        let due: Vec<u32> = self
            .rules
            .iter()
            .filter(|(_, a)| a.expires <= now && a.withdrawing.is_none())
            .map(|(id, _)| *id)
            .collect();
        // Handed to the withdrawer: the tick never waits on gobgpd for them.
        for id in due {
            self.begin_withdraw(id, "ttl");
        }
        if now >= self.next_reconcile {
            self.next_reconcile = now + RECONCILE_EVERY;
            if let Err(e) = self.reconcile() {
                self.count_error();
                self.set_up(false);
                error!("escalation: {e:#}");
            }
        }
    }

    /// Makes the RIB hold exactly the rules held: missing ones announced again, strays
    /// withdrawn.
    fn reconcile(&mut self) -> Result<()> {
        let Some(speaker) = self.speaker.as_mut() else {
            return Ok(());
        };
        let owned =
            call(&self.runtime, speaker.api.owned_paths()).context("cannot read gobgpd's RIB")?;
        self.set_up(true);
        let speaker = self.speaker.as_mut().expect("checked");
        for stray in owned.iter().filter(|o| !self.rules.contains_key(&o.id)) {
            warn!(path = %stray.prefix, "a path of Levee's that no rule holds: withdrawn");
            call(&self.runtime, speaker.api.withdraw_listed(stray))?;
        }
        let now = Instant::now();
        for (id, active) in self.rules.iter_mut() {
            // An expired rule, or one being withdrawn, is never announced again.
            if active.expires <= now
                || active.withdrawing.is_some()
                || owned.iter().any(|o| o.id == *id)
            {
                continue;
            }
            warn!(id, rule = %active.rule, "missing in gobgpd's RIB: announced again");
            active.uuid = call(
                &self.runtime,
                announce(&mut speaker.api, *id, &active.rule, &self.settings),
            )?;
        }
        Ok(())
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
        let (rtbh, flowspec) = (count("rtbh") as i64, count("flowspec") as i64);
        let pending = self
            .rules
            .values()
            .filter(|a| a.withdrawing.is_some())
            .count();
        self.with_metrics(|m| {
            m.escalation_withdrawals_pending.set(pending as i64);
            for (kind, n) in [("rtbh", rtbh), ("flowspec", flowspec)] {
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

impl Drop for Upstream {
    fn drop(&mut self) {
        // The managed gobgpd (if any) is killed by its own Drop; say so.
        if self.speaker.as_ref().is_some_and(|s| s.managed.is_some()) {
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

/// Sends `rule` to gobgpd, marked as Levee's rule `id`.
async fn announce(
    api: &mut Gobgp,
    id: u32,
    rule: &Rule,
    settings: &EscalationSettings,
) -> Result<Vec<u8>> {
    match rule {
        Rule::Rtbh { dst } => api.add_rtbh(id, *dst, &settings.communities).await,
        Rule::FlowSpec(f) => api.add_flowspec(id, f).await,
    }
}
