//! TCP segments built and checked byte for byte: chosen ports, numbers, flags and options,
//! checksums computed independently of the code under test; and pinning a thread to its CPU
//! (the program's budgets are per CPU).

use filter_common::frames::{FrameSpec, L4};

use crate::ip;

/// Where the IP header starts in the frames built here (no VLAN tags).
pub const L3: usize = 14;

pub fn is_v6(frame: &[u8]) -> bool {
    frame[L3] >> 4 == 6
}

/// Offset of the TCP header in a frame with plain IP headers.
pub fn l4_of(frame: &[u8]) -> usize {
    if is_v6(frame) { L3 + 40 } else { L3 + 20 }
}

pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// The one's-complement sum of `data` as 16-bit big-endian words, folded (not inverted).
pub fn ones_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for c in data.chunks(2) {
        sum += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The pseudo header of the TCP segment in `frame` and the segment's bytes.
pub fn pseudo_and_segment(frame: &[u8]) -> (Vec<u8>, &[u8]) {
    let ip = &frame[L3..];
    let mut pseudo = Vec::new();
    if is_v6(frame) {
        let len = usize::from(be16(&ip[4..6]));
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, ip[6]]);
        (pseudo, &ip[40..40 + len])
    } else {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let len = usize::from(be16(&ip[2..4])) - ihl;
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, ip[9]]);
        pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        (pseudo, &ip[ihl..ihl + len])
    }
}

/// Whether the TCP checksum of the segment in `frame` is right.
pub fn tcp_checksum_ok(frame: &[u8]) -> bool {
    let (mut all, seg) = pseudo_and_segment(frame);
    all.extend_from_slice(seg);
    ones_sum(&all) == 0xffff
}

/// Writes a right TCP checksum into the segment of `frame` (plain IP headers).
pub fn fix_tcp_checksum(frame: &mut [u8]) {
    let th = l4_of(frame);
    fix_tcp_checksum_at(frame, th);
}

/// A TCP segment with chosen ports, numbers, flags and options (a multiple of 4 bytes), and a
/// right checksum.
#[allow(clippy::too_many_arguments)]
pub fn segment(
    src: &str,
    dst: &str,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
) -> Vec<u8> {
    assert!(
        opts.len().is_multiple_of(4) && opts.len() <= 40,
        "bad option block"
    );
    let mut f = FrameSpec::new(
        ip(src),
        ip(dst),
        L4::Tcp {
            sport,
            dport,
            flags,
        },
    )
    .payload(opts.len())
    .build();
    let th = l4_of(&f);
    f[th + 4..th + 8].copy_from_slice(&seq.to_be_bytes());
    f[th + 8..th + 12].copy_from_slice(&ack.to_be_bytes());
    f[th + 12] = (((20 + opts.len()) / 4) as u8) << 4;
    f[th + 20..th + 20 + opts.len()].copy_from_slice(opts);
    fix_tcp_checksum(&mut f);
    f
}

/// What Linux puts in a SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
pub fn linux_syn_options(tsval: u32) -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend_from_slice(&tsval.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
    o
}

/// A TCP checksum for a segment at `th` behind IPv4 options (the helpers above assume none).
pub fn fix_tcp_checksum_at(frame: &mut [u8], th: usize) {
    frame[th + 16..th + 18].copy_from_slice(&[0, 0]);
    let (mut all, seg) = pseudo_and_segment(frame);
    all.extend_from_slice(seg);
    let sum = !ones_sum(&all);
    frame[th + 16..th + 18].copy_from_slice(&sum.to_be_bytes());
}

/// Pins the calling thread to the CPU it is on: the program's budgets are per CPU.
pub fn pin_to_this_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t, for the calling thread only.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        let rc = libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(
            rc,
            0,
            "sched_setaffinity: {}",
            std::io::Error::last_os_error()
        );
    }
}
