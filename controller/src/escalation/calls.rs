//! Every call to gobgpd but withdrawals ([`super::withdrawer`]), made on a thread of its own
//! so a gobgpd that hangs never stalls the controller's tick, its watchdog or the CLI. The
//! controller hands in [`Job`]s and takes back one [`Done`] for each, without waiting: calls
//! run one after another, each within [`CALL_TIMEOUT`], and a job still queued when its
//! deadline passed is answered at once without asking gobgpd.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};

use super::{
    Marks, Rule,
    gobgp::{Gobgp, Lookup, Owned, api},
};
use crate::config::{EscalationSettings, escalation::BgpApi};

/// How long one call to gobgpd's API may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the controller asks of gobgpd.
pub enum Job {
    /// Announce `rule` as Levee's rule `id` (again, after gobgpd lost it, with `again`).
    Announce {
        id: u32,
        rule: Rule,
        marks: Marks,
        again: bool,
    },
    /// Read Levee's paths where `lookup` says; `token` names the read.
    ReadRib { token: u64, lookup: Lookup },
    /// Withdraw a path of Levee's that no rule holds.
    WithdrawStray(Box<Owned>),
    /// Read the FlowSpec rules the neighbours sent.
    ReadReceived,
    /// Connect afresh for the next call (a managed gobgpd was started anew).
    Reconnect,
}

/// What a job came to (errors as text: they are logged and shown, never matched).
pub enum Done {
    Announced {
        id: u32,
        again: bool,
        uuid: Result<Vec<u8>, String>,
    },
    Rib {
        token: u64,
        owned: Result<Vec<Owned>, String>,
    },
    StrayWithdrawn {
        prefix: String,
        result: Result<(), String>,
    },
    Received(Result<Vec<(String, String, api::Path)>, String>),
}

/// The thread's inbox and outbox.
pub struct Calls {
    jobs: mpsc::Sender<(Job, Instant)>,
    done: mpsc::Receiver<Done>,
}

impl Calls {
    /// Starts the thread; it connects to gobgpd's API at `api` when it first needs to, and
    /// again after a failure (a managed gobgpd may have been started anew).
    pub fn start(api: BgpApi, settings: &EscalationSettings) -> Result<Calls> {
        let (jobs, inbox) = mpsc::channel();
        let (tell, done) = mpsc::channel();
        let settings = settings.clone();
        std::thread::Builder::new()
            .name("levee-bgp".into())
            .spawn(move || run(&api, &settings, &inbox, &tell))?;
        Ok(Calls { jobs, done })
    }

    /// Queues `job`; it is not started after `deadline` (answered as not tried).
    pub fn send(&self, job: Job, deadline: Instant) {
        // The thread lives as long as this sender.
        let _ = self.jobs.send((job, deadline));
    }

    /// What came back since the last look, without waiting.
    pub fn done(&self) -> Vec<Done> {
        self.done.try_iter().collect()
    }
}

fn run(
    api: &BgpApi,
    settings: &EscalationSettings,
    inbox: &mpsc::Receiver<(Job, Instant)>,
    tell: &mpsc::Sender<Done>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let mut client: Option<Gobgp> = None;
    while let Ok((job, deadline)) = inbox.recv() {
        let done = match job {
            Job::Reconnect => {
                client = None;
                continue;
            }
            job if Instant::now() > deadline => not_tried(job),
            job => perform(&runtime, api, settings, &mut client, job),
        };
        if tell.send(done).is_err() {
            return;
        }
    }
}

/// A call to make on the connected client.
type Call<T> = Box<dyn FnOnce(&mut Gobgp) -> BoxFuture<'_, Result<T>> + Send>;
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Makes one call within [`CALL_TIMEOUT`], connecting first if need be. A failure drops the
/// connection: the next call connects again.
fn call<T>(
    runtime: &tokio::runtime::Runtime,
    api: &BgpApi,
    asn: u32,
    client: &mut Option<Gobgp>,
    f: Call<T>,
) -> Result<T, String> {
    let result = runtime.block_on(async {
        tokio::time::timeout(CALL_TIMEOUT, async {
            let c = match client {
                Some(c) => c,
                None => client.insert(Gobgp::connect(api, asn).await?),
            };
            f(c).await
        })
        .await
        .map_err(|_| anyhow!("gobgpd did not answer within {}s", CALL_TIMEOUT.as_secs()))?
    });
    result.map_err(|e| {
        *client = None;
        format!("{e:#}")
    })
}

fn perform(
    runtime: &tokio::runtime::Runtime,
    api: &BgpApi,
    settings: &EscalationSettings,
    client: &mut Option<Gobgp>,
    job: Job,
) -> Done {
    let asn = settings.asn;
    match job {
        Job::Announce {
            id,
            rule,
            marks,
            again,
        } => {
            let communities = settings.communities.clone();
            let uuid = call(
                runtime,
                api,
                asn,
                client,
                Box::new(move |c| {
                    Box::pin(async move { announce(c, id, &rule, marks, &communities).await })
                }),
            );
            Done::Announced { id, again, uuid }
        }
        Job::ReadRib { token, lookup } => {
            let owned = call(
                runtime,
                api,
                asn,
                client,
                Box::new(move |c| Box::pin(async move { c.owned_paths(&lookup).await })),
            );
            Done::Rib { token, owned }
        }
        Job::WithdrawStray(stray) => {
            let prefix = stray.prefix.clone();
            let result = call(
                runtime,
                api,
                asn,
                client,
                Box::new(move |c| Box::pin(async move { c.withdraw_listed(&stray).await })),
            );
            Done::StrayWithdrawn { prefix, result }
        }
        Job::ReadReceived => Done::Received(call(
            runtime,
            api,
            asn,
            client,
            Box::new(|c| Box::pin(c.received_flowspec())),
        )),
        Job::Reconnect => unreachable!("answered by the loop"),
    }
}

/// Sends `rule` to gobgpd, marked as Levee's rule `id`; returns gobgpd's id of the path.
pub async fn announce(
    api: &mut Gobgp,
    id: u32,
    rule: &Rule,
    marks: Marks,
    communities: &[crate::config::escalation::Community],
) -> Result<Vec<u8>> {
    match rule {
        Rule::Rtbh { dst } => api.add_rtbh(id, marks, *dst, communities).await,
        Rule::FlowSpec(f) => api.add_flowspec(id, marks, f).await,
        Rule::SourceBlock { src, dst } => api.add_source_block(id, marks, *src, *dst).await,
    }
}

/// The answer to a job that waited past its deadline behind calls gobgpd did not answer.
fn not_tried(job: Job) -> Done {
    let busy = || "not tried: gobgpd has not answered the calls before it".to_string();
    match job {
        Job::Announce { id, again, .. } => Done::Announced {
            id,
            again,
            uuid: Err(busy()),
        },
        Job::ReadRib { token, .. } => Done::Rib {
            token,
            owned: Err(busy()),
        },
        Job::WithdrawStray(o) => Done::StrayWithdrawn {
            prefix: o.prefix,
            result: Err(busy()),
        },
        Job::ReadReceived => Done::Received(Err(busy())),
        Job::Reconnect => unreachable!("answered by the loop"),
    }
}
