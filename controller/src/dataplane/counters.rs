//! Reading what the program counted: per-CPU counters summed, and the per-source table.

use std::net::IpAddr;

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use filter_common::{
    abi::{
        Action, COUNTER_ENTRIES, Class, Counter, Reason, SOURCE_SLOT_COUNT, SourceKey, SourceSlot,
        SourceState, counter_index, map, source_slot,
    },
    config::{source_key_v4, source_key_v6},
};

use super::{Dataplane, is_not_found};

/// Counters summed over all CPUs, indexed like the COUNTERS map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    slots: Vec<Counter>,
    /// Packets per CPU, all slots: what sizes the sketch gate (see [`super::gate`]).
    pub per_cpu_packets: Vec<u64>,
}

impl Counters {
    pub fn get(&self, action: Action, reason: Reason, class: Class) -> Counter {
        self.slots[counter_index(action, reason, class) as usize]
    }

    /// Packets with this action and reason, all classes.
    pub fn packets(&self, action: Action, reason: Reason) -> u64 {
        Class::ALL
            .iter()
            .map(|c| self.get(action, reason, *c).packets)
            .sum()
    }

    /// Packets with this action, all reasons and classes.
    pub fn action_packets(&self, action: Action) -> u64 {
        Reason::ALL.iter().map(|r| self.packets(action, *r)).sum()
    }

    /// Every non-zero slot as (action, reason, class, counter).
    pub fn non_zero(&self) -> Vec<(Action, Reason, Class, Counter)> {
        let mut out = Vec::new();
        for a in Action::ALL {
            for r in Reason::ALL {
                for c in Class::ALL {
                    let v = self.get(a, r, c);
                    if v.packets != 0 {
                        out.push((a, r, c, v));
                    }
                }
            }
        }
        out
    }
}

impl Dataplane {
    /// Counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let array: PerCpuArray<&MapData, Counter> =
            PerCpuArray::try_from(self.map(map::COUNTERS)?)?;
        let mut slots = Vec::with_capacity(COUNTER_ENTRIES as usize);
        let mut per_cpu_packets = Vec::new();
        for values in array.iter() {
            let values = values?;
            per_cpu_packets.resize(values.len(), 0);
            let mut sum = Counter::default();
            for (cpu, v) in values.iter().enumerate() {
                sum.packets += v.packets;
                sum.bytes += v.bytes;
                per_cpu_packets[cpu] += v.packets;
            }
            slots.push(sum);
        }
        Ok(Counters {
            slots,
            per_cpu_packets,
        })
    }

    /// The exact state of a tracked source, if it has an entry.
    pub fn source(&self, addr: IpAddr) -> Result<Option<SourceState>> {
        self.source_entry(self.source_key(addr))
    }

    /// The key the program gives `addr`'s state, under the loaded masks.
    fn source_key(&self, addr: IpAddr) -> SourceKey {
        let config = self.config();
        match addr {
            IpAddr::V4(a) => source_key_v4(a.octets(), config.source_mask_v4),
            IpAddr::V6(a) => source_key_v6(&a.octets(), config.source_mask_v6),
        }
    }

    /// Whether a tracked source's state lives in its slot of SOURCE_SLOTS (else in SOURCES,
    /// or nowhere): for tests and benchmarks.
    pub fn source_in_slot(&self, addr: IpAddr) -> Result<bool> {
        let key = self.source_key(addr);
        let slots: Array<&MapData, SourceSlot> = Array::try_from(self.map(map::SOURCE_SLOTS)?)?;
        Ok(slots.get(&source_slot(key), 0)?.holds(key))
    }

    /// The state under a SOURCES key, where the program looks: its slot, then SOURCES.
    pub(super) fn source_entry(&self, key: SourceKey) -> Result<Option<SourceState>> {
        let slots: Array<&MapData, SourceSlot> = Array::try_from(self.map(map::SOURCE_SLOTS)?)?;
        let slot = slots
            .get(&source_slot(key), 0)
            .context("failed to read SOURCE_SLOTS")?;
        if slot.holds(key) {
            return Ok(Some(slot.state));
        }
        let sources: HashMap<&MapData, u64, SourceState> =
            HashMap::try_from(self.map(map::SOURCES)?)?;
        match sources.get(&key, 0) {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context("failed to read SOURCES"),
        }
    }

    /// Sources the program has given a slot or a SOURCES entry, all CPUs.
    pub fn sources_added(&self) -> Result<u64> {
        self.per_cpu_sum(map::SOURCES_ADDED, 0)
    }

    /// Sources with a state, kept rather than counted: the slots held (a slot is never
    /// freed, only given on to a new source when its own is at rest) and SOURCES' entries,
    /// which only leave by eviction when full, so min(entries added, `max_tracked`) (near
    /// full, the LRU's per-CPU free lists may make it a few hundred high).
    pub fn tracked_sources_kept(&self, max_tracked: u32) -> Result<u64> {
        let added = self.per_cpu_sum(map::SOURCES_ADDED, 0)?;
        let (given, free) = (
            self.per_cpu_sum(map::SLOTS_GIVEN, 0)?,
            self.per_cpu_sum(map::SLOTS_GIVEN, 1)?,
        );
        let entries = added.saturating_sub(given).min(u64::from(max_tracked));
        Ok(entries + free.min(u64::from(SOURCE_SLOT_COUNT)))
    }

    fn per_cpu_sum(&self, name: &str, index: u32) -> Result<u64> {
        let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(self.map(name)?)?;
        Ok(array.get(&index, 0)?.iter().sum())
    }

    /// Sources the gate let through that stayed untracked because their CPU's bucket of new
    /// entries was empty, all CPUs.
    pub fn sources_refused(&self) -> Result<u64> {
        self.per_cpu_sum(map::SOURCES_ADDED, 1)
    }

    /// Entries the program added to FAMILIAR (sources and their networks), all CPUs.
    pub fn familiar_added(&self) -> Result<u64> {
        self.per_cpu_sum(map::FAMILIAR_ADDED, 0)
    }

    /// Sightings of new sources the program left unrecorded as familiar because their CPU's
    /// bucket of new FAMILIAR entries was empty, all CPUs.
    pub fn familiar_unrecorded(&self) -> Result<u64> {
        self.per_cpu_sum(map::FAMILIAR_ADDED, 1)
    }

    /// Number of tracked sources, in their slots and in SOURCES. It walks both tables, one
    /// syscall per entry: for tests and benchmarks, never for the daemon's loop.
    pub fn tracked_sources(&self) -> Result<usize> {
        let slots: Array<&MapData, SourceSlot> = Array::try_from(self.map(map::SOURCE_SLOTS)?)?;
        let mut held = 0;
        for slot in slots.iter() {
            if slot?.key != 0 {
                held += 1;
            }
        }
        let sources: HashMap<&MapData, u64, SourceState> =
            HashMap::try_from(self.map(map::SOURCES)?)?;
        Ok(held + sources.keys().count())
    }
}
