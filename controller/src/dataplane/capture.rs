//! `levee capture` in the program: the filter (CAPTURE_FILTER), the flag that turns copying
//! on, the ring of copies and the per-CPU budget's counts.

use anyhow::Result;
use aya::maps::{Array, MapData, PerCpuArray, PerCpuValues, RingBuf};
use filter_common::abi::{CaptureBudget, CaptureFilter, flags, map};

use super::Dataplane;

/// What the budget kept from the capture so far, all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureSkipped {
    /// Over the per-second budget.
    pub budget: u64,
    /// Lost to a full ring.
    pub ring_full: u64,
}

impl Dataplane {
    /// Writes the filter, starts every CPU's budget afresh (an earlier capture's second may
    /// not be over), then turns copying on.
    pub fn start_capture(&mut self, filter: &CaptureFilter) -> Result<()> {
        let mut budgets: PerCpuArray<&mut MapData, CaptureBudget> =
            PerCpuArray::try_from(self.map_mut(map::CAPTURE_BUDGET)?)?;
        let fresh: Vec<CaptureBudget> = budgets
            .get(&0, 0)?
            .iter()
            .map(|b| CaptureBudget {
                since: 0,
                used: 0,
                ..*b
            })
            .collect();
        budgets.set(0, PerCpuValues::try_from(fresh)?, 0)?;
        let mut array: Array<&mut MapData, CaptureFilter> =
            Array::try_from(self.map_mut(map::CAPTURE_FILTER)?)?;
        array.set(0, *filter, 0)?;
        self.config.set_flag(flags::CAPTURE, true);
        self.write_config()
    }

    /// Turns copying off.
    pub fn stop_capture(&mut self) -> Result<()> {
        self.config.set_flag(flags::CAPTURE, false);
        self.write_config()
    }

    /// The ring of copies; it can be taken once.
    pub fn take_capture(&mut self) -> Result<RingBuf<MapData>> {
        self.take_ring(map::CAPTURE)
    }

    /// Packets the capture filter matched but the program did not copy, since it was loaded.
    pub fn capture_skipped(&self) -> Result<CaptureSkipped> {
        let array: PerCpuArray<&MapData, CaptureBudget> =
            PerCpuArray::try_from(self.map(map::CAPTURE_BUDGET)?)?;
        let per_cpu = array.get(&0, 0)?;
        Ok(CaptureSkipped {
            budget: per_cpu.iter().map(|b| b.skipped).sum(),
            ring_full: per_cpu.iter().map(|b| b.ring_full).sum(),
        })
    }
}
