//! The FlowSpec rules received from BGP neighbours, as the program enforces them
//! (UPSTREAM_RULES; see `filter_common::abi::UpstreamRule`), their lease (UPSTREAM_LEASE),
//! and the BGP sessions no stage may cut (BGP_PEERS).

use std::net::IpAddr;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, MapData};
use filter_common::abi::{
    MAX_BGP_PEERS, MAX_UPSTREAM_RULES, UPSTREAM_LEASE_NS, UpstreamRule, flags, map, verified_key,
};

use super::{Dataplane, monotonic_coarse_ns};

impl Dataplane {
    /// Replaces the table with `rules`, in order (the first match decides). The stage is off
    /// while the table is rewritten, so the program never reads a rule half written; the gap
    /// lasts as long as a few map writes. On failure the table holds `before` again, if that
    /// can be written.
    pub fn set_upstream_rules(
        &mut self,
        rules: &[UpstreamRule],
        before: &[UpstreamRule],
    ) -> Result<()> {
        let written = self.write_upstream_rules(rules);
        if written.is_err() && self.write_upstream_rules(before).is_err() {
            return written.map_err(|e| {
                e.context("and the earlier upstream rules could not be restored: none are enforced")
            });
        }
        written
    }

    fn write_upstream_rules(&mut self, rules: &[UpstreamRule]) -> Result<()> {
        if rules.len() > MAX_UPSTREAM_RULES as usize {
            bail!(
                "{} upstream rules, the program holds {MAX_UPSTREAM_RULES}",
                rules.len()
            );
        }
        if self.config.flags & flags::UPSTREAM_RULES != 0 {
            self.config.set_flag(flags::UPSTREAM_RULES, false);
            self.write_config()?;
        }
        let mut table: Array<&mut MapData, UpstreamRule> =
            Array::try_from(self.map_mut(map::UPSTREAM_RULES)?)?;
        for (i, rule) in rules.iter().enumerate() {
            table.set(i as u32, *rule, 0)?;
        }
        if rules.len() < MAX_UPSTREAM_RULES as usize {
            table.set(rules.len() as u32, UpstreamRule::default(), 0)?;
        }
        if !rules.is_empty() {
            // In force from the first packet, until the controller's next renewal.
            self.renew_upstream_lease()?;
            self.config.set_flag(flags::UPSTREAM_RULES, true);
            self.write_config()?;
        }
        Ok(())
    }

    /// Renews the received rules' lease: they hold for [`UPSTREAM_LEASE_NS`] from now. The
    /// controller renews it every tick, so a crashed daemon's rules stop by themselves.
    pub fn renew_upstream_lease(&mut self) -> Result<()> {
        self.set_upstream_lease(monotonic_coarse_ns() + UPSTREAM_LEASE_NS)
    }

    /// Sets the received rules' lease to end at `until_ns` (CLOCK_MONOTONIC_COARSE, as the
    /// program reads it).
    pub fn set_upstream_lease(&mut self, until_ns: u64) -> Result<()> {
        let mut lease: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map::UPSTREAM_LEASE)?)?;
        lease
            .set(0, until_ns, 0)
            .context("failed to renew the received rules' lease")
    }

    /// Exempts the BGP sessions with `peers` (TCP to or from port 179, from a peer's address)
    /// from every stage.
    pub fn set_bgp_peers(&mut self, peers: &[IpAddr]) -> Result<()> {
        if peers.len() > MAX_BGP_PEERS as usize {
            bail!(
                "{} BGP neighbours, the program holds {MAX_BGP_PEERS}",
                peers.len()
            );
        }
        let mut table: HashMap<&mut MapData, [u8; 16], u8> =
            HashMap::try_from(self.map_mut(map::BGP_PEERS)?)?;
        for peer in peers {
            let key = match peer {
                IpAddr::V4(a) => {
                    let mut k = [0u8; 16];
                    k[..4].copy_from_slice(&a.octets());
                    verified_key(&k, false)
                }
                IpAddr::V6(a) => a.octets(),
            };
            table.insert(key, 1, 0)?;
        }
        self.config.set_flag(flags::BGP_PEERS, !peers.is_empty());
        self.write_config()
    }
}
