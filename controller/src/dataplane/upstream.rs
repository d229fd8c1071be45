//! The FlowSpec rules received from BGP neighbours, as the program enforces them
//! (UPSTREAM_RULES; see `filter_common::abi::UpstreamRule`).

use anyhow::{Result, bail};
use aya::maps::{Array, MapData};
use filter_common::abi::{MAX_UPSTREAM_RULES, UpstreamRule, flags, map};

use super::Dataplane;

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
            self.config.set_flag(flags::UPSTREAM_RULES, true);
            self.write_config()?;
        }
        Ok(())
    }
}
