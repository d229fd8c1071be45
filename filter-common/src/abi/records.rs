//! What the program and user space exchange through the maps: the programs' names, the
//! tables' sizes, and every key, value and record, `#[repr(C)]` with explicit padding.

use super::Class;

/// Name of the XDP program in the object.
pub const PROGRAM: &str = "levee";
/// The program a SYN without a cookie goes on to (tail call slot 1 of TAIL_CALLS).
pub const NO_COOKIE_PROGRAM: &str = "levee_no_cookie";
/// The program while strict's trigger holds on a CPU (tail call slot 3 of TAIL_CALLS).
pub const HELD_PROGRAM: &str = "levee_held";
/// Flood signatures: the program strict hands unknown UDP to while they are in force (tail
/// call slot 4 of TAIL_CALLS).
pub const SIGNATURE_PROGRAM: &str = "levee_signature";
/// Strict's stage for TCP and UDP fragments (tail call slot 2 of TAIL_CALLS).
pub const FRAGMENT_PROGRAM: &str = "levee_fragment";
/// Datagrams FRAGMENTS remembers.
pub const FRAGMENT_ENTRIES: u32 = 1 << 16;
/// How long a later fragment may follow its first: Linux's `ipfrag_time` default.
pub const FRAGMENT_TIMEOUT_NS: u64 = 30_000_000_000;

/// Key of FRAGMENTS: one fragmented datagram.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// IPv4 in the first 4 bytes (the rest zero), or IPv6.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub id: u32,
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<FragKey>() == 40);
/// Name of the clock-calibration program in the same object (run by the loader, never
/// attached).
pub const CLOCK_PROGRAM: &str = "levee_clock";
/// Name of the TC egress program that records the host's flows.
pub const EGRESS_PROGRAM: &str = "levee_egress";
/// Name of the SYN-cookie program, reached from the main program by tail call.
pub const COOKIE_PROGRAM: &str = "levee_cookie";
/// Entries in the FLOWS LRU table.
pub const FLOW_ENTRIES: u32 = 1 << 18;
/// Addresses the VERIFIED LRU table remembers.
pub const VERIFIED_ENTRIES: u32 = 1 << 17;
/// How stale a VERIFIED time may grow while the host keeps sending to the address: a stream
/// keeps its time within this of now, which tells a live connection from an old one.
pub const VERIFIED_REFRESH_NS: u64 = 500_000_000;

/// The VERIFIED key of an address: IPv6 as it is, IPv4 mapped (`::ffff:a.b.c.d`), so the two
/// families never meet.
#[inline(always)]
pub fn verified_key(addr: &[u8; 16], v6: bool) -> [u8; 16] {
    if v6 {
        *addr
    } else {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, addr[0], addr[1], addr[2], addr[3],
        ]
    }
}

/// The FAMILIAR key of a source's network (an IPv4 /24, an IPv6 /48), beside its address's
/// ([`verified_key`]) in the same table: `::fffe:a.b.c.0` for IPv4, the /48 followed by
/// `fffe` and zeros for IPv6 (an address of that form in a /48 would share its entry: few
/// hosts take one).
#[inline(always)]
pub fn familiar_net_key(addr: &[u8; 16], v6: bool) -> [u8; 16] {
    if v6 {
        [
            addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0,
            0,
        ]
    } else {
        [
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, addr[0], addr[1], addr[2], 0,
        ]
    }
}

/// Familiar sources FAMILIAR remembers (least recently seen evicted first), with their
/// networks.
pub const FAMILIAR_ENTRIES: u32 = 1 << 18;
/// A familiar source's time is rewritten at most this often (a lookup per clean datagram,
/// an update once a second per source), and a source is familiar once seen in two moments
/// this far apart.
pub const FAMILIAR_REFRESH_NS: u64 = 1_000_000_000;

/// Value of FAMILIAR: when a source was first and last seen sending within its limits while
/// calm (CLOCK_MONOTONIC coarse ns).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Familiar {
    pub first_ns: u64,
    pub last_ns: u64,
}

impl Familiar {
    /// Seen in two moments at least [`FAMILIAR_REFRESH_NS`] apart, the last within `ttl_ns`.
    #[inline(always)]
    pub fn is_familiar(&self, now: u64, ttl_ns: u64) -> bool {
        self.last_ns.wrapping_sub(self.first_ns) >= FAMILIAR_REFRESH_NS
            && now.wrapping_sub(self.last_ns) < ttl_ns
    }
}

/// Prefixes in each SERVICES trie.
pub const SERVICE_ENTRIES: u32 = 4096;
/// Budget slots in SVC_BUDGET: services share a slot beyond this many.
pub const SERVICE_BUDGETS: u32 = 256;
/// Default size of the per-source LRU table.
pub const DEFAULT_MAX_SOURCES: u32 = 1 << 20;
/// Default size of the event ring buffer in bytes (a power of two, a multiple of the page size).
pub const DEFAULT_EVENT_BYTES: u32 = 1 << 18;
/// Size of the OFFENCES ring: an offence is one record per source per penalty, so 64 KiB
/// holds over a thousand between two drains (every 100 ms).
pub const OFFENCE_BYTES: u32 = 1 << 16;
/// [`map::EVENTS_LOST`] slots.
pub mod lost {
    pub const OFFENCE: u32 = 0;
    pub const SAMPLE: u32 = 1;
}
/// Maximum prefixes in each allow- and blocklist trie.
pub const LIST_ENTRIES: u32 = 1 << 20;
/// Entries in AMP_PORTS: a bitmap of the 65536 UDP source ports, 64 per entry.
pub const AMP_PORT_WORDS: u32 = 65536 / 64;

/// The list summary: for each list, one bit per address block, set while any of its prefixes
/// overlaps the block. A source whose block's bit is clear matches nothing in that list, and
/// the program skips its trie lookup (a kernel call that costs as much as the rest of the
/// packet's parse). A set bit only means "look": user space may leave a bit set after the
/// prefix that set it is gone, never the other way round.
///
/// IPv4 blocks are /16s (bits 0..65536 of a list). IPv6 blocks are /48s hashed into 65536
/// bits (65536..131072): a /48 is a site, so one listed site does not send its whole
/// provider's traffic to the tries. The allowlist's bits come first, then the blocklist's.
pub mod summary {
    /// Bits of one list.
    pub const LIST_BITS: u32 = 2 * 65536;
    /// Where the blocklist's bits start.
    pub const BLOCK: u32 = LIST_BITS;
    /// 64-bit words in the LIST_SUMMARY array: both lists.
    pub const WORDS: u32 = 2 * LIST_BITS / 64;
    /// A prefix shorter than this covers every IPv6 block (2^12 /48s or more).
    pub const V6_ALL_BELOW: u8 = 36;

    /// The bit of an IPv4 address's /16.
    #[inline(always)]
    pub fn bit_v4(addr: [u8; 4]) -> u32 {
        u32::from(u16::from_be_bytes([addr[0], addr[1]]))
    }

    /// The bit of an IPv6 address's /48 (its first 6 bytes), hashed (Fibonacci hashing).
    #[inline(always)]
    pub fn bit_v6(addr: &[u8; 16]) -> u32 {
        let top = u64::from_be_bytes([0, 0, addr[0], addr[1], addr[2], addr[3], addr[4], addr[5]]);
        65536 + (top.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u32
    }
}

/// One rate limit in the encoding the data plane uses: the GCRA form of a token bucket
/// (see [`crate::limit`]). A cost of zero means no limit on that dimension.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Nanoseconds of budget one packet costs (1e9 / pps).
    pub pkt_cost_ns: u64,
    /// Bucket depth in nanoseconds (burst packets x cost).
    pub pkt_burst_ns: u64,
    /// Nanoseconds one byte costs, in 1/65536 ns (fixed point), so 100 Gbit/s stays exact.
    pub byte_cost_fp16: u64,
    /// Bucket depth in nanoseconds (burst bytes x cost).
    pub byte_burst_ns: u64,
}

/// The program's whole configuration: one entry in CONFIG, rewritten by the controller while
/// the program runs.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A [`Mode`] as u32.
    pub mode: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// Mask applied to an IPv4 source to form its per-source key (network byte order).
    pub source_mask_v4: u32,
    /// Sketch estimate (packets per window on one CPU) at which a source gets an LRU entry.
    pub sketch_threshold: u32,
    /// Mask applied to the upper 64 bits of an IPv6 source (network byte order).
    pub source_mask_v6: u64,
    /// Seed of the sketch hash, random per load, so senders cannot aim at collisions.
    pub sketch_seed: u64,
    /// Block time of a source that went over its limit; zero drops only the excess.
    pub penalty_ns: u64,
    /// Sketch window length is 2^shift ns.
    pub sketch_window_shift: u32,
    /// Send one in N passed-or-dropped IP packet headers as a sample event; zero for none.
    /// While the trigger holds strict, one in [`HELD_SAMPLE_EVERY`] at most (the controller
    /// samples densely while calm, and a flood must not pay for that before it catches up).
    pub sample_every: u32,
    /// Length of a jiffy in ns (1e9 / CONFIG_HZ), measured by the loader. The program reads
    /// time as `jiffies * clock_ns_per_jiffy + clock_offset_ns` (wrapping), in the domain of
    /// CLOCK_MONOTONIC_COARSE: jiffies are a plain load, while the coarse-clock helper costs
    /// about 20 ns a packet here. Zero: use the helper.
    pub clock_ns_per_jiffy: u64,
    /// See `clock_ns_per_jiffy`.
    pub clock_offset_ns: u64,
    /// Per-source limits, indexed by [`Class`].
    pub source: [Limit; Class::COUNT],
    /// Aggregate ceilings per CPU, indexed by [`Class`].
    pub aggregate: [Limit; Class::COUNT],
    /// A flow whose last egress packet is older than this no longer admits replies.
    pub flow_timeout_ns: u64,
    /// Per CPU, per service: what unknown UDP sources may send while [`flags::UDP_BUDGET`].
    pub unknown_budget: Limit,
    /// Per CPU: how fast sources may be given a new SOURCES entry (a packet bucket: cost and
    /// depth in ns; zero cost for no limit). The gate's backstop: however many spoofed sources
    /// slip through the sketch, the LRU turns over no faster than this, so the entries of
    /// real heavy sources (their penalties) survive a random-source flood.
    pub new_source_cost_ns: u64,
    pub new_source_burst_ns: u64,
    /// Per CPU, per class: the cost in ns of one packet of a source the program has no state
    /// for, at the rate that engages strict in the program (the class's onset line, shared by
    /// the CPUs); zero: no trigger for the class. See [`flags::TRIGGER`].
    pub trigger_cost_ns: [u64; Class::COUNT],
    /// Per class: depth of that bucket in ns (how far the rate may be exceeded before strict
    /// engages).
    pub trigger_burst_ns: [u64; Class::COUNT],
    /// How long one excess holds strict for its class on its CPU; each further one renews it.
    pub trigger_hold_ns: u64,
    /// A source stays familiar this long after it last sent while calm (see FAMILIAR).
    pub familiar_ttl_ns: u64,
    /// Cost in ns of one new FAMILIAR entry in a CPU's bucket of them (the host's
    /// `strict.familiar_max_new_per_sec`, shared among the CPUs); zero: unbounded.
    pub familiar_new_cost_ns: u64,
    /// Depth of that bucket in ns.
    pub familiar_new_burst_ns: u64,
    /// What the program's SYN-ACK offers: MSS for IPv4 and IPv6, the window scale the kernel
    /// will use for the connection it makes from the cookie, and the TTL / hop limit.
    pub synack_mss_v4: u16,
    pub synack_mss_v6: u16,
    pub synack_wscale: u8,
    pub synack_ttl: u8,
    pub _pad: [u8; 2],
}

/// Value of TRIGGER (per CPU): strict engaged by the program itself, per [`Class`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TriggerState {
    /// GCRA arrival time of the bucket of packets of sources without state.
    pub tat: [u64; Class::COUNT],
    /// Strict holds for the class on this CPU until then (coarse monotonic ns); 0: never held.
    pub engaged_until: [u64; Class::COUNT],
    /// When the current (or the last) engagement began.
    pub since: [u64; Class::COUNT],
    /// Engagements begun (an excess while not held).
    pub engagements: [u64; Class::COUNT],
    /// The latest of `engaged_until`: strict holds on this CPU until then (every class).
    pub held_until: u64,
}

/// Value of BLOCK_V4 / BLOCK_V6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    /// CLOCK_MONOTONIC (coarse) time in ns after which the entry no longer applies; 0 = never.
    pub expires_ns: u64,
}

/// Slots of BLOCKED_V4 (per CPU): 2^BLOCKED_V4_BITS.
pub const BLOCKED_V4_BITS: u32 = 12;

/// Value of BLOCKED_V4: what BLOCK_V4 answered for an IPv4 source, as of one generation of
/// the lists ([`blocked_v4_tag`]): its entry's expiry, [`BLOCKED_V4_NONE`] for no entry, or
/// [`BLOCKED_V4_PENDING`] while the question is being asked. The program finds the answer
/// here with an array lookup the verifier inlines, and asks BLOCK_V4 (a call into the
/// kernel) only on a miss; any change to a list starts a new generation, so no answer
/// outlives the list it came from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockedV4 {
    pub tag: u64,
    pub expires_ns: u64,
    pub addr: u32,
    pub _pad: u32,
}

/// BLOCKED_V4's expiry while the trie has not answered (an entry that expires at u64::MAX,
/// which no clock reaches, is only never remembered).
pub const BLOCKED_V4_PENDING: u64 = u64::MAX;
/// BLOCKED_V4's expiry for a source BLOCK_V4 does not hold (an entry that expires then, in
/// 584 years of uptime, would read as none).
pub const BLOCKED_V4_NONE: u64 = u64::MAX - 1;

/// The tag of a BLOCKED_V4 record written under list generation `generation`: never 0,
/// which an empty slot holds.
#[inline(always)]
pub fn blocked_v4_tag(generation: u64) -> u64 {
    generation << 1 | 1
}

/// The BLOCKED_V4 slot of an IPv4 source (in memory order): the top bits of a
/// multiplicative hash.
#[inline(always)]
pub fn blocked_v4_slot(addr: u32) -> u32 {
    (u64::from(addr).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BLOCKED_V4_BITS)) as u32
}

/// Value of ALLOW_V4 / ALLOW_V6 (presence is what counts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowEntry {
    pub _reserved: u32,
}

/// Key of FLOWS, seen from the host: the remote end, the local end, the protocol. The egress
/// program writes it from a packet's destination and source, the XDP program looks it up from
/// a packet's source and destination.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IPv4 in the first 4 bytes (the rest zero), or IPv6.
    pub remote: [u8; 16],
    pub local: [u8; 16],
    /// Ports in host byte order.
    pub remote_port: u16,
    pub local_port: u16,
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    pub _pad: [u8; 2],
}

/// Value of FLOWS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEntry {
    /// Coarse monotonic ns of the flow's last recorded egress packet.
    pub seen_ns: u64,
}

impl FlowKey {
    /// The key as five words, to compare without a byte loop.
    #[inline(always)]
    pub fn words(&self) -> [u64; 5] {
        // SAFETY: 40 bytes of plain data, 8-aligned (asserted in `abi`).
        unsafe { core::mem::transmute::<FlowKey, [u64; 5]>(*self) }
    }

    /// The same flow: every word equal. Without a branch per word (the verifier walks
    /// each branch of the program's flow lookup) and without a memcmp call.
    #[inline(always)]
    pub fn same(&self, other: &FlowKey) -> bool {
        let (a, b) = (self.words(), other.words());
        ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0
    }

    /// Its FLOW_CACHE slot: a multiplicative hash of its words. Tuples chosen to collide
    /// only send their lookups on to FLOWS.
    #[inline(always)]
    pub fn cache_slot(&self) -> u32 {
        let w = self.words();
        let mixed =
            w[0] ^ w[1].rotate_left(13) ^ w[2].rotate_left(29) ^ w[3].rotate_left(43) ^ w[4];
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u32 & (FLOW_CACHE_SLOTS - 1)
    }
}

/// Slots of FLOW_CACHE (a power of two).
pub const FLOW_CACHE_SLOTS: u32 = 1 << 16;

/// Value of FLOW_CACHE: the flow the egress program last recorded in this slot, and when.
/// The XDP program finds a flow here with an array lookup the verifier inlines, and looks
/// in FLOWS (a call into the kernel) only when the slot holds another flow or an old time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCacheEntry {
    pub key: FlowKey,
    pub seen_ns: u64,
}

/// Key of SERVICES_V4 / SERVICES_V6: an LPM key whose data is protocol, a zero byte, the port
/// (big-endian) and then the destination address, so one lookup matches a service bound to
/// any address (prefix 32 bits) or to a destination prefix (32 + its length).
pub type ServiceKeyV4 = [u8; 8];
pub type ServiceKeyV6 = [u8; 20];
/// Bits of a service key before the address.
pub const SERVICE_KEY_BITS: u32 = 32;

/// The data of a service key for a packet or a service.
#[inline(always)]
pub fn service_key_v4(proto: u8, port: u16, addr: [u8; 4]) -> ServiceKeyV4 {
    let p = port.to_be_bytes();
    [proto, 0, p[0], p[1], addr[0], addr[1], addr[2], addr[3]]
}

#[inline(always)]
pub fn service_key_v6(proto: u8, port: u16, addr: &[u8; 16]) -> ServiceKeyV6 {
    let p = port.to_be_bytes();
    let mut k = [0u8; 20];
    k[0] = proto;
    k[2] = p[0];
    k[3] = p[1];
    let mut i = 0;
    while i < 16 {
        k[4 + i] = addr[i];
        i += 1;
    }
    k
}

/// Value of SERVICES_V4 / SERVICES_V6.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Index into SVC_BUDGET of this service's unknown-source budget.
    pub slot: u32,
}

/// Value of SVC_BUDGET (per CPU): a GCRA bucket pair.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub pkt_tat: u64,
    pub byte_tat: u64,
}

/// Key of SOURCES: the masked source address.
///
/// In memory, IPv6 keys are the first 8 bytes of the address (masked). IPv4 keys are four 0xff
/// bytes then the address (masked); an IPv6 source starting ffff:ffff is multicast, which is
/// never a valid source, so the two families cannot collide. See [`crate::config::source_key_v4`].
pub type SourceKey = u64;

/// Value of SOURCES: the exact state of one tracked source.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    /// Monotonic coarse ns until which the source's packets of a class are dropped, per
    /// class: a penalty earned in one class (where a spoofer may have earned it) leaves the
    /// source's other traffic alone.
    pub blocked_until: [u64; Class::COUNT],
    /// Theoretical arrival times of the packet buckets, per class.
    pub pkt_tat: [u64; Class::COUNT],
    /// Theoretical arrival times of the byte buckets, per class.
    pub byte_tat: [u64; Class::COUNT],
    /// Times the source went over a limit.
    pub offences: u32,
    pub _pad: u32,
}

/// Slots of SOURCE_SLOTS: 2^SOURCE_SLOT_BITS.
pub const SOURCE_SLOT_BITS: u32 = 14;
pub const SOURCE_SLOT_COUNT: u32 = 1 << SOURCE_SLOT_BITS;

/// Value of SOURCE_SLOTS: a tracked source (`key`, 0 when the slot is free) and its state.
/// A source is found in its slot with an array lookup the verifier inlines; only a source
/// whose slot another holds lives in SOURCES (a call into the kernel). A slot whose source
/// is at rest ([`SourceState::at_rest`]) may be given to a new source: its state then
/// decides nothing a fresh one would not.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceSlot {
    pub key: SourceKey,
    pub state: SourceState,
}

impl SourceSlot {
    /// Whether the slot holds the source of `key` (a key of 0, which a free slot holds too,
    /// is never held: such a source lives in SOURCES).
    #[inline(always)]
    pub fn holds(&self, key: SourceKey) -> bool {
        key != 0 && self.key == key
    }
}

/// The SOURCE_SLOTS slot of a source: a multiplicative hash of its key, its top bits (the
/// only ones every bit of the key reaches: an IPv4 key's address is its top half). Sources
/// chosen to collide only send their lookups on to SOURCES, as before the slots.
#[inline(always)]
pub fn source_slot(key: SourceKey) -> u32 {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SOURCE_SLOT_BITS)) as u32
}

impl SourceState {
    /// No penalty running and every bucket full at `now`: the state decides as a fresh one
    /// would (a bucket whose arrival time has passed starts from `now`, as an empty one).
    #[inline(always)]
    pub fn at_rest(&self, now: u64) -> bool {
        // Without a branch per word (the verifier would walk each): the sign of now - t is
        // set when t is later (times are far below 2^63).
        let mut later = 0;
        for c in 0..Class::COUNT {
            later |= now.wrapping_sub(self.blocked_until[c])
                | now.wrapping_sub(self.pkt_tat[c])
                | now.wrapping_sub(self.byte_tat[c]);
        }
        later >> 63 == 0
    }
}

/// Counters in the sketch: rows and width (a power of two).
pub const SKETCH_ROWS: usize = 2;
pub const SKETCH_WIDTH: usize = 8192;

/// Value of CPU_STATE (per CPU): the sketch that gates the LRU, and the aggregate buckets.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CpuState {
    pub agg_pkt_tat: [u64; Class::COUNT],
    pub agg_byte_tat: [u64; Class::COUNT],
    /// Theoretical arrival time of the bucket of new SOURCES entries
    /// ([`Config::new_source_cost_ns`]).
    pub new_source_tat: u64,
    /// Theoretical arrival time of the bucket of new FAMILIAR entries
    /// ([`Config::familiar_new_cost_ns`]).
    pub familiar_new_tat: u64,
    /// Count-min sketch cells, see [`crate::limit::sketch_bump`].
    pub sketch: [[u8; SKETCH_WIDTH]; SKETCH_ROWS],
}

/// [`Event::kind`] values.
pub mod event {
    /// A source went over its limit and starts a penalty.
    pub const OFFENCE: u32 = 1;
    /// A sampled packet header (one in `sample_every`).
    pub const SAMPLE: u32 = 2;
}

/// FlowSpec rules received from BGP neighbours the program enforces, at most.
pub const MAX_UPSTREAM_RULES: u32 = 16;
/// How long received rules hold without the controller renewing them (it does every tick).
pub const UPSTREAM_LEASE_NS: u64 = 10_000_000_000;
/// BGP neighbours BGP_PEERS holds at most.
pub const MAX_BGP_PEERS: u32 = 64;
/// BGP's TCP port.
pub const BGP_PORT: u16 = 179;

/// What an upstream rule does with a matching packet.
pub mod upstream_action {
    /// traffic-rate 0.
    pub const DISCARD: u8 = 1;
    /// traffic-rate N bytes a second, as the per-CPU share of `UpstreamRule::limit`.
    pub const RATE: u8 = 2;
}

/// A FlowSpec rule received from a BGP neighbour, compiled for the program: every component
/// as a prefix (address and mask, laid out as `IpPacket` addresses) or an inclusive range. An
/// entry with `family` 0 ends the table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamRule {
    pub dst: [u8; 16],
    pub dst_mask: [u8; 16],
    pub src: [u8; 16],
    pub src_mask: [u8; 16],
    /// 4 or 6; 0 ends the table.
    pub family: u8,
    /// [`upstream_action`].
    pub action: u8,
    pub proto: [u8; 2],
    pub src_port: [u16; 2],
    pub dst_port: [u16; 2],
    /// IP packet length (header included).
    pub len: [u16; 2],
    /// 1 when the rule has a port component: then only TCP and UDP with their ports (not a
    /// later fragment) can match, as RFC 8955 says; a port of 0 is not "no port".
    pub ports: u8,
    pub _pad: [u8; 3],
    /// The rate of [`upstream_action::RATE`] (bytes only), per CPU.
    pub limit: Limit,
}

/// Per CPU: the token bucket of one rate-limiting upstream rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamBucket {
    pub pkt_tat: u64,
    pub byte_tat: u64,
}

/// The most bytes of a packet `levee capture` copies.
pub const CAPTURE_SNAPLEN_MAX: usize = 256;
/// The CAPTURE ring's size: about 14,000 records, 0.7 s of two CPUs copying at the largest
/// budget (10,000 a second each), where the daemon drains it every 100 ms.
pub const CAPTURE_BYTES: u32 = 4 << 20;

/// What `levee capture` copies: packets whose action, reason and class are in the masks
/// (bit `1 << value`) and, with `family` 4 or 6, whose source is in `src`/`src_mask`; at most
/// `per_second` a second on each CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    pub src: [u8; 16],
    pub src_mask: [u8; 16],
    /// 0: any source, else the family of `src`.
    pub family: u8,
    pub actions: u8,
    pub classes: u16,
    /// Bytes copied of each packet, 1 to [`CAPTURE_SNAPLEN_MAX`].
    pub snaplen: u32,
    pub reasons: u64,
    pub per_second: u32,
    pub _pad: u32,
}

/// Per CPU: the capture budget's current second, and the packets it skipped.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureBudget {
    /// Monotonic ns when the current second began.
    pub since: u64,
    pub used: u64,
    /// Matching packets not copied: the second's budget was spent.
    pub skipped: u64,
    /// Matching packets not copied: the ring was full.
    pub ring_full: u64,
}

/// A packet copied for `levee capture`: its first `caplen` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureRecord {
    /// Monotonic ns (bpf_ktime_get_ns).
    pub timestamp_ns: u64,
    /// The frame's length on the wire.
    pub len: u32,
    pub caplen: u32,
    pub action: u8,
    pub reason: u8,
    pub class: u8,
    pub _pad: [u8; 5],
    pub data: [u8; CAPTURE_SNAPLEN_MAX],
}

/// A record on the OFFENCES or EVENTS ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// [`event`] kind.
    pub kind: u32,
    /// [`Action`] as u32.
    pub action: u32,
    /// [`Reason`] as u32.
    pub reason: u32,
    /// [`Class`] as u32.
    pub class: u32,
    /// Source address: IPv4 in the first 4 bytes, or IPv6.
    pub src: [u8; 16],
    /// Destination address, laid out as `src` (the attacked host, for escalation).
    pub dst: [u8; 16],
    pub timestamp_ns: u64,
    /// 4 or 6.
    pub family: u8,
    pub proto: u8,
    pub tcp_flags: u8,
    pub _pad: u8,
    /// Frame length in bytes.
    pub len: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// Offences of the source so far (offence events).
    pub offences: u32,
}

/// The sparsest sampling while the program's trigger holds strict, whatever `sample_every`.
pub const HELD_SAMPLE_EVERY: u32 = 1024;

/// A record on the EVENTS ring: a sampled header, with what a flood signature can match of
/// it (the miner's input). Starts with its [`Event`], so either can be read from it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub event: Event,
    pub facts: crate::signature::Facts,
    /// The sampling rate it was taken at (one in `every`): each sample stands for `every`
    /// packets, whatever the rate was when it is read.
    pub every: u32,
}
