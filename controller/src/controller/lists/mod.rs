//! The list book: every prefix of the allow- and blocklists and where it came from (the
//! config, the operator through the CLI, detection, or maps adopted from an earlier run), so a
//! reload removes only what the config added, a permanent config block outlives a timed one on
//! the same prefix, counts need no walk of the tries, and expiry needs no scan.
//!
//! A timed block never weakens a permanent one: a block goes into the program's trie only if
//! no shorter prefix in the book outlasts it. Otherwise the longer prefix would match first
//! and, once expired (the program ignores expired entries until the controller removes them),
//! hide the block that still holds.
//!
//! Block changes return the [`Edit`]s of the trie they need (the entries changed, and those
//! they newly cover or uncover) and an undo; the caller writes the edits to every interface
//! and undoes the book if that fails. Allow changes are planned, then recorded once written.

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

#[derive(Debug)]
pub struct ListBook {
    blocks: BTreeMap<IpNet, Block>,
    /// Blocks per prefix length, IPv4 then IPv6, so looking for covering blocks tries only
    /// the lengths in use.
    lengths_v4: [u32; 33],
    lengths_v6: [u32; 129],
    /// Timed operator blocks by expiry, so expiry looks only at what is due.
    expiry: BTreeSet<(Expiry, IpNet)>,
    /// Prefixes with an operator block, so the state file is written without a walk of the
    /// (possibly million-entry) book.
    operator: BTreeSet<IpNet>,
    allows: BTreeMap<IpNet, Allow>,
}

impl Default for ListBook {
    fn default() -> Self {
        ListBook {
            blocks: BTreeMap::new(),
            lengths_v4: [0; 33],
            lengths_v6: [0; 129],
            expiry: BTreeSet::new(),
            operator: BTreeSet::new(),
            allows: BTreeMap::new(),
        }
    }
}

/// Every prefix covering `ip`, longest first.
fn covering(ip: std::net::IpAddr) -> impl Iterator<Item = IpNet> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (0..=max)
        .rev()
        .filter_map(move |len| IpNet::new(ip, len).ok().map(|n| n.trunc()))
}

/// What [`ListBook::change_blocks`] replaced, to put back.
#[derive(Debug, Default)]
pub struct BlockUndo(Vec<(IpNet, Block)>);

impl ListBook {
    /// A book holding only the config's entries: built in one pass from sorted sets, for
    /// a start with a long list (a million entries load in well under a second).
    pub fn from_config(block: &BTreeSet<IpNet>, allow: &BTreeSet<IpNet>) -> ListBook {
        let mut book = ListBook::default();
        let config = || Block {
            config: true,
            operator: None,
        };
        book.blocks = block.iter().map(|n| (*n, config())).collect();
        for net in block {
            match net {
                IpNet::V4(_) => book.lengths_v4[usize::from(net.prefix_len())] += 1,
                IpNet::V6(_) => book.lengths_v6[usize::from(net.prefix_len())] += 1,
            }
        }
        let from_config = Allow {
            config: true,
            ..Allow::default()
        };
        book.allows = allow.iter().map(|n| (*n, from_config)).collect();
        book
    }

    pub fn block(&self, net: &IpNet) -> Option<&Block> {
        self.blocks.get(net)
    }

    pub fn allow(&self, net: &IpNet) -> Option<&Allow> {
        self.allows.get(net)
    }

    pub fn blocks(&self) -> impl Iterator<Item = (&IpNet, &Block)> {
        self.blocks.iter()
    }

    /// The operator blocks (CLI, detection, adopted), without a walk of the whole book.
    pub fn operator_blocks(&self) -> impl Iterator<Item = (&IpNet, &OperatorBlock)> {
        self.operator
            .iter()
            .filter_map(|net| Some((net, self.blocks.get(net)?.operator.as_ref()?)))
    }

    pub fn allows(&self) -> impl Iterator<Item = (&IpNet, &Allow)> {
        self.allows.iter()
    }

    /// The longest allowlisted prefix covering `ip`, with its origins.
    pub fn allow_covering(&self, ip: std::net::IpAddr) -> Option<(IpNet, Allow)> {
        covering(ip).find_map(|net| Some((net, *self.allows.get(&net)?)))
    }

    /// The longest blocked prefix covering `ip` that the trie holds (see
    /// [`ListBook::in_map`]), with its origins.
    pub fn block_covering(&self, ip: std::net::IpAddr) -> Option<(IpNet, &Block)> {
        covering(ip).find_map(|net| {
            self.in_map(&net)?;
            Some((net, self.blocks.get(&net)?))
        })
    }

    /// Whether an allowlist entry covers `ip`.
    /// Whether an allowlisted address is inside `net` (for a host: whether it is allowlisted).
    pub fn allows_any(&self, net: &IpNet) -> bool {
        self.allows
            .keys()
            .any(|allowed| allowed.contains(net) || net.contains(allowed))
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn allow_count(&self) -> usize {
        self.allows.len()
    }

    /// What the trie holds for `net`: its expiry, unless a shorter prefix in the book
    /// outlasts it (then the shorter one decides, and `net` stays out of the trie).
    pub fn in_map(&self, net: &IpNet) -> Option<Expiry> {
        let own = self.blocks.get(net)?.expiry()?;
        let lengths: &[u32] = match net {
            IpNet::V4(_) => &self.lengths_v4,
            IpNet::V6(_) => &self.lengths_v6,
        };
        let outlasted = (0..net.prefix_len())
            .filter(|len| lengths[usize::from(*len)] > 0)
            .filter_map(|len| IpNet::new(net.addr(), len).ok().map(|n| n.trunc()))
            .filter_map(|outer| self.blocks.get(&outer)?.expiry())
            .any(|outer| outer == 0 || (own != 0 && outer >= own));
        (!outlasted).then_some(own)
    }

    /// Every prefix the trie holds, with its expiry.
    pub fn materialized(&self) -> impl Iterator<Item = (IpNet, Expiry)> + '_ {
        self.blocks
            .keys()
            .filter_map(|net| Some((*net, self.in_map(net)?)))
    }

    /// Blocks inside `net` (longer prefixes), in the book.
    fn inside(&self, net: &IpNet) -> Vec<IpNet> {
        let (first, last) = match net {
            IpNet::V4(n) => (
                IpNet::from(ipnet::Ipv4Net::new(n.network(), 0).expect("valid")),
                IpNet::from(ipnet::Ipv4Net::new(n.broadcast(), 32).expect("valid")),
            ),
            IpNet::V6(n) => (
                IpNet::from(ipnet::Ipv6Net::new(n.network(), 0).expect("valid")),
                IpNet::from(ipnet::Ipv6Net::new(n.broadcast(), 128).expect("valid")),
            ),
        };
        self.blocks
            .range(first..=last)
            .map(|(n, _)| *n)
            .filter(|n| n != net && net.contains(n))
            .collect()
    }

    /// Sets each block in `changes` (an empty one removes it). Returns the trie edits that
    /// makes, for the entries changed and the ones inside them they now cover or uncover,
    /// and the undo to use if writing the edits fails.
    pub fn change_blocks(&mut self, changes: Vec<(IpNet, Block)>) -> (Vec<Edit>, BlockUndo) {
        let mut affected: BTreeSet<IpNet> = BTreeSet::new();
        for (net, _) in &changes {
            affected.insert(*net);
            affected.extend(self.inside(net));
        }
        let before: Vec<(IpNet, Option<Expiry>)> =
            affected.iter().map(|n| (*n, self.in_map(n))).collect();
        let mut undo = Vec::with_capacity(changes.len());
        for (net, block) in changes {
            undo.push((net, self.block(&net).cloned().unwrap_or_default()));
            self.set_block(net, block);
        }
        let edits = before
            .into_iter()
            .map(|(net, old)| Edit {
                net,
                new: self.in_map(&net),
                old,
            })
            .filter(|e| e.new != e.old)
            .collect();
        (edits, BlockUndo(undo))
    }

    /// Puts back what a [`ListBook::change_blocks`] replaced.
    pub fn restore_blocks(&mut self, undo: BlockUndo) {
        for (net, block) in undo.0.into_iter().rev() {
            self.set_block(net, block);
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
        if new.operator.is_some() {
            self.operator.insert(net);
        } else {
            self.operator.remove(&net);
        }
        let held = new.config || new.operator.is_some();
        let was = if held {
            self.blocks.insert(net, new).is_some()
        } else {
            self.blocks.remove(&net).is_some()
        };
        let count = match net {
            IpNet::V4(_) => &mut self.lengths_v4[usize::from(net.prefix_len())],
            IpNet::V6(_) => &mut self.lengths_v6[usize::from(net.prefix_len())],
        };
        match (was, held) {
            (false, true) => *count += 1,
            (true, false) => *count -= 1,
            _ => {}
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

    /// The block changes that make the config's own blocks exactly `block`: those no longer
    /// named lose their config origin (and go, unless the operator holds them), new ones come.
    pub fn config_block_changes(&self, block: &BTreeSet<IpNet>) -> Vec<(IpNet, Block)> {
        let stale = self
            .blocks
            .iter()
            .filter(|(n, b)| b.config && !block.contains(n))
            .map(|(net, b)| {
                let new = Block {
                    config: false,
                    ..b.clone()
                };
                (*net, new)
            });
        let fresh = block.iter().filter_map(|net| {
            let old = self.blocks.get(net).cloned().unwrap_or_default();
            (!old.config).then_some((
                *net,
                Block {
                    config: true,
                    ..old
                },
            ))
        });
        stale.chain(fresh).collect()
    }

    /// The allow changes that make the config's own allows exactly `allow`, and their trie
    /// edits; record them with [`ListBook::commit_allows`] once written.
    pub fn config_allow_changes(
        &self,
        allow: &BTreeSet<IpNet>,
    ) -> (Vec<(IpNet, Allow)>, Vec<Edit>) {
        let mut changes = Vec::new();
        let stale = self
            .allows
            .iter()
            .filter(|(n, a)| a.config && !allow.contains(n));
        for (net, a) in stale {
            changes.push((
                *net,
                Allow {
                    config: false,
                    ..*a
                },
            ));
        }
        for net in allow {
            let old = self.allows.get(net).copied().unwrap_or_default();
            if !old.config {
                changes.push((
                    *net,
                    Allow {
                        config: true,
                        ..old
                    },
                ));
            }
        }
        let edits = changes
            .iter()
            .map(|(net, a)| self.allow_edit(*net, a))
            .filter(|e| e.new != e.old)
            .collect();
        (changes, edits)
    }

    pub fn commit_allows(&mut self, changes: Vec<(IpNet, Allow)>) {
        for (net, a) in changes {
            self.set_allow(net, a);
        }
    }
}

#[cfg(test)]
mod tests;
