//! `levee capture`: copies the first bytes of the packets the operator asked for to the
//! CAPTURE ring. Off until asked (a CONFIG flag); then budgeted per CPU and second, so a flood
//! cannot turn capture into a second attack on the host, and on a ring of its own, so copies
//! never crowd out the offences that drive blocking.

use aya_ebpf::{
    bindings::xdp_md,
    cty::c_void,
    helpers::{bpf_ktime_get_ns, bpf_xdp_load_bytes},
};
use filter_common::{
    abi::{CAPTURE_SNAPLEN_MAX, CaptureRecord},
    parse::IpPacket,
};

use crate::{
    Verdict,
    maps::{CAPTURE, CAPTURE_BUDGET, CAPTURE_FILTER},
    received::in_prefix,
};

const SECOND_NS: u64 = 1_000_000_000;

/// The verdict in one register: action, reason and class a byte each.
#[inline(always)]
pub fn pack(v: &Verdict) -> u64 {
    v.action as u64 | (v.reason as u64) << 8 | (v.class as u64) << 16
}

/// Copies the packet if the filter matches and this CPU's budget allows. `pkt` is null for a
/// frame that is not a well-formed IP packet (it matches no source filter). A function of its
/// own: its checks stay out of the verifier's walk of the stages.
#[inline(never)]
pub fn copy(ctx: *mut xdp_md, pkt: *const IpPacket, verdict: u64, len: u64) {
    let Some(filter) = CAPTURE_FILTER.get(0) else {
        return;
    };
    // Masked to the filter's widths (abi asserts every value fits), which also bounds the
    // shifts for the verifier.
    let (action, reason, class) = (verdict & 7, (verdict >> 8) & 63, (verdict >> 16) & 15);
    if u64::from(filter.actions) & (1 << action) == 0
        || u64::from(filter.classes) & (1 << class) == 0
        || filter.reasons & (1 << reason) == 0
    {
        return;
    }
    if filter.family != 0 {
        // SAFETY: null or the caller's parsed packet, alive for the call.
        let Some(pkt) = (unsafe { pkt.as_ref() }) else {
            return;
        };
        if filter.family != if pkt.v6 { 6 } else { 4 }
            || !in_prefix(&pkt.src, &filter.src, &filter.src_mask, pkt.v6)
        {
            return;
        }
    }
    let Some(budget) = CAPTURE_BUDGET.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let budget = unsafe { &mut *budget };
    // SAFETY: a helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(budget.since) >= SECOND_NS {
        budget.since = now;
        budget.used = 0;
    }
    if budget.used >= u64::from(filter.per_second) {
        budget.skipped += 1;
        return;
    }
    budget.used += 1;
    let Some(mut entry) = CAPTURE.reserve::<CaptureRecord>(0) else {
        budget.ring_full += 1;
        return;
    };
    let caplen = (filter.snaplen as u64).min(len) as u32;
    // The helper needs a length the verifier can bound: 1 to CAPTURE_SNAPLEN_MAX.
    if caplen == 0 || caplen as usize > CAPTURE_SNAPLEN_MAX {
        entry.discard(0);
        return;
    }
    let record = entry.as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; `caplen` bytes fit in its data.
    let copied = unsafe {
        (*record).timestamp_ns = now;
        (*record).len = len as u32;
        (*record).caplen = caplen;
        (*record).action = action as u8;
        (*record).reason = reason as u8;
        (*record).class = class as u8;
        (*record)._pad = [0; 5];
        bpf_xdp_load_bytes(ctx, 0, (*record).data.as_mut_ptr() as *mut c_void, caplen)
    };
    if copied < 0 {
        entry.discard(0);
    } else {
        entry.submit(0);
    }
}
