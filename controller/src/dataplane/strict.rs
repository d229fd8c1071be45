//! The maps and programs of strict mode: the services tries, the egress program that records
//! flows (and the verified sources detection reads), the program's trigger, and test entry
//! points for both programs.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    maps::{
        HashMap, MapData, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use filter_common::abi::{
    EGRESS_PROGRAM, Familiar, PROGRAM, SERVICE_BUDGETS, SERVICE_KEY_BITS, ServiceEntry,
    ServiceKeyV4, ServiceKeyV6, TriggerState, map, service_key_v4, service_key_v6, verified_key,
};
use ipnet::IpNet;

use super::{Dataplane, abi_address, is_not_found, monotonic_coarse_ns};

/// One served (protocol, port, destination prefix): what the SERVICES tries hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRule {
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    pub port: u16,
    /// The destinations it serves; 0.0.0.0/0 or ::/0 for any.
    pub dst: IpNet,
}

/// Where the program's trigger holds strict ([`Dataplane::trigger_held`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerHeld {
    pub cpus: usize,
    pub of: usize,
    pub udp: bool,
}

impl Dataplane {
    /// The program's trigger as each CPU holds it (strict engaged by the program itself).
    pub fn triggers(&self) -> Result<Vec<TriggerState>> {
        let array: PerCpuArray<&MapData, TriggerState> =
            PerCpuArray::try_from(self.map(map::TRIGGER)?)?;
        Ok(array.get(&0, 0)?.iter().copied().collect())
    }

    /// Where the program's trigger holds strict now: on how many CPUs of how many, and
    /// whether for UDP (which engages the UDP budget) on some.
    pub fn trigger_held(&self, cfg: &filter_common::abi::Config) -> Result<TriggerHeld> {
        let cpus = self.triggers()?;
        let now = monotonic_coarse_ns();
        let on = cfg.flags & filter_common::abi::flags::TRIGGER != 0;
        let udp = filter_common::abi::Class::Udp as usize;
        Ok(TriggerHeld {
            cpus: cpus.iter().filter(|t| on && t.held_until > now).count(),
            of: cpus.len(),
            udp: cpus.iter().any(|t| on && t.engaged_until[udp] > now),
        })
    }

    /// The sources FAMILIAR holds, familiar yet or not.
    pub fn familiar_entries(&self) -> Result<Vec<([u8; 16], Familiar)>> {
        let table: HashMap<&MapData, [u8; 16], Familiar> =
            HashMap::try_from(self.map(map::FAMILIAR)?)?;
        Ok(table.iter().filter_map(|e| e.ok()).collect())
    }

    /// How long ago `addr` last sent within its limits while calm, if it is familiar (seen
    /// in two moments a second apart, the last within `ttl_ns`).
    pub fn familiar_ago(&self, addr: IpAddr, ttl_ns: u64) -> Result<Option<Duration>> {
        let table: HashMap<&MapData, [u8; 16], Familiar> =
            HashMap::try_from(self.map(map::FAMILIAR)?)?;
        let now = monotonic_coarse_ns();
        match table.get(&verified_key(&abi_address(addr), addr.is_ipv6()), 0) {
            // The program's clock may run a jiffy ahead of this one (as for flows).
            Ok(f) if f.is_familiar(now.max(f.last_ns), ttl_ns) => {
                Ok(Some(Duration::from_nanos(now.saturating_sub(f.last_ns))))
            }
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context("cannot read the familiar sources"),
        }
    }

    /// Writes sources back into FAMILIAR (a start after a clean stop), times in the
    /// program's clock.
    pub fn restore_familiar(&mut self, entries: &[([u8; 16], Familiar)]) -> Result<()> {
        let mut table: HashMap<&mut MapData, [u8; 16], Familiar> =
            HashMap::try_from(self.map_mut(map::FAMILIAR)?)?;
        for (key, seen) in entries {
            table
                .insert(key, seen, 0)
                .context("cannot restore the familiar sources")?;
        }
        Ok(())
    }

    /// How long ago the host last held a TCP connection with `addr` past its handshake (as
    /// the egress program records it in VERIFIED), if it ever did while the entry lasted.
    pub fn verified_ago(&self, addr: IpAddr) -> Result<Option<std::time::Duration>> {
        let table: HashMap<&MapData, [u8; 16], u64> = HashMap::try_from(self.map(map::VERIFIED)?)?;
        match table.get(&verified_key(&abi_address(addr), addr.is_ipv6()), 0) {
            Ok(seen) => Ok(Some(std::time::Duration::from_nanos(
                monotonic_coarse_ns().saturating_sub(seen),
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).context("failed to read VERIFIED"),
        }
    }

    /// Makes the SERVICES tries hold exactly `rules`: new ones are added before stale ones
    /// go, so a service present in both the old and new set never has a gap. Each rule gets
    /// its own budget slot (shared beyond [`SERVICE_BUDGETS`] rules).
    pub fn set_services(&mut self, rules: &[ServiceRule]) -> Result<()> {
        let mut want_v4: BTreeMap<(u32, ServiceKeyV4), ServiceEntry> = BTreeMap::new();
        let mut want_v6: BTreeMap<(u32, ServiceKeyV6), ServiceEntry> = BTreeMap::new();
        for (i, r) in rules.iter().enumerate() {
            let entry = ServiceEntry {
                slot: i as u32 % SERVICE_BUDGETS,
            };
            let bits = SERVICE_KEY_BITS + u32::from(r.dst.prefix_len());
            match r.dst {
                IpNet::V4(n) => {
                    let key = service_key_v4(r.proto, r.port, n.network().octets());
                    want_v4.insert((bits, key), entry);
                }
                IpNet::V6(n) => {
                    let key = service_key_v6(r.proto, r.port, &n.network().octets());
                    want_v6.insert((bits, key), entry);
                }
            }
        }
        sync_trie::<ServiceKeyV4>(self.map_mut(map::SERVICES_V4)?, &want_v4)
            .context("failed to write SERVICES_V4")?;
        sync_trie::<ServiceKeyV6>(self.map_mut(map::SERVICES_V6)?, &want_v6)
            .context("failed to write SERVICES_V6")?;
        Ok(())
    }

    /// The egress program.
    pub fn egress_program(&self) -> Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program(EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {EGRESS_PROGRAM} missing"))?
            .try_into()?)
    }

    pub(crate) fn egress_program_mut(&mut self) -> Result<&mut SchedClassifier> {
        Ok(self
            .ebpf
            .program_mut(EGRESS_PROGRAM)
            .ok_or_else(|| anyhow!("program {EGRESS_PROGRAM} missing"))?
            .try_into()?)
    }

    /// Runs the egress program on one outgoing frame (BPF_PROG_TEST_RUN); returns its
    /// return value.
    pub fn test_run_egress(&self, frame: &[u8]) -> Result<i32> {
        let r = self.egress_program()?.test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        })?;
        Ok(r.return_value as i32)
    }

    /// Runs the XDP program on one frame and returns the action and the frame as the program
    /// left it (a SYN answered with a cookie comes back as the SYN-ACK).
    pub fn test_run_frame(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| anyhow!("program {PROGRAM} missing"))?
            .try_into()?;
        let mut out = vec![0u8; frame.len() + 256];
        let r = program.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }
}

/// Writes `want` into an LPM trie and removes every other key.
fn sync_trie<K: aya::Pod + Ord>(
    m: &mut aya::maps::Map,
    want: &BTreeMap<(u32, K), ServiceEntry>,
) -> Result<()> {
    let mut trie: LpmTrie<&mut MapData, K, ServiceEntry> = LpmTrie::try_from(m)?;
    // Stale entries leave first: a full table still takes the new ones.
    let stale: Vec<Key<K>> = trie
        .keys()
        .filter_map(|k| k.ok())
        .filter(|k| !want.contains_key(&(k.prefix_len(), k.data())))
        .collect();
    for k in stale {
        match trie.remove(&k) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for ((bits, key), entry) in want {
        trie.insert(&Key::new(*bits, *key), *entry, 0)?;
    }
    Ok(())
}
