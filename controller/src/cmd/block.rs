//! `levee block add|del|list`: operator blocks, with a TTL and a reason.

use std::time::Duration;

use anyhow::{Result, bail};
use ipnet::IpNet;
use tracing::info;

use crate::{
    api::views::{BlockView, Prefix},
    controller::{
        Controller,
        lists::{Block, OperatorBlock, Setter},
    },
    dataplane::{expiry_after, monotonic_coarse_ns},
};

pub fn add(
    c: &mut Controller,
    net: IpNet,
    ttl: Option<Duration>,
    reason: Option<String>,
) -> Result<Prefix> {
    let expires_ns = expiry_after(ttl)?;
    let old = c.lists.block(&net).cloned().unwrap_or_default();
    let new = Block {
        operator: Some(OperatorBlock {
            by: Setter::Cli,
            reason: reason.clone(),
            expires_ns,
        }),
        ..old
    };
    c.change_blocks(vec![(net, new)])?;
    let ttl_secs = ttl.map(|t| t.as_secs());
    info!(cidr = %net, ttl_secs, reason = reason.as_deref().unwrap_or(""), "blocked");
    Ok(Prefix(net))
}

/// Removes the prefix whatever set it (a config block comes back at the next reload).
pub fn del(c: &mut Controller, net: IpNet) -> Result<Prefix> {
    if c.lists.block(&net).is_none() {
        bail!("{net} is not in the blocklist");
    }
    c.change_blocks(vec![(net, Block::default())])?;
    info!(cidr = %net, "unblocked");
    Ok(Prefix(net))
}

/// Every block, from the book (no walk of the tries).
pub fn list(c: &Controller) -> Vec<BlockView> {
    let now = monotonic_coarse_ns();
    c.lists
        .blocks()
        .filter_map(|(net, b)| {
            let expires = b.expiry()?;
            if expires != 0 && expires <= now {
                return None;
            }
            Some(BlockView {
                cidr: Prefix(*net),
                ttl_secs: (expires != 0).then(|| (expires - now).div_ceil(1_000_000_000)),
                reason: b.reason(),
            })
        })
        .collect()
}
