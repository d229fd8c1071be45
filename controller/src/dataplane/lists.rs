//! The allow- and blocklist tries: prefixes written, removed and read back, and the HAS_*
//! flags that let the program skip an empty list. A batch of edits is all-or-nothing on one
//! program: when an edit fails, the ones before it are undone.

use std::time::Duration;

use anyhow::{Context as _, Result};
use aya::maps::{Array, LpmTrie, MapData, lpm_trie::Key};
use filter_common::abi::{AllowEntry, BlockEntry, flags, map};
use ipnet::IpNet;
use tracing::error;

use super::{
    Dataplane,
    batch::{BATCH, BATCH_MIN, batch_insert},
    is_not_found, monotonic_coarse_ns,
};

/// One of the two prefix lists; each has an IPv4 and an IPv6 trie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Allow,
    Block,
}

impl List {
    fn maps(self) -> [&'static str; 2] {
        match self {
            List::Allow => [map::ALLOW_V4, map::ALLOW_V6],
            List::Block => [map::BLOCK_V4, map::BLOCK_V6],
        }
    }
}

/// What a list entry holds: for the blocklist its expiry (CLOCK_MONOTONIC_COARSE ns, 0 =
/// never); the allowlist ignores it.
pub type Expiry = u64;

/// A change of one prefix: `new` replaces `old` (None: absent). `old` is what undo restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    pub net: IpNet,
    pub new: Option<Expiry>,
    pub old: Option<Expiry>,
}

impl Edit {
    /// The edit that undoes this one.
    pub fn inverse(self) -> Edit {
        Edit {
            net: self.net,
            new: self.old,
            old: self.new,
        }
    }
}

/// Expiry of a block with `ttl` from now; 0 for none. Refuses a TTL the clock cannot hold.
pub fn expiry_after(ttl: Option<Duration>) -> Result<Expiry> {
    let Some(ttl) = ttl else { return Ok(0) };
    u64::try_from(ttl.as_nanos())
        .ok()
        .and_then(|ns| monotonic_coarse_ns().checked_add(ns))
        .with_context(|| format!("TTL {}s is longer than the clock can hold", ttl.as_secs()))
}

impl Dataplane {
    /// Blocks a prefix, for `ttl` or for good.
    pub fn block(&mut self, net: IpNet, ttl: Option<Duration>) -> Result<()> {
        let expiry = expiry_after(ttl)?;
        self.write(
            List::Block,
            &[Edit {
                net,
                new: Some(expiry),
                old: None,
            }],
            &mut |_| {},
        )
    }

    /// Removes a blocked prefix; false if it was not there.
    pub fn unblock(&mut self, net: IpNet) -> Result<bool> {
        self.remove(List::Block, net)
    }

    /// Allowlists a prefix: its traffic skips every check, in every mode.
    pub fn allow(&mut self, net: IpNet) -> Result<()> {
        self.write(
            List::Allow,
            &[Edit {
                net,
                new: Some(0),
                old: None,
            }],
            &mut |_| {},
        )
    }

    /// Removes an allowlisted prefix; false if it was not there.
    pub fn unallow(&mut self, net: IpNet) -> Result<bool> {
        self.remove(List::Allow, net)
    }

    /// Applies `edits` in order, telling `progress` how many are done every 10000. On a
    /// failure the edits already made are undone and the error returned: the list is as it
    /// was. (LPM tries have no kernel batch update: one syscall per edit, and one refresh of
    /// the HAS_* flags per batch.)
    pub fn write(
        &mut self,
        list: List,
        edits: &[Edit],
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        // Bits first: a prefix in a trie whose block's bit is clear would not be looked at.
        self.mark_listed(
            list,
            edits.iter().filter(|e| e.new.is_some()).map(|e| &e.net),
        )?;
        let result = self.write_all(list, edits, progress);
        if let Err((done, e)) = result {
            let undo: Vec<Edit> = edits[..done].iter().rev().map(|e| e.inverse()).collect();
            if let Err((_, undo_err)) = self.write_all(list, &undo, &mut |_| {}) {
                error!(
                    "undoing a failed list change also failed, the list is partly changed: {undo_err:#}"
                );
            }
            self.lists_changed()?;
            return Err(e);
        }
        if edits.iter().any(|e| e.new.is_none()) {
            self.after_removal();
        }
        self.lists_changed()
    }

    /// The edits up to the first failure; on failure how many were made, and the error.
    /// Long runs of insertions go to the kernel in batches (BPF_MAP_UPDATE_BATCH), the rest
    /// one by one.
    fn write_all(
        &mut self,
        list: List,
        edits: &[Edit],
        progress: &mut dyn FnMut(usize),
    ) -> std::result::Result<(), (usize, anyhow::Error)> {
        let fds = list.maps().map(|name| self.map(name).ok().and_then(raw_fd));
        let [m4, m6] = self.ebpf.maps_disjoint_mut(list.maps());
        let (Some(m4), Some(m6)) = (m4, m6) else {
            return Err((0, anyhow::anyhow!("list maps missing from the object")));
        };
        let mut tries = Tries::new(list, m4, m6).map_err(|e| (0, e))?;
        let mut done = 0;
        while done < edits.len() {
            let first = &edits[done];
            let v6 = first.net.addr().is_ipv6();
            let run = edits[done..]
                .iter()
                .take_while(|e| e.new.is_some() && e.net.addr().is_ipv6() == v6)
                .count();
            let fd = fds[usize::from(v6)];
            if run >= BATCH_MIN
                && let Some(fd) = fd
            {
                for chunk in edits[done..done + run].chunks(BATCH) {
                    batch_insert(fd, list, chunk).map_err(|(n, e)| (done + n, e))?;
                    done += chunk.len();
                    progress(done);
                }
                continue;
            }
            tries.apply(first).map_err(|e| (done, e))?;
            done += 1;
            if done % 10_000 == 0 {
                progress(done);
            }
        }
        progress(edits.len());
        Ok(())
    }

    fn remove(&mut self, list: List, net: IpNet) -> Result<bool> {
        let [m4, m6] = self.ebpf.maps_disjoint_mut(list.maps());
        let (Some(m4), Some(m6)) = (m4, m6) else {
            anyhow::bail!("list maps missing from the object");
        };
        let removed = Tries::new(list, m4, m6)?.remove(net)?;
        if removed {
            self.after_removal();
        }
        self.lists_changed()?;
        Ok(removed)
    }

    /// Blocked prefixes with their expiry (CLOCK_MONOTONIC_COARSE ns, 0 = never), expired ones
    /// included until they are removed. Walks the tries: for start-up and tests.
    pub fn blocklist(&self) -> Result<Vec<(IpNet, Expiry)>> {
        let mut out = Vec::new();
        for (key, e) in self.trie_entries::<[u8; 4], BlockEntry>(map::BLOCK_V4)? {
            out.push((net_v4(key.prefix_len(), key.data())?, e.expires_ns));
        }
        for (key, e) in self.trie_entries::<[u8; 16], BlockEntry>(map::BLOCK_V6)? {
            out.push((net_v6(key.prefix_len(), key.data())?, e.expires_ns));
        }
        Ok(out)
    }

    /// Allowlisted prefixes. Walks the tries: for start-up and tests.
    pub fn allowlist(&self) -> Result<Vec<IpNet>> {
        let mut out = Vec::new();
        for (key, _) in self.trie_entries::<[u8; 4], AllowEntry>(map::ALLOW_V4)? {
            out.push(net_v4(key.prefix_len(), key.data())?);
        }
        for (key, _) in self.trie_entries::<[u8; 16], AllowEntry>(map::ALLOW_V6)? {
            out.push(net_v6(key.prefix_len(), key.data())?);
        }
        Ok(out)
    }

    fn trie_entries<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<Vec<(Key<K>, V)>> {
        let trie: LpmTrie<&MapData, K, V> = LpmTrie::try_from(self.map(name)?)?;
        trie.iter()
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("failed to read {name}"))
    }

    fn trie_has_entries<K: aya::Pod, V: aya::Pod>(&self, name: &str) -> Result<bool> {
        let trie: LpmTrie<&MapData, K, V> = LpmTrie::try_from(self.map(name)?)?;
        Ok(trie.keys().next().is_some())
    }

    /// After any change to a list, made or undone: a new generation of the lists, which
    /// makes every blocked source the program remembers (BLOCKED_V4) stale, so none
    /// outlives the entry it came from; then the HAS_* flags.
    fn lists_changed(&mut self) -> Result<()> {
        let mut generation: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map::LIST_GENERATION)?)?;
        let next = generation.get(&0, 0)?.wrapping_add(1);
        generation
            .set(0, next, 0)
            .context("failed to start a new generation of the lists")?;
        self.refresh_list_flags()
    }

    /// Sets the HAS_* flags so the program skips lookups in empty lists.
    pub(crate) fn refresh_list_flags(&mut self) -> Result<()> {
        let has = [
            (
                flags::HAS_ALLOW_V4,
                self.trie_has_entries::<[u8; 4], AllowEntry>(map::ALLOW_V4)?,
            ),
            (
                flags::HAS_ALLOW_V6,
                self.trie_has_entries::<[u8; 16], AllowEntry>(map::ALLOW_V6)?,
            ),
            (
                flags::HAS_BLOCK_V4,
                self.trie_has_entries::<[u8; 4], BlockEntry>(map::BLOCK_V4)?,
            ),
            (
                flags::HAS_BLOCK_V6,
                self.trie_has_entries::<[u8; 16], BlockEntry>(map::BLOCK_V6)?,
            ),
        ];
        for (flag, on) in has {
            self.config.set_flag(flag, on);
        }
        self.write_config()
    }
}

/// The two tries of one list, opened for writing.
enum Tries<'a> {
    Allow(
        LpmTrie<&'a mut MapData, [u8; 4], AllowEntry>,
        LpmTrie<&'a mut MapData, [u8; 16], AllowEntry>,
    ),
    Block(
        LpmTrie<&'a mut MapData, [u8; 4], BlockEntry>,
        LpmTrie<&'a mut MapData, [u8; 16], BlockEntry>,
    ),
}

impl<'a> Tries<'a> {
    fn new(list: List, m4: &'a mut aya::maps::Map, m6: &'a mut aya::maps::Map) -> Result<Self> {
        Ok(match list {
            List::Allow => Tries::Allow(LpmTrie::try_from(m4)?, LpmTrie::try_from(m6)?),
            List::Block => Tries::Block(LpmTrie::try_from(m4)?, LpmTrie::try_from(m6)?),
        })
    }

    fn apply(&mut self, edit: &Edit) -> Result<()> {
        let Some(expires_ns) = edit.new else {
            return self.remove(edit.net).map(|_| ());
        };
        let (k4, k6) = keys(edit.net);
        let done = match (self, k4, k6) {
            (Tries::Allow(v4, _), Some(k), _) => v4.insert(&k, AllowEntry::default(), 0),
            (Tries::Allow(_, v6), _, Some(k)) => v6.insert(&k, AllowEntry::default(), 0),
            (Tries::Block(v4, _), Some(k), _) => v4.insert(&k, BlockEntry { expires_ns }, 0),
            (Tries::Block(_, v6), _, Some(k)) => v6.insert(&k, BlockEntry { expires_ns }, 0),
            _ => unreachable!("a prefix is IPv4 or IPv6"),
        };
        done.with_context(|| format!("failed to add {}", edit.net))
    }

    /// Removes a prefix; false if it was not there.
    fn remove(&mut self, net: IpNet) -> Result<bool> {
        let (k4, k6) = keys(net);
        let done = match (self, k4, k6) {
            (Tries::Allow(v4, _), Some(k), _) => v4.remove(&k),
            (Tries::Allow(_, v6), _, Some(k)) => v6.remove(&k),
            (Tries::Block(v4, _), Some(k), _) => v4.remove(&k),
            (Tries::Block(_, v6), _, Some(k)) => v6.remove(&k),
            _ => unreachable!("a prefix is IPv4 or IPv6"),
        };
        match done {
            Ok(()) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("failed to remove {net}")),
        }
    }
}

/// The trie key of a prefix: IPv4 or IPv6.
type Keys = (Option<Key<[u8; 4]>>, Option<Key<[u8; 16]>>);

fn keys(net: IpNet) -> Keys {
    match net {
        IpNet::V4(n) => (
            Some(Key::new(u32::from(n.prefix_len()), n.network().octets())),
            None,
        ),
        IpNet::V6(n) => (
            None,
            Some(Key::new(u32::from(n.prefix_len()), n.network().octets())),
        ),
    }
}

pub(super) fn net_v4(prefix: u32, octets: [u8; 4]) -> Result<IpNet> {
    Ok(IpNet::V4(ipnet::Ipv4Net::new(octets.into(), prefix as u8)?))
}

pub(super) fn net_v6(prefix: u32, octets: [u8; 16]) -> Result<IpNet> {
    Ok(IpNet::V6(ipnet::Ipv6Net::new(octets.into(), prefix as u8)?))
}

/// The list maps' descriptors, for writing them from another thread while the program is
/// verified (see [`Dataplane::load_with`]).
pub struct ListFds {
    block: [std::os::fd::RawFd; 2],
    allow: [std::os::fd::RawFd; 2],
    /// Summary bits of the prefixes filled, for the loader to set (the program is not
    /// attached yet).
    marked: std::sync::Mutex<super::summary::Words>,
}

impl ListFds {
    pub(super) fn of(ebpf: &aya::Ebpf) -> Result<ListFds> {
        let fd = |name: &str| {
            ebpf.map(name)
                .and_then(raw_fd)
                .with_context(|| format!("map {name} missing from the object"))
        };
        Ok(ListFds {
            block: [fd(map::BLOCK_V4)?, fd(map::BLOCK_V6)?],
            allow: [fd(map::ALLOW_V4)?, fd(map::ALLOW_V6)?],
            marked: std::sync::Mutex::new(super::summary::empty()),
        })
    }

    /// The summary bits of what was filled.
    pub(super) fn marked(&self) -> super::summary::Words {
        self.marked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fills empty (new) maps with `entries` (prefix and expiry, IPv4 first), in batches.
    pub fn fill(&self, list: List, entries: &[(IpNet, Expiry)]) -> Result<()> {
        let fds = match list {
            List::Allow => self.allow,
            List::Block => self.block,
        };
        {
            let mut marked = self.marked.lock().unwrap_or_else(|e| e.into_inner());
            for (net, _) in entries {
                super::summary::mark(&mut marked, list, net);
            }
        }
        let v4 = entries
            .iter()
            .take_while(|(n, _)| n.addr().is_ipv4())
            .count();
        for (fd, part) in [(fds[0], &entries[..v4]), (fds[1], &entries[v4..])] {
            let edits: Vec<Edit> = part
                .iter()
                .map(|(net, e)| Edit {
                    net: *net,
                    new: Some(*e),
                    old: None,
                })
                .collect();
            for chunk in edits.chunks(BATCH) {
                batch_insert(fd, list, chunk).map_err(|(_, e)| e)?;
            }
        }
        Ok(())
    }
}

fn raw_fd(map: &aya::maps::Map) -> Option<std::os::fd::RawFd> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    match map {
        aya::maps::Map::LpmTrie(data) => Some(data.fd().as_fd().as_raw_fd()),
        _ => None,
    }
}
