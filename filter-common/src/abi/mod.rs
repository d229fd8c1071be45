//! The binary interface between the XDP program and user space: map names, keys, values,
//! counter indices and event records. Every type is `#[repr(C)]` with explicit padding so both
//! sides agree byte for byte.

use core::mem::{align_of, size_of};

pub mod flags;
pub mod map;
mod reasons;
mod records;

pub use reasons::*;
pub use records::*;

const _: () = assert!(size_of::<Counter>() == 16);
const _: () = assert!(size_of::<Limit>() == 32);
const _: () = assert!(
    size_of::<Config>()
        == 64 + 2 * Class::COUNT * 32 + 8 + 32 + 16 + Class::COUNT * 16 + 8 + 8 + 16 + 8
);
const _: () = assert!(size_of::<TriggerState>() == 4 * Class::COUNT * 8 + 8);
const _: () = assert!(size_of::<SourceState>() == 128);
const _: () = assert!(size_of::<SourceSlot>() == 136);
const _: () = assert!(size_of::<BlockedV4>() == 24);
const _: () = assert!(size_of::<FlowKey>() == 40 && align_of::<FlowKey>() == 8);
const _: () = assert!(size_of::<FlowCacheEntry>() == 48);
const _: () = assert!(size_of::<CpuState>() == 96 + SKETCH_ROWS * SKETCH_WIDTH);
const _: () = assert!(size_of::<Event>() == 72);
const _: () = assert!(size_of::<Sample>() == 96);
const _: () = assert!(size_of::<UpstreamRule>() == 64 + 20 + 4 + 32);
const _: () = assert!(size_of::<CaptureFilter>() == 56);
const _: () = assert!(size_of::<CaptureRecord>() == 24 + CAPTURE_SNAPLEN_MAX);
const _: () = assert!(Reason::COUNT <= 64 && Class::COUNT <= 16 && Action::COUNT <= 8);
const _: () = assert!(Reason::ALL.len() == Reason::BgpSession as usize + 1);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], integer fields only, no implicit padding.
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for Counter {}
    unsafe impl aya::Pod for BlockEntry {}
    unsafe impl aya::Pod for AllowEntry {}
    unsafe impl aya::Pod for SourceState {}
    unsafe impl aya::Pod for SourceSlot {}
    unsafe impl aya::Pod for BlockedV4 {}
    unsafe impl aya::Pod for CpuState {}
    unsafe impl aya::Pod for TriggerState {}
    unsafe impl aya::Pod for Familiar {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for Sample {}
    unsafe impl aya::Pod for crate::signature::FloodSignature {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FlowEntry {}
    unsafe impl aya::Pod for FlowCacheEntry {}
    unsafe impl aya::Pod for ServiceEntry {}
    unsafe impl aya::Pod for Budget {}
    unsafe impl aya::Pod for UpstreamRule {}
    unsafe impl aya::Pod for UpstreamBucket {}
    unsafe impl aya::Pod for CaptureFilter {}
    unsafe impl aya::Pod for CaptureBudget {}
    unsafe impl aya::Pod for CaptureRecord {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indices_are_dense_and_unique() {
        let mut seen = std::vec![false; COUNTER_ENTRIES as usize];
        for a in Action::ALL {
            for r in Reason::ALL {
                for c in Class::ALL {
                    let i = counter_index(a, r, c) as usize;
                    assert!(!seen[i], "duplicate index {i}");
                    seen[i] = true;
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn reasons_are_in_declaration_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
        for (i, a) in Action::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i, "{}", a.name());
        }
    }

    /// Neighbouring sources spread over the slots (a hash that kept the key's low bits put
    /// an IPv4 network's sources in a few dozen), and a slot at rest is what a fresh state is.
    #[test]
    fn sources_spread_over_their_slots() {
        use crate::config::{source_key_v4, source_key_v6};
        let spread = |keys: &mut dyn Iterator<Item = u64>| {
            let mut slots: std::vec::Vec<u32> = keys.map(source_slot).collect();
            slots.sort_unstable();
            slots.dedup();
            slots.len()
        };
        let v4 =
            spread(&mut (0u32..4096).map(|i| source_key_v4((0x0a00_0000 + i).to_be_bytes(), !0)));
        let v6 = spread(&mut (0u16..4096).map(|i| {
            let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            a[6..8].copy_from_slice(&i.to_be_bytes());
            source_key_v6(&a, !0)
        }));
        // 4096 keys thrown at 16384 slots at random land in about 3,600 of them.
        assert!(
            v4 > 3_400 && v6 > 3_400,
            "IPv4 {v4}, IPv6 {v6} slots of 4096 sources"
        );
        let mut busy = SourceState::default();
        assert!(busy.at_rest(1_000));
        busy.byte_tat[Class::COUNT - 1] = 1_001;
        assert!(!busy.at_rest(1_000));
        assert!(busy.at_rest(1_001));
    }

    /// Every reason, said to be malformed or not. The match has no wildcard: a new reason does
    /// not compile here until it is put on one side.
    #[test]
    fn is_malformed_says_so_of_every_parser_reason_and_no_other() {
        use Reason::*;
        for r in Reason::ALL {
            let parser = match r {
                EthTruncated | VlanTruncated | VlanTooDeep | Ipv4Truncated | Ipv4BadVersion
                | Ipv4BadIhl | Ipv4BadLength | Ipv6Truncated | Ipv6BadVersion | Ipv6BadLength
                | Ipv6ExtTruncated | Ipv6ExtTooMany | TcpTruncated | TcpBadOffset
                | UdpTruncated | UdpBadLength | IcmpTruncated | Ipv6ExtBadOrder => true,
                Clean | ModeOff | NonIp | Allowlisted | Blocklisted | Lockdown | AmpPort
                | TcpFlags | Fragment | SourceRate | SourcePenalty | Aggregate | Flow
                | CookieAck | NoService | NoFlow | SynCookie | UnknownBudget | UpstreamRule
                | SynNoCookie | PenaltyCookie | Familiar | FloodSignature | BgpSession => false,
            };
            assert_eq!(r.is_malformed(), parser, "{}", r.name());
        }
    }

    /// The one rule of actions: what passes passes in every mode; an objection is passed in
    /// off, would_drop in monitor and dropped in enforce and lockdown.
    #[test]
    fn the_mode_gives_the_action_of_an_objection_only() {
        for mode in Mode::ALL {
            for reason in Reason::ALL {
                let want = match (reason.passes(), mode) {
                    (true, _) | (false, Mode::Off) => Action::Pass,
                    (false, Mode::Monitor) => Action::WouldDrop,
                    (false, Mode::Enforce | Mode::Lockdown) => Action::Drop,
                };
                assert_eq!(
                    action(mode, reason),
                    want,
                    "{} {}",
                    mode.name(),
                    reason.name()
                );
            }
        }
        assert!(Reason::Familiar.passes() && Reason::SynNoCookie.passes());
        assert!(!Reason::SynCookie.passes() && !Reason::PenaltyCookie.passes());
    }

    #[test]
    fn mode_round_trips() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_u32(m as u32), m);
        }
    }
}
