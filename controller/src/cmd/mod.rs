//! The control commands, one file per family: the request is already typed and checked; each
//! handler changes the controller all-or-nothing and returns its view. Adding a command is
//! its handler plus one line here.

mod allow;
mod block;
pub mod escalate;
pub mod explain;
mod limits;
mod mode;
mod show;
mod signatures;

use anyhow::Result;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{api::Request, controller::Controller};

/// Runs one request against the controller; the answer's data as JSON.
pub fn dispatch(c: &mut Controller, request: Request) -> Result<Box<RawValue>> {
    match request {
        Request::Status => json(show::status(c)),
        Request::Stats => json(show::stats(c)),
        Request::Services => json(Ok(show::services(c))),
        Request::Top { n } => json(show::top(c, n)),
        Request::Mode { mode } => json(mode::mode(c, mode)),
        Request::BlockAdd { cidr, ttl, reason } => json(block::add(c, cidr, ttl, reason)),
        Request::BlockDel { cidr } => json(block::del(c, cidr)),
        Request::BlockList => json(Ok(block::list(c))),
        Request::AllowAdd { cidr } => json(allow::add(c, cidr)),
        Request::AllowDel { cidr } => json(allow::del(c, cidr)),
        Request::AllowList => json(Ok(allow::list(c))),
        Request::LimitsShow => json(Ok(limits::show(c))),
        Request::LimitsSet(change) => json(limits::set(c, change)),
        Request::Escalate { rule, ttl, dry_run } => json(escalate::add(c, rule, ttl, dry_run)),
        Request::EscalateList | Request::EscalateWithdraw { .. } => json(escalate::off(c)),
        // Its answer is a stream: the control socket starts it through `Call::Capture`.
        Request::Capture { .. } => Err(anyhow::anyhow!("a capture is served as a stream")),
        Request::Explain { packet } => json(explain::explain(c, packet)),
        Request::Signatures => json(Ok(signatures::list(c))),
        Request::SignaturePin { id, pinned } => json(signatures::pin(c, id, pinned)),
        Request::SignatureRefuse { id } => json(signatures::refuse(c, id)),
    }
}

fn json<T: Serialize>(view: Result<T>) -> Result<Box<RawValue>> {
    Ok(serde_json::value::to_raw_value(&view?)?)
}
