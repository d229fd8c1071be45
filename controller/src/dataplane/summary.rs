//! The list summary (`filter_common::abi::summary`): for each list, one bit per address block
//! that may hold one of its prefixes, so the program looks in a trie only for such sources.
//!
//! A hole here would be a blocklist hole, so bits are set before the prefixes that need them
//! go in, and cleared only by a rebuild from the tries themselves, never from what the
//! controller believes they hold. A bit left set after its prefix went costs a lookup, not a
//! miss.

use anyhow::{Context as _, Result};
use aya::maps::{Array, LpmTrie, MapData};
use filter_common::abi::{AllowEntry, BlockEntry, map, summary};
use ipnet::IpNet;
use tracing::warn;

use super::{Dataplane, List};

/// Prefixes up to which a removal rebuilds the summary at once (the walk reads each key with
/// a syscall); above, the bits of removed prefixes stay set until the lists shrink below it or
/// the daemon restarts.
pub const REBUILD_MAX_PREFIXES: usize = 20_000;

/// The summary as user space holds it: the words the map holds.
pub type Words = Vec<u64>;

pub fn empty() -> Words {
    vec![0; summary::WORDS as usize]
}

/// Sets `list`'s bits of every block `net` overlaps.
pub fn mark(words: &mut [u64], list: List, net: &IpNet) {
    let base = match list {
        List::Allow => 0,
        List::Block => summary::BLOCK,
    };
    let mut set = |bit: u32| {
        let bit = base + bit;
        words[(bit >> 6) as usize] |= 1 << (bit & 63)
    };
    match net {
        IpNet::V4(n) => {
            let first = summary::bit_v4(n.network().octets());
            let blocks = 1u32 << 16u8.saturating_sub(n.prefix_len());
            (first..first + blocks).for_each(set);
        }
        IpNet::V6(n) if n.prefix_len() < summary::V6_ALL_BELOW => (65536..131072).for_each(set),
        IpNet::V6(n) => {
            // Every /48 under the prefix: up to 2^12 of them.
            let base = u128::from(n.network());
            let blocks = 1u128 << 48u8.saturating_sub(n.prefix_len());
            for i in 0..blocks {
                set(summary::bit_v6(&(base + (i << 80)).to_be_bytes()));
            }
        }
    }
}

impl Dataplane {
    /// Sets the summary bits of `nets` in `list` (before they go into its trie).
    pub(crate) fn mark_listed<'a>(
        &mut self,
        list: List,
        nets: impl IntoIterator<Item = &'a IpNet>,
    ) -> Result<()> {
        let mut words = self.summary.clone();
        for net in nets {
            mark(&mut words, list, net);
        }
        self.write_summary(&words)
    }

    /// Sets the bits set in `marked`.
    pub(crate) fn mark_words(&mut self, marked: &[u64]) -> Result<()> {
        let words: Words = self
            .summary
            .iter()
            .zip(marked)
            .map(|(a, b)| a | b)
            .collect();
        self.write_summary(&words)
    }

    /// Makes the summary exact again from the tries' own keys, unless they hold more than
    /// `limit` prefixes (then nothing changes and false is returned).
    pub(crate) fn rebuild_list_summary(&mut self, limit: Option<usize>) -> Result<bool> {
        let limit = limit.unwrap_or(usize::MAX);
        let prefixes = self.list_prefixes(limit)?;
        if prefixes.len() > limit {
            return Ok(false);
        }
        let mut words = empty();
        for (list, net) in &prefixes {
            mark(&mut words, *list, net);
        }
        self.write_summary(&words)?;
        Ok(true)
    }

    /// After prefixes were removed: clears the bits no prefix needs any more, if the lists are
    /// small enough to walk now. A failure leaves bits set, which costs lookups, not misses.
    pub(crate) fn after_removal(&mut self) {
        match self.rebuild_list_summary(Some(REBUILD_MAX_PREFIXES)) {
            Ok(_) => {}
            Err(e) => warn!("the list summary keeps bits of removed prefixes: {e:#}"),
        }
    }

    /// The words of the summary map, for tests.
    pub fn list_summary(&self) -> Result<Words> {
        let array: Array<&MapData, u64> = Array::try_from(self.map(map::LIST_SUMMARY)?)?;
        (0..summary::WORDS)
            .map(|i| array.get(&i, 0).context("failed to read LIST_SUMMARY"))
            .collect()
    }

    /// Every prefix of both lists, up to `limit` + 1 of them.
    fn list_prefixes(&self, limit: usize) -> Result<Vec<(List, IpNet)>> {
        let mut out = Vec::new();
        macro_rules! walk {
            ($list:expr, $name:expr, $k:ty, $v:ty, $net:path) => {
                let trie: LpmTrie<&MapData, $k, $v> = LpmTrie::try_from(self.map($name)?)?;
                for key in trie.keys() {
                    if out.len() > limit {
                        return Ok(out);
                    }
                    let key = key.with_context(|| format!("failed to read {}", $name))?;
                    out.push(($list, $net(key.prefix_len(), key.data())?));
                }
            };
        }
        walk!(
            List::Allow,
            map::ALLOW_V4,
            [u8; 4],
            AllowEntry,
            super::lists::net_v4
        );
        walk!(
            List::Block,
            map::BLOCK_V4,
            [u8; 4],
            BlockEntry,
            super::lists::net_v4
        );
        walk!(
            List::Allow,
            map::ALLOW_V6,
            [u8; 16],
            AllowEntry,
            super::lists::net_v6
        );
        walk!(
            List::Block,
            map::BLOCK_V6,
            [u8; 16],
            BlockEntry,
            super::lists::net_v6
        );
        Ok(out)
    }

    /// Writes the words that differ from what the map holds.
    pub(crate) fn write_summary(&mut self, words: &[u64]) -> Result<()> {
        let mut held_words = std::mem::take(&mut self.summary);
        let written = self.write_changed(words, &mut held_words);
        self.summary = held_words;
        written
    }

    fn write_changed(&mut self, words: &[u64], held_words: &mut [u64]) -> Result<()> {
        let mut array: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map::LIST_SUMMARY)?)?;
        for (i, (new, held)) in words.iter().zip(held_words.iter_mut()).enumerate() {
            if new != held {
                array
                    .set(i as u32, *new, 0)
                    .context("failed to write LIST_SUMMARY")?;
                *held = *new;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(net: &str) -> Vec<u32> {
        let mut w = empty();
        mark(&mut w, List::Block, &net.parse().unwrap());
        (0..summary::WORDS * 64)
            .filter(|b| w[(b >> 6) as usize] >> (b & 63) & 1 != 0)
            .map(|b| b - summary::BLOCK)
            .collect()
    }

    #[test]
    fn an_ipv4_prefix_marks_every_slash_16_it_overlaps() {
        assert_eq!(bits("198.18.66.6/32"), vec![198 * 256 + 18]);
        assert_eq!(bits("198.18.0.0/16"), vec![198 * 256 + 18]);
        assert_eq!(
            bits("198.16.0.0/14"),
            (198 * 256 + 16..198 * 256 + 20).collect::<Vec<_>>()
        );
        assert_eq!(bits("0.0.0.0/0").len(), 65536);
    }

    #[test]
    fn each_list_has_its_own_bits() {
        let mut w = empty();
        mark(&mut w, List::Allow, &"198.18.0.0/16".parse().unwrap());
        let bit = 198 * 256 + 18;
        assert_eq!(w[(bit >> 6) as usize], 1 << (bit & 63));
        let block = summary::BLOCK + bit;
        assert_eq!(w[(block >> 6) as usize], 0);
        mark(&mut w, List::Block, &"198.18.0.0/16".parse().unwrap());
        assert_eq!(w[(block >> 6) as usize], 1 << (block & 63));
    }

    #[test]
    fn an_ipv6_prefix_marks_the_hashed_slash_48s_under_it() {
        let site = summary::bit_v6(
            &"2001:db8:aaaa::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(bits("2001:db8:aaaa::/48"), vec![site]);
        assert_eq!(bits("2001:db8:aaaa:1::/64"), vec![site]);
        let under_44 = bits("2001:db8:aaa0::/44");
        assert!(under_44.contains(&site) && under_44.len() <= 16 && !under_44.is_empty());
        assert_eq!(bits("2001:db8::/32").len(), 65536);
        assert!(bits("2001:db8::/32").iter().all(|b| *b >= 65536));
    }
}
