//! `levee allow add|del|list`: allowlisted prefixes skip every check, in every mode.

use std::io::Write;

use anyhow::{Result, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Command;
use crate::{
    api::{views::Prefix, wire},
    cli::{parsers::cidr, print::Print as _},
    controller::{Controller, lists::Allow},
    dataplane::List,
};

/// `levee allow add CIDR`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowAdd {
    #[arg(value_parser = cidr)]
    #[serde(with = "wire::cidr")]
    pub cidr: IpNet,
}

impl Command for AllowAdd {
    fn changes(&self) -> bool {
        true
    }
    type View = Prefix;
    fn apply(self, c: &mut Controller) -> Result<Prefix> {
        add(c, self.cidr)
    }
    fn print(&self, Prefix(net): &Prefix, out: &mut dyn Write) -> Result<()> {
        Ok(writeln!(out, "allowlisted {net}")?)
    }
}

/// `levee allow del CIDR`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowDel {
    #[arg(value_parser = cidr)]
    #[serde(with = "wire::cidr")]
    pub cidr: IpNet,
}

impl Command for AllowDel {
    fn changes(&self) -> bool {
        true
    }
    type View = Prefix;
    fn apply(self, c: &mut Controller) -> Result<Prefix> {
        del(c, self.cidr)
    }
    fn print(&self, Prefix(net): &Prefix, out: &mut dyn Write) -> Result<()> {
        Ok(writeln!(out, "removed {net} from the allowlist")?)
    }
}

/// `levee allow list [--json]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowList {
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

impl Command for AllowList {
    type View = Vec<Prefix>;
    fn apply(self, c: &mut Controller) -> Result<Vec<Prefix>> {
        Ok(list(c))
    }
    fn print(&self, view: &Vec<Prefix>, out: &mut dyn Write) -> Result<()> {
        Ok(view.print(out)?)
    }
    fn json(&self) -> bool {
        self.json
    }
}

fn add(c: &mut Controller, net: IpNet) -> Result<Prefix> {
    let old = c.lists.allow(&net).copied().unwrap_or_default();
    let new = Allow { cli: true, ..old };
    let edit = c.lists.allow_edit(net, &new);
    if edit.new != edit.old {
        c.fleet.write(List::Allow, &[edit])?;
    }
    c.lists.set_allow(net, new);
    info!(cidr = %net, "allowlisted");
    Ok(Prefix(net))
}

/// Removes the prefix whatever set it (a config entry comes back at the next reload).
fn del(c: &mut Controller, net: IpNet) -> Result<Prefix> {
    if c.lists.allow(&net).is_none() {
        bail!("{net} is not in the allowlist");
    }
    let edit = c.lists.allow_edit(net, &Allow::default());
    c.fleet.write(List::Allow, &[edit])?;
    c.lists.set_allow(net, Allow::default());
    info!(cidr = %net, "removed from the allowlist");
    Ok(Prefix(net))
}

fn list(c: &Controller) -> Vec<Prefix> {
    c.lists.allows().map(|(net, _)| Prefix(*net)).collect()
}
