//! Reading what the program counted: per-CPU counters summed, and the per-source table.

use std::net::IpAddr;

use anyhow::Result;
use aya::maps::{HashMap, MapData, PerCpuArray};
use filter_common::{
    abi::{Action, COUNTER_ENTRIES, Class, Counter, Reason, SourceState, counter_index, map},
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
        let config = self.config();
        let key = match addr {
            IpAddr::V4(a) => source_key_v4(a.octets(), config.source_mask_v4),
            IpAddr::V6(a) => source_key_v6(&a.octets(), config.source_mask_v6),
        };
        let sources: HashMap<&MapData, u64, SourceState> =
            HashMap::try_from(self.map(map::SOURCES)?)?;
        match sources.get(&key, 0) {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Entries the program has added to the per-source table, all CPUs. The table only
    /// loses entries to eviction when full, so min(this, capacity) is its size, kept rather
    /// than counted (near full, the LRU's per-CPU free lists may make it a few hundred high).
    pub fn sources_added(&self) -> Result<u64> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(map::SOURCES_ADDED)?)?;
        Ok(array.get(&0, 0)?.iter().sum())
    }

    /// Sources the gate let through that stayed untracked because their CPU's bucket of new
    /// entries was empty, all CPUs.
    pub fn sources_refused(&self) -> Result<u64> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(map::SOURCES_ADDED)?)?;
        Ok(array.get(&1, 0)?.iter().sum())
    }

    /// Number of tracked sources. It walks the table, one syscall per entry: for tests and
    /// benchmarks, never for the daemon's loop.
    pub fn tracked_sources(&self) -> Result<usize> {
        let sources: HashMap<&MapData, u64, SourceState> =
            HashMap::try_from(self.map(map::SOURCES)?)?;
        Ok(sources.keys().count())
    }
}
