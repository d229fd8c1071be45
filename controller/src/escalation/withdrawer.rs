//! Withdrawals that count only when confirmed: gobgpd acknowledged the delete, or a read of
//! its RIB shows the path gone. Each is tried on a thread of its own, with its own connection
//! to gobgpd, and retried with backoff until it is confirmed, so a hung gobgpd never stalls
//! the controller's tick; until then the controller keeps the rule (`withdraw pending`).

use std::{
    collections::BTreeMap,
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};

use super::{
    calls::CALL_TIMEOUT,
    gobgp::{Gobgp, Lookup},
};
use crate::config::escalation::BgpApi;

/// The wait before the first retry; each failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one try of a withdrawal came to.
#[derive(Debug)]
pub enum Outcome {
    /// Confirmed: the rule may leave the books.
    Withdrawn(u32),
    /// Not confirmed; tried again after a backoff.
    Failed { id: u32, error: String },
}

struct Job {
    id: u32,
    uuid: Vec<u8>,
    /// Where the path is in the RIB, to confirm it gone.
    lookup: Lookup,
}

/// The withdrawal thread, and what it reports.
pub struct Withdrawer {
    jobs: mpsc::Sender<Job>,
    outcomes: mpsc::Receiver<Outcome>,
}

impl Withdrawer {
    /// Starts the thread; it connects to gobgpd's API at `api` when it first needs to (and
    /// again after a failure: a managed gobgpd may have been started anew).
    pub fn start(api: BgpApi, asn: u32) -> Result<Withdrawer> {
        let (jobs, inbox) = mpsc::channel();
        let (tell, outcomes) = mpsc::channel();
        std::thread::Builder::new()
            .name("levee-withdraw".into())
            .spawn(move || run(&api, asn, &inbox, &tell))?;
        Ok(Withdrawer { jobs, outcomes })
    }

    /// Withdraws the path `uuid` of rule `id` (found where `lookup` says), until confirmed.
    pub fn withdraw(&self, id: u32, uuid: Vec<u8>, lookup: Lookup) {
        // The thread lives as long as this sender.
        let _ = self.jobs.send(Job { id, uuid, lookup });
    }

    /// What the tries came to since the last look, without waiting.
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.outcomes.try_iter().collect()
    }

    /// The next outcome, waiting at most `within`.
    pub fn next(&self, within: Duration) -> Option<Outcome> {
        self.outcomes.recv_timeout(within).ok()
    }
}

/// The thread: each pending withdrawal tried when due; ends when the controller drops its
/// [`Withdrawer`] (a try stuck on gobgpd ends with the process).
fn run(api: &BgpApi, asn: u32, inbox: &mpsc::Receiver<Job>, tell: &mpsc::Sender<Outcome>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut client: Option<Gobgp> = None;
    // Per rule: its path, when it is tried next, and the wait after that.
    let mut pending: BTreeMap<u32, (Job, Instant, Duration)> = BTreeMap::new();
    loop {
        let wait = pending
            .values()
            .map(|p| p.1.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match inbox.recv_timeout(wait) {
            Ok(job) => {
                pending.insert(job.id, (job, Instant::now(), FIRST_BACKOFF));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let due: Vec<u32> = pending
            .iter()
            .filter(|(_, p)| p.1 <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let outcome = match attempt(&runtime, api, asn, &mut client, &pending[&id].0) {
                Ok(()) => {
                    pending.remove(&id);
                    Outcome::Withdrawn(id)
                }
                Err(e) => {
                    // Connect again next time: gobgpd may have been started anew.
                    client = None;
                    if let Some(p) = pending.get_mut(&id) {
                        p.1 = Instant::now() + p.2;
                        p.2 = (p.2 * 2).min(MAX_BACKOFF);
                    }
                    Outcome::Failed {
                        id,
                        error: format!("{e:#}"),
                    }
                }
            };
            if tell.send(outcome).is_err() {
                return;
            }
        }
    }
}

/// One try: gobgpd acknowledges the delete, or it refuses it and a read of its RIB shows
/// the path gone (a gobgpd started anew no longer knows the path). A call that times out
/// confirms nothing, and the RIB is not read then: it would hang too.
fn attempt(
    runtime: &tokio::runtime::Runtime,
    api: &BgpApi,
    asn: u32,
    client: &mut Option<Gobgp>,
    job: &Job,
) -> Result<()> {
    // Each call within CALL_TIMEOUT (the timer made inside the runtime).
    fn call<T>(
        runtime: &tokio::runtime::Runtime,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> Result<Result<T>> {
        runtime.block_on(async {
            tokio::time::timeout(CALL_TIMEOUT, f)
                .await
                .map_err(|_| anyhow!("gobgpd did not answer within {}s", CALL_TIMEOUT.as_secs()))
        })
    }
    let c = match client {
        Some(c) => c,
        None => client.insert(call(runtime, Gobgp::connect(api, asn))??),
    };
    let refused = match call(runtime, c.delete(&job.uuid))? {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let owned = call(runtime, c.owned_paths(&job.lookup))?
        .map_err(|e| refused.context(format!("and its RIB could not be read: {e:#}")))?;
    if owned.iter().any(|p| p.id == job.id) {
        return Err(anyhow!(
            "gobgpd refused the withdrawal and still holds the path"
        ));
    }
    Ok(())
}
