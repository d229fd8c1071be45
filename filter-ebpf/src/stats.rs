//! Per-CPU counters by (action, reason, class): no atomics, the controller sums the CPUs.

use filter_common::abi::counter_index;

use crate::{Verdict, maps::COUNTERS};

#[inline(always)]
pub fn count(v: &Verdict, len: u64) {
    if let Some(c) = COUNTERS.get_ptr_mut(counter_index(v.action, v.reason, v.class)) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}
