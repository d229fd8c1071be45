//! `levee allow add|del|list`: allowlisted prefixes skip every check, in every mode.

use anyhow::{Result, bail};
use ipnet::IpNet;
use tracing::info;

use crate::{
    api::views::Prefix,
    controller::{Controller, lists::Allow},
    dataplane::List,
};

pub fn add(c: &mut Controller, net: IpNet) -> Result<Prefix> {
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
pub fn del(c: &mut Controller, net: IpNet) -> Result<Prefix> {
    if c.lists.allow(&net).is_none() {
        bail!("{net} is not in the allowlist");
    }
    let edit = c.lists.allow_edit(net, &Allow::default());
    c.fleet.write(List::Allow, &[edit])?;
    c.lists.set_allow(net, Allow::default());
    info!(cidr = %net, "removed from the allowlist");
    Ok(Prefix(net))
}

pub fn list(c: &Controller) -> Vec<Prefix> {
    c.lists.allows().map(|(net, _)| Prefix(*net)).collect()
}
