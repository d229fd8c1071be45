//! The per-source limiter's verdict on a tracked source, and what becomes of a SYN it
//! refuses. (Which sources are tracked, the sketch's gate, is the program's alone: explain
//! reads the entry the gate led to.)

use crate::{
    abi::{Action, Class, Limit, Reason, flags},
    limit::admit,
};

/// The verdict on a packet of `len` bytes from a tracked source, whose entry for the
/// packet's class holds `blocked_until` and the buckets `pkt_tat` and `byte_tat` (charged
/// if admitted), at `now`: a penalty still running refuses it, else its buckets decide.
#[inline(always)]
pub fn judge(
    blocked_until: u64,
    pkt_tat: &mut u64,
    byte_tat: &mut u64,
    limit: &Limit,
    len: u64,
    now: u64,
) -> Option<Reason> {
    if now < blocked_until {
        return Some(Reason::SourcePenalty);
    }
    if admit(pkt_tat, byte_tat, limit, len, now) {
        return None;
    }
    Some(Reason::SourceRate)
}

/// A SYN the source's limit drops is answered with a cookie instead when strict is
/// configured (so the kernel's cookie settings are Levee's): a spoofer cannot deny the
/// address it borrows a connection. The program also needs the SYN's headers plain.
#[inline(always)]
pub fn answered_with_cookie(f: u32, class: Class, action: Action, reason: Reason) -> bool {
    class == Class::TcpSyn
        && action == Action::Drop
        && matches!(reason, Reason::SourceRate | Reason::SourcePenalty)
        && f & flags::TRACK_FLOWS != 0
}
