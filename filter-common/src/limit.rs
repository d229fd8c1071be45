//! Rate-limit arithmetic: token buckets in GCRA form, and the count-min sketch cells.
//!
//! A token bucket of rate `r` and depth `b` is kept as one number, its theoretical arrival time
//! (TAT): the time at which the bucket would be full again. A packet of cost `c = 1/r` is
//! admitted if, after paying, the bucket would be full again no later than `b/r` from now. This
//! is the virtual-scheduling form of the same bucket (ATM's GCRA): one u64 of state, no
//! division and no refill step on the packet path.
//!
//! The sketch decides which sources deserve an exact entry. Each cell packs a 4-bit window
//! epoch and a 4-bit saturating count, so a new window needs no reset pass: a cell whose epoch
//! differs from the current one counts as zero.

use crate::abi::{Limit, SKETCH_ROWS, SKETCH_WIDTH};

/// Pays `cost` ns into the bucket whose TAT is `tat` at time `now`. Returns the new TAT if the
/// packet fits in a bucket `burst` ns deep, `None` if it must be refused (the bucket then stays
/// as it was, so refused packets do not dig the source deeper).
#[inline(always)]
pub fn gcra(tat: u64, now: u64, cost: u64, burst: u64) -> Option<u64> {
    let start = if tat > now { tat } else { now };
    let next = start + cost;
    if next - now > burst { None } else { Some(next) }
}

/// Cost in ns of `bytes` at `byte_cost_fp16` (ns per byte in 1/65536 ns).
#[inline(always)]
pub fn byte_cost(bytes: u64, byte_cost_fp16: u64) -> u64 {
    (bytes * byte_cost_fp16) >> 16
}

/// Charges a packet of `len` bytes to a packet bucket and a byte bucket under `limit`. Both
/// buckets must admit it; only then are both charged. Returns whether it was admitted.
#[inline(always)]
pub fn admit(pkt_tat: &mut u64, byte_tat: &mut u64, limit: &Limit, len: u64, now: u64) -> bool {
    let mut pkt = *pkt_tat;
    if limit.pkt_cost_ns != 0 {
        match gcra(pkt, now, limit.pkt_cost_ns, limit.pkt_burst_ns) {
            Some(t) => pkt = t,
            None => return false,
        }
    }
    let mut byte = *byte_tat;
    if limit.byte_cost_fp16 != 0 {
        let cost = byte_cost(len, limit.byte_cost_fp16);
        match gcra(byte, now, cost, limit.byte_burst_ns) {
            Some(t) => byte = t,
            None => return false,
        }
    }
    *pkt_tat = pkt;
    *byte_tat = byte;
    true
}

/// Whether a limit limits anything.
#[inline(always)]
pub fn is_unlimited(limit: &Limit) -> bool {
    limit.pkt_cost_ns == 0 && limit.byte_cost_fp16 == 0
}

/// The sketch epoch (3 bits) of time `now` for windows of 2^`shift` ns.
#[inline(always)]
pub fn sketch_epoch(now: u64, shift: u32) -> u8 {
    ((now >> (shift & 63)) & 0x07) as u8
}

/// Cell layout: epoch in bits 7..5, "saturated in the previous window" in bit 4, a saturating
/// count in bits 3..0.
const CELL_COUNT: u8 = 0x0f;
const CELL_PREV_FULL: u8 = 0x10;

/// A cell after counting one more packet in `epoch`. A cell from the window just before
/// remembers whether it was saturated, so a heavy source stays hot across window edges.
#[inline(always)]
pub fn sketch_bump(cell: u8, epoch: u8) -> u8 {
    let cell_epoch = cell >> 5;
    if cell_epoch == epoch {
        if cell & CELL_COUNT == CELL_COUNT {
            cell
        } else {
            cell + 1
        }
    } else {
        let prev_full = (cell_epoch + 1) & 0x07 == epoch && cell & CELL_COUNT == CELL_COUNT;
        (epoch << 5) | if prev_full { CELL_PREV_FULL } else { 0 } | 1
    }
}

/// Whether a cell (after [`sketch_bump`]) says its sources are heavy: `threshold` packets in
/// this window, or saturated in the previous one.
#[inline(always)]
pub fn sketch_cell_hot(cell: u8, threshold: u32) -> bool {
    u32::from(cell & CELL_COUNT) >= threshold || cell & CELL_PREV_FULL != 0
}

/// Whether a cell (after [`sketch_bump`]) counts its first packet of the window.
#[inline(always)]
pub fn sketch_cell_first(cell: u8) -> bool {
    cell & CELL_COUNT == 1
}

/// The largest useful threshold: a cell counts to 15.
pub const SKETCH_MAX_THRESHOLD: u32 = CELL_COUNT as u32;

/// The cell index in each sketch row for a source key: a 64-bit mix (the murmur3 finalizer)
/// of key and seed, cut into one slice per row.
#[inline(always)]
pub fn sketch_slots(key: u64, seed: u64) -> [usize; SKETCH_ROWS] {
    let mut x = key ^ seed;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    let mask = (SKETCH_WIDTH - 1) as u64;
    [(x & mask) as usize, ((x >> 32) & mask) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn gcra_admits_a_burst_then_refuses() {
        // 1000 pps (1 ms a packet), burst of 5 packets.
        let (cost, burst) = (MS, 5 * MS);
        let now = 1_000 * MS;
        let mut tat = 0;
        for i in 0..5 {
            tat = gcra(tat, now, cost, burst).unwrap_or_else(|| panic!("packet {i} refused"));
        }
        assert_eq!(gcra(tat, now, cost, burst), None);
    }

    #[test]
    fn gcra_refills_at_its_rate() {
        let (cost, burst) = (MS, 2 * MS);
        let mut tat = 0;
        let now = 10 * MS;
        tat = gcra(tat, now, cost, burst).unwrap();
        tat = gcra(tat, now, cost, burst).unwrap();
        assert_eq!(gcra(tat, now, cost, burst), None);
        // Half a packet's time later: still refused.
        assert_eq!(gcra(tat, now + MS / 2, cost, burst), None);
        // One packet's time later: exactly one more fits.
        let t = gcra(tat, now + MS, cost, burst).unwrap();
        assert_eq!(gcra(t, now + MS, cost, burst), None);
        // After a long idle time the bucket is full again, never fuller.
        let mut t = tat;
        for _ in 0..2 {
            t = gcra(t, now + 1000 * MS, cost, burst).unwrap();
        }
        assert_eq!(gcra(t, now + 1000 * MS, cost, burst), None);
    }

    #[test]
    fn gcra_long_run_rate_matches_limit() {
        // 100 pps, burst 10, offered 1000 pps for 10 s: about 100*10 + 10 admitted.
        let (cost, burst) = (10 * MS, 100 * MS);
        let mut tat = 0;
        let mut admitted = 0;
        for i in 0..10_000u64 {
            if let Some(t) = gcra(tat, 1_000 * MS + i * MS, cost, burst) {
                tat = t;
                admitted += 1;
            }
        }
        assert!((1005..=1011).contains(&admitted), "admitted {admitted}");
    }

    #[test]
    fn admit_needs_both_buckets_and_charges_only_when_admitted() {
        use crate::config::Rate;
        // 1000 pps burst 100, but only 8 kbit/s (1000 B/s) with a 1514-byte burst.
        let limit = Rate {
            pps: 1000,
            burst_packets: 100,
            bits_per_sec: 8_000,
            burst_bytes: 1514,
        }
        .encode();
        let (mut p, mut b) = (0, 0);
        let now = 1_000 * MS;
        assert!(admit(&mut p, &mut b, &limit, 1000, now));
        let (p1, b1) = (p, b);
        // The byte bucket refuses a second 1000-byte frame; the packet bucket is not charged.
        assert!(!admit(&mut p, &mut b, &limit, 1000, now));
        assert_eq!((p, b), (p1, b1));
        // A small frame still fits in the bytes left.
        assert!(admit(&mut p, &mut b, &limit, 400, now));
        assert!(is_unlimited(&Rate::default().encode()));
        let (mut p, mut b) = (0, 0);
        for _ in 0..1000 {
            assert!(admit(&mut p, &mut b, &Rate::default().encode(), 1500, now));
        }
    }

    #[test]
    fn byte_cost_fixed_point() {
        // 8 ns per byte (1 Gbit/s): 1500 bytes cost 12 us.
        assert_eq!(byte_cost(1500, 8 << 16), 12_000);
        // 0.08 ns per byte (100 Gbit/s) keeps precision.
        let fp = (0.08f64 * 65536.0) as u64;
        let c = byte_cost(1_000_000, fp);
        assert!((79_000..=80_000).contains(&c), "{c}");
    }

    #[test]
    fn sketch_cells_count_per_window_and_saturate() {
        let e = sketch_epoch(5 << 20, 20);
        assert_eq!(e, 5);
        let mut c = 0;
        for i in 1..=20u32 {
            c = sketch_bump(c, e);
            assert!(sketch_cell_hot(c, i.min(15)), "count {i}");
            assert!(!sketch_cell_hot(c, i.min(15) + 1), "count {i}");
        }
        // The next window starts counting from one but remembers the saturation.
        let next = sketch_bump(c, sketch_epoch(6 << 20, 20));
        assert_ne!(next & CELL_PREV_FULL, 0);
        assert!(sketch_cell_hot(next, 8), "a saturated source stays hot");
        // Two windows later, or after a window that was not saturated, it is cold again.
        let later = sketch_bump(next, sketch_epoch(7 << 20, 20));
        assert!(!sketch_cell_hot(later, 8));
        let skipped = sketch_bump(c, sketch_epoch(7 << 20, 20));
        assert!(!sketch_cell_hot(skipped, 8));
        // The epoch wraps after 8 windows.
        assert_eq!(sketch_epoch(8 << 20, 20), 0);
    }

    #[test]
    fn sketch_slots_spread_and_depend_on_seed() {
        let mut hits = std::vec![0u32; SKETCH_WIDTH];
        for k in 0..(SKETCH_WIDTH as u64 * 4) {
            hits[sketch_slots(0xffff_ffff_0000_0000 | k, 7)[0]] += 1;
        }
        let max = *hits.iter().max().unwrap();
        assert!(max < 20, "a cell got {max} of 4 per cell on average");
        assert_ne!(sketch_slots(42, 1), sketch_slots(42, 2));
        let [a, b] = sketch_slots(42, 1);
        assert!(a < SKETCH_WIDTH && b < SKETCH_WIDTH);
    }
}
