//! The flood signatures the program enforces (SIGNATURES; see `filter_common::signature`),
//! how many packets each slot dropped, and the sampling countdown their miner depends on.

use anyhow::{Result, bail};
use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues};
use filter_common::{
    abi::{flags, map},
    parse::{IPPROTO_TCP, IPPROTO_UDP},
    signature::{FloodSignature, SIGNATURE_SLOTS},
};

use super::Dataplane;

impl Dataplane {
    /// Replaces the table with `sigs`, in slot order. The stage is off while the table is
    /// rewritten, so the program never reads a signature half written; on failure the table
    /// holds `before` again, if that can be written.
    pub fn set_signatures(
        &mut self,
        sigs: &[FloodSignature],
        before: &[FloodSignature],
    ) -> Result<()> {
        let written = self.write_signatures(sigs);
        if written.is_err() && self.write_signatures(before).is_err() {
            return written.map_err(|e| {
                e.context(
                    "and the earlier flood signatures could not be restored: none are enforced",
                )
            });
        }
        written
    }

    fn write_signatures(&mut self, sigs: &[FloodSignature]) -> Result<()> {
        if sigs.len() > SIGNATURE_SLOTS as usize {
            bail!(
                "{} flood signatures, the program holds {SIGNATURE_SLOTS}",
                sigs.len()
            );
        }
        if self.config.flags & (flags::SIGNATURES | flags::SIGNATURES_SYN) != 0 {
            self.config.set_flag(flags::SIGNATURES, false);
            self.config.set_flag(flags::SIGNATURES_SYN, false);
            self.write_config()?;
        }
        let mut table: Array<&mut MapData, FloodSignature> =
            Array::try_from(self.map_mut(map::SIGNATURES)?)?;
        for i in 0..SIGNATURE_SLOTS {
            let sig = sigs.get(i as usize).copied().unwrap_or_default();
            table.set(i, sig, 0)?;
        }
        let udp = sigs.iter().any(|s| s.facts.proto == IPPROTO_UDP);
        let tcp = sigs.iter().any(|s| s.facts.proto == IPPROTO_TCP);
        if udp || tcp {
            self.config.set_flag(flags::SIGNATURES, udp);
            self.config.set_flag(flags::SIGNATURES_SYN, tcp);
            self.write_config()?;
        }
        Ok(())
    }

    /// Samples the next packet of every CPU: after sampling got denser, a countdown drawn
    /// for the sparser rate would hold the first sample back for seconds.
    pub fn sample_sooner(&mut self) -> Result<()> {
        let mut countdown: PerCpuArray<&mut MapData, u32> =
            PerCpuArray::try_from(self.map_mut(map::SAMPLE_COUNTDOWN)?)?;
        let cpus = countdown.get(&0, 0)?.len();
        countdown.set(0, PerCpuValues::try_from(vec![1u32; cpus])?, 0)?;
        Ok(())
    }

    /// Packets each slot dropped since the program was loaded, all CPUs.
    pub fn signature_hits(&self) -> Result<Vec<u64>> {
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(map::SIGNATURE_HITS)?)?;
        (0..SIGNATURE_SLOTS)
            .map(|i| Ok(array.get(&i, 0)?.iter().sum()))
            .collect()
    }

    /// The signature table as the program holds it (empty slots left out).
    pub fn signatures(&self) -> Result<Vec<FloodSignature>> {
        if self.config.flags & (flags::SIGNATURES | flags::SIGNATURES_SYN) == 0 {
            return Ok(Vec::new());
        }
        let table: Array<&MapData, FloodSignature> = Array::try_from(self.map(map::SIGNATURES)?)?;
        let mut out = Vec::new();
        for i in 0..SIGNATURE_SLOTS {
            let sig = table.get(&i, 0)?;
            if sig.fields == 0 {
                break;
            }
            out.push(sig);
        }
        Ok(out)
    }
}
