//! FlowSpec rules received from BGP neighbours (a route server feeding a fleet), compiled by
//! the controller into UPSTREAM_RULES: each a destination and source prefix, protocol, port
//! and length ranges, and discard or a byte rate. Skipped by a CONFIG flag while the table is
//! empty, so it costs nothing until a neighbour sends a rule.

use aya_ebpf::{cty::c_void, helpers::bpf_loop};
use filter_common::{
    abi::{Config, MAX_UPSTREAM_RULES, Reason, UpstreamRule, upstream_action},
    limit::admit,
    parse::{Fragment, IPPROTO_TCP, IPPROTO_UDP, IpPacket},
};

use crate::{
    limiter::Clock,
    maps::{CONFIG, UPSTREAM_BUCKETS, UPSTREAM_LEASE, UPSTREAM_RULES},
};

/// Whether `addr` lies in the prefix `net`/`mask` (16 bytes each, IPv4 in the first 4).
#[inline(always)]
pub(crate) fn in_prefix(addr: &[u8; 16], net: &[u8; 16], mask: &[u8; 16], v6: bool) -> bool {
    let word = |a: &[u8; 16], i: usize| {
        u64::from_ne_bytes([
            a[i],
            a[i + 1],
            a[i + 2],
            a[i + 3],
            a[i + 4],
            a[i + 5],
            a[i + 6],
            a[i + 7],
        ])
    };
    if !v6 {
        let w = |a: &[u8; 16]| u32::from_ne_bytes([a[0], a[1], a[2], a[3]]);
        return w(addr) & w(mask) == w(net);
    }
    word(addr, 0) & word(mask, 0) == word(net, 0) && word(addr, 8) & word(mask, 8) == word(net, 8)
}

#[inline(always)]
fn in_range<T: PartialOrd>(v: T, range: [T; 2]) -> bool {
    let [lo, hi] = range;
    v >= lo && v <= hi
}

/// What the rules are matched against, copied off the packet for the loop's callback.
#[repr(C)]
struct Walk {
    src: [u8; 16],
    dst: [u8; 16],
    v6: bool,
    proto: u8,
    ip_len: u16,
    src_port: u16,
    dst_port: u16,
    /// TCP or UDP with its header (not a later fragment): port components can match.
    has_ports: bool,
    /// The first rule that matched, or MAX_UPSTREAM_RULES.
    found: u32,
}

#[inline(always)]
fn matches(rule: &UpstreamRule, w: &Walk) -> bool {
    (rule.family == 6) == w.v6
        && (rule.ports == 0 || w.has_ports)
        && in_prefix(&w.dst, &rule.dst, &rule.dst_mask, w.v6)
        && in_prefix(&w.src, &rule.src, &rule.src_mask, w.v6)
        && in_range(w.proto, rule.proto)
        && in_range(w.src_port, rule.src_port)
        && in_range(w.dst_port, rule.dst_port)
        && in_range(w.ip_len, rule.len)
}

/// bpf_loop's body: 1 stops the loop (the table's end, or a match), 0 goes on.
extern "C" fn match_rule(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer `check` gave it, to its `Walk`.
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    // No rule holds once the lease ran out. Asked here, in the callback the verifier walks
    // once, rather than in `check`, walked once per path into it.
    if index == 0 && !leased() {
        return 1;
    }
    let Some(rule) = UPSTREAM_RULES.get(index as u32) else {
        return 1;
    };
    if rule.family == 0 {
        return 1;
    }
    if matches(rule, walk) {
        walk.found = index as u32;
        return 1;
    }
    0
}

/// The first rule (in the controller's order) that matches decides: a discard drops, a rate
/// drops what is over its per-CPU share; none while their lease has run out. The rules are walked with bpf_loop, so the verifier
/// checks the body once instead of once per rule and per path into this stage. The stage
/// reads the time with a clock of its own: sharing the caller's would leave the caller two
/// states (time read or not) for the verifier to walk through every later stage.
#[inline(never)]
pub fn check(cfg: &Config, pkt: &IpPacket, len: u64) -> Option<Reason> {
    let mut walk = Walk {
        src: pkt.src,
        dst: pkt.dst,
        v6: pkt.v6,
        proto: pkt.proto,
        // The frame's length past the IP header: the packet's own, except that a frame
        // padded to Ethernet's 60 bytes counts its padding (the controller skips length
        // rules that would tell the difference).
        ip_len: len
            .saturating_sub(u64::from(pkt.l3))
            .min(u64::from(u16::MAX)) as u16,
        src_port: pkt.src_port,
        dst_port: pkt.dst_port,
        has_ports: (pkt.proto == IPPROTO_TCP || pkt.proto == IPPROTO_UDP)
            && pkt.fragment != Fragment::Later,
        found: MAX_UPSTREAM_RULES,
    };
    // SAFETY: a static callback and a pointer to a stack value that outlives the call.
    unsafe {
        bpf_loop(
            MAX_UPSTREAM_RULES,
            match_rule as *mut c_void,
            (&mut walk as *mut Walk).cast(),
            0,
        )
    };
    let i = walk.found;
    let rule = UPSTREAM_RULES.get(i)?;
    if rule.action == upstream_action::DISCARD {
        return Some(Reason::UpstreamRule);
    }
    let bucket = UPSTREAM_BUCKETS.get_ptr_mut(i)?;
    // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
    let bucket = unsafe { &mut *bucket };
    let now = Clock::new(cfg).now();
    if admit(
        &mut bucket.pkt_tat,
        &mut bucket.byte_tat,
        &rule.limit,
        len,
        now,
    ) {
        None
    } else {
        Some(Reason::UpstreamRule)
    }
}

/// Whether the rules' lease holds: the controller renews it every tick, so a crashed
/// daemon's rules stop within seconds, with nobody left to follow their withdrawal.
#[inline(always)]
fn leased() -> bool {
    let Some(cfg) = CONFIG.get(0) else {
        return false;
    };
    let now = Clock::new(cfg).now();
    UPSTREAM_LEASE.get(0).is_some_and(|&until| now < until)
}
