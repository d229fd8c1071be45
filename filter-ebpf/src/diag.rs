//! The programs' diagnostics: rare failures (a map update refused, a helper's unexpected
//! error) told to the daemon through aya-log, which forwards them to its log with the
//! interface named. Never on the per-packet path: a line is only written on a failure
//! branch, and since a flood could make a failure repeat packet after packet, each kind goes
//! out at most once a second per CPU, the line counting the ones held back since the last.
//!
//! Only the egress and SYN-cookie programs log. aya-log's record writer is long (one copy per
//! record size it may take, a few hundred bytes of stack) and the verifier walks a function
//! once per state its callers reach it with: the XDP program's stages are reached with many
//! states, and the program already verifies close to the kernel's limits (a million
//! instructions, 512 bytes of stack for the deepest chain of calls), so it cannot carry one.
//! Each logging site has a function of its own (a BPF-to-BPF call): the record is built in a
//! stack frame apart from the caller's.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use aya_log_ebpf::warn;

use crate::maps::LOG_LIMIT;

/// The kinds of rare events, each rate-limited on its own (an index into LOG_LIMIT).
pub mod kind {
    pub const FLOW_INSERT: u32 = 0;
    pub const COOKIE: u32 = 1;
    pub const COUNT: u32 = 2;
}

/// When a kind last went out on this CPU, and how many were held back since.
#[repr(C)]
pub struct LogLimit {
    pub last_ns: u64,
    pub held: u64,
}

const SECOND_NS: u64 = 1_000_000_000;

/// `Some(held back since the last line)` if a line of `kind` may go out now on this CPU.
#[inline(always)]
fn due(kind: u32) -> Option<u64> {
    let limit = LOG_LIMIT.get_ptr_mut(kind)?;
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let limit = unsafe { &mut *limit };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if limit.last_ns != 0 && now.wrapping_sub(limit.last_ns) < SECOND_NS {
        limit.held += 1;
        return None;
    }
    let held = limit.held;
    limit.last_ns = now;
    limit.held = 0;
    Some(held)
}

/// The egress program could not record a flow in FLOWS (an LRU insert finds no entry to reuse
/// only under contention between CPUs).
#[inline(never)]
pub fn flow_insert_failed(err: i64) {
    if let Some(held) = due(kind::FLOW_INSERT) {
        warn!(
            &(),
            "FLOWS insert failed (error {}): the flow stays unrecorded; {} more since the last line",
            err,
            held
        );
    }
}

/// bpf_tcp_gen_syncookie failed for another reason than "no cookie now" (ENOENT): the kernel
/// found the SYN unfit for a cookie.
#[inline(never)]
pub fn cookie_failed(err: i64) {
    if let Some(held) = due(kind::COOKIE) {
        warn!(
            &(),
            "bpf_tcp_gen_syncookie failed (error {}): the SYN goes on to the kernel; {} more since the last line",
            err,
            held
        );
    }
}
