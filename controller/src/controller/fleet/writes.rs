//! The fleet's writes, all or nothing: each change goes to every interface, and a failure on
//! one undoes it on those already changed, so a refused command changes nothing anywhere.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use filter_common::abi::Config;
use ipnet::IpNet;
use tracing::{error, info};

use super::{Fleet, Interface};
use crate::{
    dataplane::{Dataplane, Edit, Expiry, List, ServiceRule},
    services::kernel::for_interface,
};

impl Fleet {
    /// Sets the services on every interface, all or nothing.
    pub fn set_services(&mut self, rules: &[ServiceRule], before: &[ServiceRule]) -> Result<()> {
        self.on_all(
            |iface| iface.dp.set_services(rules),
            |dp| dp.set_services(before),
        )
    }

    /// Writes list edits to every interface, all or nothing.
    pub fn write(&mut self, list: List, edits: &[Edit]) -> Result<()> {
        if edits.is_empty() {
            return Ok(());
        }
        let undo: Vec<Edit> = edits.iter().rev().map(|e| e.inverse()).collect();
        self.on_all(
            |iface| {
                let mut progress = Progress::new(&iface.name, list, edits.len());
                iface.dp.write(list, edits, &mut |n| progress.show(n))
            },
            |dp| dp.write(list, &undo, &mut |_| {}),
        )
    }

    /// Makes every interface's `list` hold exactly `desired` (prefix and expiry, sorted by
    /// prefix), at start-up: maps adopted from an earlier run are read and only the
    /// differences written; fresh maps get `desired` as it is.
    pub fn converge(&mut self, list: List, desired: &[(IpNet, Expiry)]) -> Result<()> {
        for iface in self.interfaces.iter_mut().filter(|i| !i.prefilled) {
            let edits: Vec<Edit> = match iface.dp.previous_config() {
                None => desired
                    .iter()
                    .map(|(net, e)| Edit {
                        net: *net,
                        new: Some(*e),
                        old: None,
                    })
                    .collect(),
                Some(_) => {
                    let actual: BTreeMap<IpNet, Expiry> = match list {
                        List::Block => iface.dp.blocklist()?.into_iter().collect(),
                        List::Allow => iface.dp.allowlist()?.into_iter().map(|n| (n, 0)).collect(),
                    };
                    let wanted: BTreeMap<IpNet, Expiry> = desired.iter().copied().collect();
                    let mut edits: Vec<Edit> = desired
                        .iter()
                        .filter(|(net, e)| actual.get(net) != Some(e))
                        .map(|(net, e)| Edit {
                            net: *net,
                            new: Some(*e),
                            old: actual.get(net).copied(),
                        })
                        .collect();
                    edits.extend(
                        actual
                            .iter()
                            .filter(|(net, _)| !wanted.contains_key(net))
                            .map(|(net, e)| Edit {
                                net: *net,
                                new: None,
                                old: Some(*e),
                            }),
                    );
                    edits
                }
            };
            tracing::debug!(iface = %iface.name, edits = edits.len(), "start: list edits computed");
            let mut progress = Progress::new(&iface.name, list, edits.len());
            iface
                .dp
                .write(list, &edits, &mut |n| progress.show(n))
                .with_context(|| format!("interface {}", iface.name))?;
            tracing::debug!(iface = %iface.name, "start: list written");
        }
        Ok(())
    }

    /// Replaces the program's configuration on every interface, all or nothing.
    pub fn set_config(&mut self, config: Config) -> Result<()> {
        let before: Vec<Config> = self.interfaces.iter().map(|i| i.dp.config()).collect();
        let mut index = 0;
        self.on_all(
            |iface| iface.dp.set_config(for_interface(config, &iface.name)),
            |dp| {
                let c = before[index];
                index += 1;
                dp.set_config(c)
            },
        )
    }

    /// Sets the amplification ports on every interface, all or nothing.
    pub fn set_amp_ports(&mut self, ports: &[u16], before: &[u16]) -> Result<()> {
        self.on_all(
            |iface| iface.dp.set_amp_ports(ports),
            |dp| dp.set_amp_ports(before),
        )
    }

    /// Replaces the received FlowSpec rules on every interface, all or nothing.
    pub fn set_upstream_rules(
        &mut self,
        rules: &[filter_common::abi::UpstreamRule],
        before: &[filter_common::abi::UpstreamRule],
    ) -> Result<()> {
        self.on_all(
            |iface| iface.dp.set_upstream_rules(rules, before),
            |dp| dp.set_upstream_rules(before, rules),
        )
    }

    /// Renews the received rules' lease on every interface, each tried whatever happened
    /// to the others.
    pub fn renew_upstream_lease(&mut self) -> Result<()> {
        let mut failed = None;
        for iface in &mut self.interfaces {
            if let Err(e) = iface.dp.renew_upstream_lease() {
                failed.get_or_insert(e.context(iface.name.clone()));
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Exempts the BGP sessions with `peers` on every interface, all or nothing.
    pub fn set_bgp_peers(&mut self, peers: &[std::net::IpAddr]) -> Result<()> {
        self.on_all(
            |iface| iface.dp.set_bgp_peers(peers),
            |dp| dp.set_bgp_peers(&[]),
        )
    }

    /// Replaces the flood signatures on every interface, all or nothing.
    pub fn set_signatures(
        &mut self,
        sigs: &[filter_common::signature::FloodSignature],
        before: &[filter_common::signature::FloodSignature],
    ) -> Result<()> {
        self.on_all(
            |iface| iface.dp.set_signatures(sigs, before),
            |dp| dp.set_signatures(before, sigs),
        )
    }

    /// Samples the next packet on every interface (see `Dataplane::sample_sooner`).
    pub fn sample_sooner(&mut self) -> Result<()> {
        for iface in &mut self.interfaces {
            iface.dp.sample_sooner()?;
        }
        Ok(())
    }

    /// Packets each signature slot dropped, summed over the interfaces.
    pub fn signature_hits(&self) -> Result<Vec<u64>> {
        let mut sum = vec![0u64; filter_common::signature::SIGNATURE_SLOTS as usize];
        for iface in &self.interfaces {
            for (s, h) in sum.iter_mut().zip(iface.dp.signature_hits()?) {
                *s += h;
            }
        }
        Ok(sum)
    }

    /// Starts copying what `filter` matches on every interface, all or nothing.
    pub fn start_capture(&mut self, filter: &filter_common::abi::CaptureFilter) -> Result<()> {
        self.on_all(
            |iface| iface.dp.start_capture(filter),
            |dp| dp.stop_capture(),
        )
    }

    /// Stops copying everywhere; an interface that refuses is named and the others stop.
    pub fn stop_capture(&mut self) -> Result<()> {
        let mut failed = Vec::new();
        for iface in &mut self.interfaces {
            if let Err(e) = iface.dp.stop_capture() {
                failed.push(format!("{}: {e:#}", iface.name));
            }
        }
        if !failed.is_empty() {
            bail!("capture still copying on {}", failed.join("; "));
        }
        Ok(())
    }

    /// Applies `change` to each interface in turn; if one fails, `undo` runs on those
    /// already changed (first to last) and the error is returned.
    fn on_all(
        &mut self,
        mut change: impl FnMut(&mut Interface) -> Result<()>,
        mut undo: impl FnMut(&mut Dataplane) -> Result<()>,
    ) -> Result<()> {
        for i in 0..self.interfaces.len() {
            let iface = &mut self.interfaces[i];
            if let Err(e) = change(iface).with_context(|| format!("interface {}", iface.name)) {
                for done in &mut self.interfaces[..i] {
                    if let Err(undo_err) = undo(&mut done.dp) {
                        error!(iface = %done.name, "cannot undo a refused change, interfaces now differ: {undo_err:#}");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Progress of a long list write: a line rewritten in place on a terminal, one log line at
/// the end otherwise. Short writes say nothing.
struct Progress {
    what: String,
    total: usize,
    terminal: bool,
}

impl Progress {
    const QUIET_BELOW: usize = 10_000;

    fn new(iface: &str, list: List, total: usize) -> Progress {
        use std::io::IsTerminal as _;
        let list = match list {
            List::Allow => "allowlist",
            List::Block => "blocklist",
        };
        Progress {
            what: format!("{list} on {iface}"),
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize) {
        if self.total < Self::QUIET_BELOW {
            return;
        }
        if self.terminal {
            eprint!("\rloading {}: {done}/{} prefixes", self.what, self.total);
            if done == self.total {
                eprintln!();
            }
        } else if done == self.total {
            info!(list = %self.what, prefixes = self.total, "loaded");
        }
    }
}
