//! The list book: every prefix of the allow- and blocklists and where it came from (the
//! config, the operator through the CLI, detection, or maps adopted from an earlier run), so a
//! reload removes only what the config added, a permanent config block outlives a timed one on
//! the same prefix, counts need no walk of the tries, and expiry needs no scan.
//!
//! The book plans changes as [`Edit`]s of what the program's maps hold; the caller writes them
//! to every interface and only then records them with the `set_*` methods, so a refused write
//! leaves the book as it was.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::dataplane::{Edit, Expiry};

/// Who set an operator block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setter {
    Cli,
    Detection,
    /// Found in the maps of a filter an earlier run left running, accounted for by neither the
    /// config nor the state file. Kept as it was; removable with `levee block del`.
    Adopted,
}

/// A block set by the operator or the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorBlock {
    pub by: Setter,
    pub reason: Option<String>,
    /// CLOCK_MONOTONIC_COARSE ns when it ends; 0 for no TTL.
    pub expires_ns: Expiry,
}

/// One blocked prefix and its origins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// Named by the config or its list files: permanent; a reload may remove it.
    pub config: bool,
    pub operator: Option<OperatorBlock>,
}

impl Block {
    /// What the map holds for it: permanent while the config names it, else the operator's
    /// expiry; None when nothing holds it.
    pub fn expiry(&self) -> Option<Expiry> {
        if self.config {
            return Some(0);
        }
        self.operator.as_ref().map(|o| o.expires_ns)
    }

    /// The note `block list` shows.
    pub fn reason(&self) -> Option<String> {
        match &self.operator {
            _ if self.config => Some("config".into()),
            Some(o) => o.reason.clone(),
            None => None,
        }
    }
}

/// One allowlisted prefix and its origins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allow {
    pub config: bool,
    pub cli: bool,
    /// Found in adopted maps, accounted for by neither the config nor the state file.
    pub adopted: bool,
}

impl Allow {
    fn held(&self) -> bool {
        self.config || self.cli || self.adopted
    }
}

#[derive(Debug, Default)]
pub struct ListBook {
    blocks: BTreeMap<IpNet, Block>,
    /// Timed operator blocks by expiry, so expiry looks only at what is due.
    expiry: BTreeSet<(Expiry, IpNet)>,
    allows: BTreeMap<IpNet, Allow>,
}

impl ListBook {
    pub fn block(&self, net: &IpNet) -> Option<&Block> {
        self.blocks.get(net)
    }

    pub fn allow(&self, net: &IpNet) -> Option<&Allow> {
        self.allows.get(net)
    }

    pub fn blocks(&self) -> impl Iterator<Item = (&IpNet, &Block)> {
        self.blocks.iter()
    }

    pub fn allows(&self) -> impl Iterator<Item = (&IpNet, &Allow)> {
        self.allows.iter()
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn allow_count(&self) -> usize {
        self.allows.len()
    }

    /// The map edit that turns `net`'s block into `new`.
    pub fn block_edit(&self, net: IpNet, new: &Block) -> Edit {
        Edit {
            net,
            new: new.expiry(),
            old: self.blocks.get(&net).and_then(Block::expiry),
        }
    }

    /// The map edit that turns `net`'s allow into `new`.
    pub fn allow_edit(&self, net: IpNet, new: &Allow) -> Edit {
        let held = |a: &Allow| a.held().then_some(0);
        Edit {
            net,
            new: held(new),
            old: self.allows.get(&net).and_then(held),
        }
    }

    /// Records `net`'s block as `new` (an empty one removes it).
    pub fn set_block(&mut self, net: IpNet, new: Block) {
        if let Some(old) = self.blocks.get(&net)
            && let Some(o) = &old.operator
            && o.expires_ns != 0
        {
            self.expiry.remove(&(o.expires_ns, net));
        }
        if let Some(o) = &new.operator
            && o.expires_ns != 0
        {
            self.expiry.insert((o.expires_ns, net));
        }
        if new.config || new.operator.is_some() {
            self.blocks.insert(net, new);
        } else {
            self.blocks.remove(&net);
        }
    }

    /// Records `net`'s allow as `new` (an empty one removes it).
    pub fn set_allow(&mut self, net: IpNet, new: Allow) {
        if new.held() {
            self.allows.insert(net, new);
        } else {
            self.allows.remove(&net);
        }
    }

    /// Operator blocks whose time is up at `now`, soonest first.
    pub fn due(&self, now: Expiry) -> Vec<IpNet> {
        self.expiry
            .iter()
            .take_while(|(expires, _)| *expires <= now)
            .map(|(_, net)| *net)
            .collect()
    }

    /// The edits and new entries that make the config's own entries `block` and `allow`:
    /// config entries no longer named lose their config origin (and go, unless the operator
    /// holds them), new ones are added.
    pub fn plan_config(
        &self,
        block: &BTreeSet<IpNet>,
        allow: &BTreeSet<IpNet>,
    ) -> (ConfigPlan, Vec<Edit>, Vec<Edit>) {
        let mut plan = ConfigPlan::default();
        let (mut block_edits, mut allow_edits) = (Vec::new(), Vec::new());
        let stale_blocks = self
            .blocks
            .iter()
            .filter(|(n, b)| b.config && !block.contains(n));
        for (net, b) in stale_blocks {
            let new = Block {
                config: false,
                ..b.clone()
            };
            push_if_changed(&mut block_edits, self.block_edit(*net, &new));
            plan.blocks.push((*net, new));
        }
        for net in block {
            let old = self.blocks.get(net).cloned().unwrap_or_default();
            if old.config {
                continue;
            }
            let new = Block {
                config: true,
                ..old
            };
            push_if_changed(&mut block_edits, self.block_edit(*net, &new));
            plan.blocks.push((*net, new));
        }
        let stale_allows = self
            .allows
            .iter()
            .filter(|(n, a)| a.config && !allow.contains(n));
        for (net, a) in stale_allows {
            let new = Allow {
                config: false,
                ..*a
            };
            push_if_changed(&mut allow_edits, self.allow_edit(*net, &new));
            plan.allows.push((*net, new));
        }
        for net in allow {
            let old = self.allows.get(net).copied().unwrap_or_default();
            if old.config {
                continue;
            }
            let new = Allow {
                config: true,
                ..old
            };
            push_if_changed(&mut allow_edits, self.allow_edit(*net, &new));
            plan.allows.push((*net, new));
        }
        (plan, block_edits, allow_edits)
    }

    /// Records a plan made by [`ListBook::plan_config`] once its edits are written.
    pub fn commit(&mut self, plan: ConfigPlan) {
        for (net, b) in plan.blocks {
            self.set_block(net, b);
        }
        for (net, a) in plan.allows {
            self.set_allow(net, a);
        }
    }
}

/// New entries a config change makes, recorded once the maps hold them.
#[derive(Debug, Default)]
pub struct ConfigPlan {
    blocks: Vec<(IpNet, Block)>,
    allows: Vec<(IpNet, Allow)>,
}

fn push_if_changed(edits: &mut Vec<Edit>, edit: Edit) {
    if edit.new != edit.old {
        edits.push(edit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn timed(expires_ns: Expiry) -> OperatorBlock {
        OperatorBlock {
            by: Setter::Cli,
            reason: Some("x".into()),
            expires_ns,
        }
    }

    #[test]
    fn a_config_block_outlives_a_timed_block_on_the_same_prefix() {
        let mut book = ListBook::default();
        let p = net("192.0.2.0/24");
        let (plan, edits, _) = book.plan_config(&[p].into(), &BTreeSet::new());
        assert_eq!(
            edits,
            [Edit {
                net: p,
                new: Some(0),
                old: None
            }]
        );
        book.commit(plan);
        let both = Block {
            operator: Some(timed(50)),
            ..book.block(&p).cloned().unwrap()
        };
        assert_eq!(book.block_edit(p, &both).new, Some(0), "stays permanent");
        book.set_block(p, both);
        assert_eq!(book.due(60), [p]);
        let expired = Block {
            operator: None,
            ..book.block(&p).cloned().unwrap()
        };
        assert_eq!(book.block_edit(p, &expired).new, Some(0));
        book.set_block(p, expired);
        assert!(book.due(u64::MAX).is_empty());
        assert_eq!(book.block_count(), 1);
    }

    #[test]
    fn a_reload_removes_only_what_the_config_added() {
        let mut book = ListBook::default();
        let (a, b) = (net("192.0.2.0/24"), net("198.51.100.0/24"));
        let (plan, _, _) = book.plan_config(&[a, b].into(), &[a].into());
        book.commit(plan);
        book.set_block(
            b,
            Block {
                config: true,
                operator: Some(timed(0)),
            },
        );
        let (plan, block_edits, allow_edits) = book.plan_config(&BTreeSet::new(), &BTreeSet::new());
        assert_eq!(
            block_edits,
            [Edit {
                net: a,
                new: None,
                old: Some(0)
            }]
        );
        assert_eq!(
            allow_edits,
            [Edit {
                net: a,
                new: None,
                old: Some(0)
            }]
        );
        book.commit(plan);
        assert!(book.block(&a).is_none());
        assert_eq!(book.block(&b).unwrap().reason().as_deref(), Some("x"));
        assert_eq!((book.block_count(), book.allow_count()), (1, 0));
    }
}
