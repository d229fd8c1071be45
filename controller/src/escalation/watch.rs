//! Follows the FlowSpec rules the neighbours send through gobgpd's WatchEvent stream, so a
//! rule received (or withdrawn, or lost with its neighbour's session) is read at once rather
//! than at the next poll. The watch only says *that* gobgpd's best paths or sessions changed:
//! the read and the choice stay in [`super::bgp`], one path for every way a change is learned.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use tracing::{info, warn};

use super::{
    calls::CALL_TIMEOUT,
    gobgp::{
        Gobgp,
        api::{
            WatchEventRequest,
            watch_event_request::{Peer, Table, table::Filter, table::filter::Type},
        },
    },
};
use crate::config::escalation::BgpApi;

/// How long the watch waits before connecting again after its stream ended or failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often a quiet stream looks whether the watch was dropped.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// The watch's thread, and what it tells.
pub struct Watch {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// gobgpd told of a change since the last [`Watch::take_change`].
    changed: AtomicBool,
    /// The stream is open: changes are told as they happen.
    up: AtomicBool,
    /// The watch was dropped: the thread ends.
    stop: AtomicBool,
}

impl Watch {
    /// Starts watching gobgpd at `api` on a thread of its own; it connects again after any
    /// failure, and counts a change each time its stream opens (what happened while it was
    /// closed is unknown).
    pub fn start(api: BgpApi, asn: u32) -> Result<Watch> {
        let state = Arc::new(State::default());
        let thread_state = state.clone();
        std::thread::Builder::new()
            .name("levee-bgp-watch".into())
            .spawn(move || run(&api, asn, &thread_state))?;
        Ok(Watch { state })
    }

    /// Whether gobgpd told of a change since the last call.
    pub fn take_change(&self) -> bool {
        self.state.changed.swap(false, Ordering::SeqCst)
    }

    /// Whether the stream is open now.
    pub fn watching(&self) -> bool {
        self.state.up.load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
    }
}

fn run(api: &BgpApi, asn: u32, state: &State) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        warn!("cannot start the watch of received FlowSpec rules: they are polled");
        return;
    };
    let mut failing = false;
    while !state.stop.load(Ordering::SeqCst) {
        let result = runtime.block_on(follow(api, asn, state));
        let was_up = state.up.swap(false, Ordering::SeqCst);
        if let Err(e) = result {
            // Once a streak: a stream that was open and broke is news, one more failed
            // connection is not.
            if was_up || !failing {
                warn!(
                    "the watch of received FlowSpec rules stopped ({e:#}); polling until it is back"
                );
            }
            failing = true;
        }
        std::thread::sleep(RETRY_AFTER);
    }
}

/// One stream: opened, then followed until it ends, fails or the watch is dropped.
async fn follow(api: &BgpApi, asn: u32, state: &State) -> Result<()> {
    let mut client = tokio::time::timeout(CALL_TIMEOUT, Gobgp::connect(api, asn)).await??;
    let request = WatchEventRequest {
        // Sessions up and down (a neighbour's rules go with its session) and best paths
        // (a FlowSpec rule is its own destination, so each one received or withdrawn is one).
        peer: Some(Peer {}),
        table: Some(Table {
            filters: vec![Filter {
                r#type: Type::Best as i32,
                init: false,
            }],
        }),
    };
    let mut stream = tokio::time::timeout(CALL_TIMEOUT, client.raw().watch_event(request))
        .await??
        .into_inner();
    state.up.store(true, Ordering::SeqCst);
    state.changed.store(true, Ordering::SeqCst);
    info!("following the received FlowSpec rules through gobgpd's watch");
    while !state.stop.load(Ordering::SeqCst) {
        match tokio::time::timeout(LOOK_EVERY, stream.message()).await {
            Err(_quiet) => {}
            Ok(Ok(Some(_event))) => state.changed.store(true, Ordering::SeqCst),
            Ok(Ok(None)) => anyhow::bail!("gobgpd ended the stream"),
            Ok(Err(status)) => return Err(status.into()),
        }
    }
    Ok(())
}
