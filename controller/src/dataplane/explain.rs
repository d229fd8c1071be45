//! What the program's maps hold for one source, read the way the program reads them, for
//! `levee explain`: the live CONFIG, the list lookups behind their flags and summary bits, the
//! amplification-port bit, the source's entry (its slot or SOURCES), the class's aggregate buckets on every
//! CPU, the services trie and the received upstream rules. Reads only.

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, lpm_trie::Key};
use filter_common::{
    abi::{
        AllowEntry, BlockEntry, Budget, Class, Config, CpuState, FlowCacheEntry, FlowEntry,
        FlowKey, MAX_UPSTREAM_RULES, SERVICE_KEY_BITS, ServiceEntry, ServiceKeyV4, ServiceKeyV6,
        SourceState, UpstreamRule, flags, map, service_key_v4, service_key_v6, summary,
        verified_key,
    },
    config::{source_key_v4, source_key_v6},
    limit::{admit, is_unlimited},
    parse::IPPROTO_UDP,
};
use ipnet::IpNet;

use super::{Dataplane, is_not_found, monotonic_coarse_ns};

/// What a list lookup found, as the program would get there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListLookup<V> {
    /// The list has no entry of the address's family (its HAS_* flag is clear).
    Empty,
    /// The summary says the address's block holds no entry, so the program skips the trie;
    /// `trie_holds` is what the trie would have answered (true would be a summary hole).
    SummarySkips { trie_holds: bool },
    /// The trie has no prefix covering the address.
    Miss,
    /// The longest prefix covering the address holds this value.
    Hit(V),
}

/// The maps' say on one source, read at `now_ns`.
#[derive(Clone, Debug)]
pub struct Probe {
    /// CONFIG as the program reads it.
    pub config: Config,
    /// CLOCK_MONOTONIC_COARSE ns when the maps were read.
    pub now_ns: u64,
    pub allow: ListLookup<AllowEntry>,
    pub block: ListLookup<BlockEntry>,
    /// The source's SOURCES entry, if it is tracked.
    pub source: Option<SourceState>,
    /// CPUs whose aggregate bucket of the asked class would refuse a packet now, and CPUs.
    pub aggregate_refusing: Option<(usize, usize)>,
    /// The received upstream rules in force, in order (empty while the stage is off).
    pub upstream: Vec<UpstreamRule>,
    /// BGP_PEERS holds the source: its BGP sessions pass before every stage.
    pub bgp_peer: bool,
}

impl Dataplane {
    /// Reads what the maps say of `addr` (and of `class`'s aggregate buckets, if known).
    pub fn probe(&self, addr: IpAddr, class: Option<Class>) -> Result<Probe> {
        let config: Config = Array::<&MapData, Config>::try_from(self.map(map::CONFIG)?)?
            .get(&0, 0)
            .context("failed to read CONFIG")?;
        let now_ns = monotonic_coarse_ns();
        let allow = self.list_lookup::<AllowEntry>(addr, &config, false)?;
        let block = self.list_lookup::<BlockEntry>(addr, &config, true)?;
        let key = match addr {
            IpAddr::V4(a) => source_key_v4(a.octets(), config.source_mask_v4),
            IpAddr::V6(a) => source_key_v6(&a.octets(), config.source_mask_v6),
        };
        let source = self.source_entry(key)?;
        let aggregate_refusing = match class {
            Some(c) => self.aggregate_refusing(&config, c, now_ns)?,
            None => None,
        };
        let mut upstream = Vec::new();
        if config.flags & flags::UPSTREAM_RULES != 0 {
            let table: Array<&MapData, UpstreamRule> =
                Array::try_from(self.map(map::UPSTREAM_RULES)?)?;
            for i in 0..MAX_UPSTREAM_RULES {
                let rule = table.get(&i, 0).context("failed to read UPSTREAM_RULES")?;
                if rule.family == 0 {
                    break;
                }
                upstream.push(rule);
            }
        }
        let bgp_peer = config.flags & flags::BGP_PEERS != 0 && {
            let peers: HashMap<&MapData, [u8; 16], u8> =
                HashMap::try_from(self.map(map::BGP_PEERS)?)?;
            let key = verified_key(&abi_address(addr), addr.is_ipv6());
            match peers.get(&key, 0) {
                Ok(_) => true,
                Err(e) if is_not_found(&e) => false,
                Err(e) => return Err(e).context("failed to read BGP_PEERS"),
            }
        };
        Ok(Probe {
            config,
            now_ns,
            allow,
            block,
            source,
            aggregate_refusing,
            upstream,
            bgp_peer,
        })
    }

    /// The allow- or blocklist's answer for `addr`: its HAS_* flag, its summary bit, then a
    /// longest-prefix lookup of the address in the trie, as the program does.
    fn list_lookup<V: aya::Pod>(
        &self,
        addr: IpAddr,
        config: &Config,
        block: bool,
    ) -> Result<ListLookup<V>> {
        let (has, bit) = match (addr, block) {
            (IpAddr::V4(a), false) => (flags::HAS_ALLOW_V4, summary::bit_v4(a.octets())),
            (IpAddr::V6(a), false) => (flags::HAS_ALLOW_V6, summary::bit_v6(&a.octets())),
            (IpAddr::V4(a), true) => (
                flags::HAS_BLOCK_V4,
                summary::BLOCK + summary::bit_v4(a.octets()),
            ),
            (IpAddr::V6(a), true) => (
                flags::HAS_BLOCK_V6,
                summary::BLOCK + summary::bit_v6(&a.octets()),
            ),
        };
        if config.flags & has == 0 {
            return Ok(ListLookup::Empty);
        }
        let found = self.trie_lookup::<V>(addr, block)?;
        let words: Array<&MapData, u64> = Array::try_from(self.map(map::LIST_SUMMARY)?)?;
        let word = words
            .get(&(bit >> 6), 0)
            .context("failed to read LIST_SUMMARY")?;
        if (word >> (bit & 63)) & 1 == 0 {
            return Ok(ListLookup::SummarySkips {
                trie_holds: found.is_some(),
            });
        }
        Ok(found.map_or(ListLookup::Miss, ListLookup::Hit))
    }

    fn trie_lookup<V: aya::Pod>(&self, addr: IpAddr, block: bool) -> Result<Option<V>> {
        let names = if block {
            [map::BLOCK_V4, map::BLOCK_V6]
        } else {
            [map::ALLOW_V4, map::ALLOW_V6]
        };
        let found = match addr {
            IpAddr::V4(a) => {
                let trie: LpmTrie<&MapData, [u8; 4], V> = LpmTrie::try_from(self.map(names[0])?)?;
                trie.get(&Key::new(32, a.octets()), 0)
            }
            IpAddr::V6(a) => {
                let trie: LpmTrie<&MapData, [u8; 16], V> = LpmTrie::try_from(self.map(names[1])?)?;
                trie.get(&Key::new(128, a.octets()), 0)
            }
        };
        match found {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context("failed to look the address up in a list"),
        }
    }

    /// How many CPUs' aggregate buckets of `class` would refuse a minimal frame at `now`;
    /// None while the class has no ceiling.
    fn aggregate_refusing(
        &self,
        config: &Config,
        class: Class,
        now: u64,
    ) -> Result<Option<(usize, usize)>> {
        let limit = &config.aggregate[class as usize];
        if is_unlimited(limit) {
            return Ok(None);
        }
        let state: PerCpuArray<&MapData, CpuState> =
            PerCpuArray::try_from(self.map(map::CPU_STATE)?)?;
        let values = state.get(&0, 0).context("failed to read CPU_STATE")?;
        let c = class as usize;
        let online = online(&values)?;
        let refusing = online
            .iter()
            .filter(|cpu| {
                let (mut p, mut b) = (cpu.agg_pkt_tat[c], cpu.agg_byte_tat[c]);
                !admit(&mut p, &mut b, limit, 64, now)
            })
            .count();
        Ok(Some((refusing, online.len())))
    }

    /// The budget slot of the service strict finds for `proto`/`port` at `dst`, as the
    /// program looks it up (the longest prefix); with no `dst`, only a service bound to every
    /// address is found.
    pub fn service_slot(
        &self,
        v6: bool,
        proto: u8,
        port: u16,
        dst: Option<IpAddr>,
    ) -> Result<Option<u32>> {
        let found = match dst {
            Some(IpAddr::V6(a)) => self.services_v6()?.get(
                &Key::new(
                    SERVICE_KEY_BITS + 128,
                    service_key_v6(proto, port, &a.octets()),
                ),
                0,
            ),
            None if v6 => self.services_v6()?.get(
                &Key::new(SERVICE_KEY_BITS, service_key_v6(proto, port, &[0; 16])),
                0,
            ),
            Some(IpAddr::V4(a)) => self.services_v4()?.get(
                &Key::new(
                    SERVICE_KEY_BITS + 32,
                    service_key_v4(proto, port, a.octets()),
                ),
                0,
            ),
            None => self.services_v4()?.get(
                &Key::new(SERVICE_KEY_BITS, service_key_v4(proto, port, [0; 4])),
                0,
            ),
        };
        match found {
            Ok(e) => Ok(Some(e.slot)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context("failed to read the services"),
        }
    }

    /// The destination prefixes that services for `proto`/`port` are bound to (services
    /// bound to every address are not listed).
    pub fn service_prefixes(&self, v6: bool, proto: u8, port: u16) -> Result<Vec<IpNet>> {
        let head = |k: &[u8]| k[0] == proto && k[2..4] == port.to_be_bytes();
        let mut out = Vec::new();
        if v6 {
            for key in self.services_v6()?.keys() {
                let key = key.context("failed to read the services")?;
                let (bits, data) = (key.prefix_len(), key.data());
                if bits > SERVICE_KEY_BITS && head(&data) {
                    let addr: [u8; 16] = data[4..20].try_into().expect("16 bytes");
                    out.extend(IpNet::new(addr.into(), (bits - SERVICE_KEY_BITS) as u8));
                }
            }
        } else {
            for key in self.services_v4()?.keys() {
                let key = key.context("failed to read the services")?;
                let (bits, data) = (key.prefix_len(), key.data());
                if bits > SERVICE_KEY_BITS && head(&data) {
                    let addr: [u8; 4] = data[4..8].try_into().expect("4 bytes");
                    out.extend(IpNet::new(addr.into(), (bits - SERVICE_KEY_BITS) as u8));
                }
            }
        }
        Ok(out)
    }

    fn services_v4(&self) -> Result<LpmTrie<&MapData, ServiceKeyV4, ServiceEntry>> {
        Ok(LpmTrie::try_from(self.map(map::SERVICES_V4)?)?)
    }

    fn services_v6(&self) -> Result<LpmTrie<&MapData, ServiceKeyV6, ServiceEntry>> {
        Ok(LpmTrie::try_from(self.map(map::SERVICES_V6)?)?)
    }

    /// Whether FLOWS holds a live flow of the host for a packet from `src`:`sport` to
    /// `dst`:`dport`, as the program's strict stage looks it up (UDP flows are kept per
    /// remote address, any port).
    pub fn flow_known(
        &self,
        config: &Config,
        (src, sport): (IpAddr, u16),
        (dst, dport): (IpAddr, u16),
        proto: u8,
    ) -> Result<bool> {
        let key = FlowKey {
            remote: abi_address(src),
            local: abi_address(dst),
            remote_port: if proto == IPPROTO_UDP { 0 } else { sport },
            local_port: dport,
            proto,
            family: if src.is_ipv6() { 6 } else { 4 },
            _pad: [0; 2],
        };
        // The program stamps flows with its own clock, which may run a jiffy ahead of this
        // one: a flow stamped "in the future" was just seen, never long ago.
        let fresh =
            |seen_ns: u64| monotonic_coarse_ns().saturating_sub(seen_ns) < config.flow_timeout_ns;
        // FLOW_CACHE first, then FLOWS, as the program looks.
        let cache: Array<&MapData, FlowCacheEntry> = Array::try_from(self.map(map::FLOW_CACHE)?)?;
        let slot = cache
            .get(&key.cache_slot(), 0)
            .context("failed to read FLOW_CACHE")?;
        if slot.key.same(&key) && fresh(slot.seen_ns) {
            return Ok(true);
        }
        let flows: HashMap<&MapData, FlowKey, FlowEntry> =
            HashMap::try_from(self.map(map::FLOWS)?)?;
        match flows.get(&key, 0) {
            Ok(f) => Ok(fresh(f.seen_ns)),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e).context("failed to read FLOWS"),
        }
    }

    /// How many CPUs' budgets of service `slot` would refuse an unknown source's packet now,
    /// of how many.
    pub fn budget_refusing(&self, config: &Config, slot: u32) -> Result<(usize, usize)> {
        let budgets: PerCpuArray<&MapData, Budget> =
            PerCpuArray::try_from(self.map(map::SVC_BUDGET)?)?;
        let values = budgets.get(&slot, 0).context("failed to read SVC_BUDGET")?;
        let now = monotonic_coarse_ns();
        let online = online(&values)?;
        let refusing = online
            .iter()
            .filter(|b| {
                let (mut p, mut y) = (b.pkt_tat, b.byte_tat);
                !admit(&mut p, &mut y, &config.unknown_budget, 0, now)
            })
            .count();
        Ok((refusing, online.len()))
    }

    /// Whether UDP source port `port` is in the amplification signature's bitmap.
    pub fn amp_port(&self, port: u16) -> Result<bool> {
        let words: Array<&MapData, u64> = Array::try_from(self.map(map::AMP_PORTS)?)?;
        let word = words
            .get(&u32::from(port >> 6), 0)
            .context("failed to read AMP_PORTS")?;
        Ok((word >> (port & 63)) & 1 != 0)
    }
}

/// The values of the CPUs that are online: a per-CPU map holds one for every possible CPU,
/// and an offline CPU's idle bucket would always have room.
fn online<T: Copy>(values: &[T]) -> Result<Vec<T>> {
    let cpus = aya::util::online_cpus().map_err(|(what, e)| anyhow::anyhow!("{what}: {e}"))?;
    Ok(cpus
        .iter()
        .filter_map(|c| values.get(*c as usize).copied())
        .collect())
}

/// An address as the program's structures hold it: IPv4 in the first 4 of 16 bytes.
pub fn abi_address(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}
