//! `levee block add|del|list`: operator blocks, with a TTL and a reason.

use std::{io::Write, time::Duration};

use anyhow::{Result, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Command;
use crate::{
    api::{
        views::{BlockView, Prefix},
        wire,
    },
    cli::{
        parsers::{cidr, ttl},
        print::Print as _,
    },
    controller::{
        Controller,
        lists::{Block, OperatorBlock, Setter},
    },
    dataplane::{expiry_after, monotonic_coarse_ns},
};

/// `levee block add CIDR [--ttl T] [--reason R]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockAdd {
    #[arg(value_parser = cidr)]
    #[serde(with = "wire::cidr")]
    pub cidr: IpNet,
    /// Remove the block after this long (30s, 10m, 2h); without it the block stays.
    #[arg(long, value_parser = ttl)]
    #[serde(default, rename = "ttl_secs", with = "wire::opt_secs")]
    pub ttl: Option<Duration>,
    /// A note shown by `block list`.
    #[arg(long)]
    #[serde(default)]
    pub reason: Option<String>,
}

impl Command for BlockAdd {
    fn changes(&self) -> bool {
        true
    }
    type View = Prefix;
    fn apply(self, c: &mut Controller) -> Result<Prefix> {
        add(c, self.cidr, self.ttl, self.reason)
    }
    fn print(&self, Prefix(net): &Prefix, out: &mut dyn Write) -> Result<()> {
        Ok(writeln!(out, "blocked {net}")?)
    }
}

/// `levee block del CIDR`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockDel {
    #[arg(value_parser = cidr)]
    #[serde(with = "wire::cidr")]
    pub cidr: IpNet,
}

impl Command for BlockDel {
    fn changes(&self) -> bool {
        true
    }
    type View = Prefix;
    fn apply(self, c: &mut Controller) -> Result<Prefix> {
        del(c, self.cidr)
    }
    fn print(&self, Prefix(net): &Prefix, out: &mut dyn Write) -> Result<()> {
        Ok(writeln!(out, "unblocked {net}")?)
    }
}

/// `levee block list [--json]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockList {
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

impl Command for BlockList {
    type View = Vec<BlockView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<BlockView>> {
        Ok(list(c))
    }
    fn print(&self, view: &Vec<BlockView>, out: &mut dyn Write) -> Result<()> {
        Ok(view.print(out)?)
    }
    fn json(&self) -> bool {
        self.json
    }
}

fn add(
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
fn del(c: &mut Controller, net: IpNet) -> Result<Prefix> {
    if c.lists.block(&net).is_none() {
        bail!("{net} is not in the blocklist");
    }
    c.change_blocks(vec![(net, Block::default())])?;
    info!(cidr = %net, "unblocked");
    Ok(Prefix(net))
}

/// Every block, from the book (no walk of the tries).
fn list(c: &Controller) -> Vec<BlockView> {
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
