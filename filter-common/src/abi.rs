//! The binary interface between the XDP program and user space: map names, keys, values,
//! counter indices and event records. Every type is `#[repr(C)]` with explicit padding so both
//! sides agree byte for byte.

use core::mem::size_of;

/// Map names, declared once. The kernel keeps 15 characters of a map name.
pub mod map {
    pub const CONFIG: &str = "CONFIG";
    pub const ALLOW_V4: &str = "ALLOW_V4";
    pub const ALLOW_V6: &str = "ALLOW_V6";
    pub const BLOCK_V4: &str = "BLOCK_V4";
    pub const BLOCK_V6: &str = "BLOCK_V6";
    pub const AMP_PORTS: &str = "AMP_PORTS";
    pub const SOURCES: &str = "SOURCES";
    pub const CPU_STATE: &str = "CPU_STATE";
    pub const COUNTERS: &str = "COUNTERS";
    /// Sampled headers for `levee top` (sized by `events.ring_bytes`).
    pub const EVENTS: &str = "EVENTS";
    /// Offences, on a ring of their own so samples never crowd them out.
    pub const OFFENCES: &str = "OFFENCES";
    /// Per CPU: records lost to a full ring, [offences, samples].
    pub const EVENTS_LOST: &str = "EVENTS_LOST";
    /// Per CPU: packets left until the next sample (0 while one is pending).
    pub const SAMPLE_COUNTDOWN: &str = "SAMPLE_COUNTDOWN";
    /// Written by the clock-calibration program: [jiffies, CLOCK_MONOTONIC_COARSE ns].
    pub const CLOCK: &str = "CLOCK";
    /// Per CPU: [entries the program added to SOURCES, sources left untracked because the
    /// bucket of new entries was empty]. The kernel keeps no count of an LRU table and it
    /// only loses entries to eviction, so min(added, capacity) is its size.
    pub const SOURCES_ADDED: &str = "SOURCES_ADDED";
    /// Flows the host started or answered, recorded by the egress program (LRU).
    pub const FLOWS: &str = "FLOWS";
    /// Remote addresses the host has held a TCP connection with (a segment past the
    /// handshake seen leaving the host), to when it was last seen; written by the egress
    /// program (LRU). Detection blocklists an offender only if it is here.
    pub const VERIFIED: &str = "VERIFIED";
    /// Sources that sent UDP within their limits while calm (strict not engaged), to when
    /// first and last seen ([`super::Familiar`]): written by the program from every clean
    /// datagram (the last time at most every [`super::FAMILIAR_REFRESH_NS`]), read while
    /// strict's UDP budget applies, where a familiar source passes before the budget (LRU,
    /// pinned, saved on stop).
    pub const FAMILIAR: &str = "FAMILIAR";
    /// What the host serves: LPM tries keyed by protocol, port and destination prefix.
    pub const SERVICES_V4: &str = "SERVICES_V4";
    pub const SERVICES_V6: &str = "SERVICES_V6";
    /// Per CPU: the budget buckets of unknown sources, indexed by [`super::ServiceEntry::slot`].
    pub const SVC_BUDGET: &str = "SVC_BUDGET";
    /// Per CPU: each service's second budget, for unknown sources of a familiar network
    /// (never pinned: a bucket refills within a second).
    pub const NET_BUDGET: &str = "NET_BUDGET";
    /// Slot 0: the SYN-cookie program; slot 1: the stages after strict for a SYN it could
    /// not answer; slot 2: strict's stage for fragments; slot 3: the program while strict's
    /// trigger holds; slot 4: flood signatures (a program array, filled at every load, never
    /// pinned).
    pub const TAIL_CALLS: &str = "TAIL_CALLS";
    /// Fragmented datagrams whose first fragment Levee passed under strict ([`super::FragKey`]
    /// to the time it passed, LRU; never pinned).
    pub const FRAGMENTS: &str = "FRAGMENTS";
    /// Which address blocks may hold a list entry (see [`super::summary`]); made exact from
    /// the lists at every load that reuses them.
    pub const LIST_SUMMARY: &str = "LIST_SUMMARY";
    /// FlowSpec rules received from BGP neighbours ([`super::UpstreamRule`]), and per CPU
    /// the token buckets of the rate-limiting ones. Never pinned: each run fills them from
    /// its BGP daemon.
    pub const UPSTREAM_RULES: &str = "UPSTREAM_RULES";
    pub const UPSTREAM_BUCKETS: &str = "UPSTREAM_BUCKETS";
    /// Until when (the program's clock, ns) the received rules hold: the controller renews
    /// it every tick, so a crashed daemon's rules stop within [`super::UPSTREAM_LEASE_NS`].
    pub const UPSTREAM_LEASE: &str = "UPSTREAM_LEASE";
    /// The configured BGP neighbours' addresses ([`super::verified_key`] form): their
    /// sessions pass before every stage. Never pinned: each run writes its own.
    pub const BGP_PEERS: &str = "BGP_PEERS";
    /// `levee capture`: what to copy ([`super::CaptureFilter`]), the copies
    /// ([`super::CaptureRecord`]) on a ring of their own, and per CPU the budget
    /// ([`super::CaptureBudget`]). Never pinned: capture is off at every start.
    pub const CAPTURE_FILTER: &str = "CAPTURE_FILTER";
    pub const CAPTURE: &str = "CAPTURE";
    pub const CAPTURE_BUDGET: &str = "CAPTURE_BUDGET";
    /// Per CPU: strict engaged by the program itself, per class ([`super::TriggerState`]).
    /// Never pinned: an engagement lasts a second unless renewed.
    pub const TRIGGER: &str = "TRIGGER";
    /// Flood signatures the controller mined ([`crate::signature::FloodSignature`]), and per
    /// CPU the packets each dropped. Never pinned: a signature lives while its attack does.
    pub const SIGNATURES: &str = "SIGNATURES";
    pub const SIGNATURE_HITS: &str = "SIGNATURE_HITS";
    /// Every map, for pinning and listing.
    pub const ALL: [&str; 21] = [
        CONFIG,
        ALLOW_V4,
        ALLOW_V6,
        BLOCK_V4,
        BLOCK_V6,
        AMP_PORTS,
        SOURCES,
        CPU_STATE,
        COUNTERS,
        EVENTS,
        CLOCK,
        SOURCES_ADDED,
        OFFENCES,
        EVENTS_LOST,
        FLOWS,
        VERIFIED,
        FAMILIAR,
        SERVICES_V4,
        SERVICES_V6,
        SVC_BUDGET,
        LIST_SUMMARY,
    ];
}

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

/// Mitigation mode, read from [`Config::mode`] on every packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pass everything, count only.
    Off = 0,
    /// Decide and count what would be dropped, pass everything.
    Monitor = 1,
    /// Drop what the rules say.
    Enforce = 2,
    /// Drop all IP traffic that is not allowlisted.
    Lockdown = 3,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Off, Mode::Monitor, Mode::Enforce, Mode::Lockdown];

    pub const fn from_u32(v: u32) -> Mode {
        match v {
            0 => Mode::Off,
            1 => Mode::Monitor,
            3 => Mode::Lockdown,
            _ => Mode::Enforce,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
            Mode::Lockdown => "lockdown",
        }
    }
}

/// What happened to a packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass = 0,
    Drop = 1,
    /// Monitor mode: the rules would have dropped it; it was passed.
    WouldDrop = 2,
}

impl Action {
    pub const COUNT: usize = 3;
    pub const ALL: [Action; 3] = [Action::Pass, Action::Drop, Action::WouldDrop];

    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::WouldDrop => "would_drop",
        }
    }
}

/// Traffic class: per-source and aggregate limits are set per class.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// TCP with SYN set and ACK clear: a connection attempt.
    TcpSyn = 0,
    TcpOther = 1,
    Udp = 2,
    /// ICMP and ICMPv6.
    Icmp = 3,
    /// Any other IP protocol, and frames that are not IP or could not be parsed.
    Other = 4,
}

impl Class {
    pub const COUNT: usize = 5;
    pub const ALL: [Class; 5] = [
        Class::TcpSyn,
        Class::TcpOther,
        Class::Udp,
        Class::Icmp,
        Class::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Class::TcpSyn => "tcp_syn",
            Class::TcpOther => "tcp_other",
            Class::Udp => "udp",
            Class::Icmp => "icmp",
            Class::Other => "other",
        }
    }
}

/// Why a packet got its action. Every drop has exactly one reason.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Passed every check.
    Clean = 0,
    /// Mode `off`: passed without checks.
    ModeOff,
    /// Not IP (ARP, LLDP...): always passed.
    NonIp,
    Allowlisted,
    Blocklisted,
    /// Lockdown mode and not allowlisted.
    Lockdown,
    /// UDP from a reflection/amplification source port.
    AmpPort,
    /// Impossible TCP flag set (SYN+FIN, SYN+RST, NULL, XMAS).
    TcpFlags,
    /// IP fragment, with the fragment signature on.
    Fragment,
    /// The source went over its per-class limit (this packet started its penalty).
    SourceRate,
    /// The source is serving a penalty block time.
    SourcePenalty,
    /// The per-class aggregate ceiling was reached.
    Aggregate,
    /// Strict: the packet belongs to a flow the host started or answered.
    Flow,
    /// Strict: a TCP ACK carrying a valid SYN cookie; the kernel makes the connection.
    CookieAck,
    /// Strict: TCP or UDP to a port no service of the host and no flow accounts for.
    NoService,
    /// Strict: a TCP segment other than SYN with no flow, no socket and no valid cookie.
    NoFlow,
    /// Strict: a SYN to a served port, answered by the program with a SYN cookie (XDP_TX).
    SynCookie,
    /// Strict: UDP from an unknown source over its service's budget while under attack.
    UnknownBudget,
    EthTruncated,
    VlanTruncated,
    /// More than two VLAN tags.
    VlanTooDeep,
    Ipv4Truncated,
    Ipv4BadVersion,
    /// IHL below 5.
    Ipv4BadIhl,
    /// Total length below the header or past the end of the frame.
    Ipv4BadLength,
    Ipv6Truncated,
    Ipv6BadVersion,
    /// Payload length past the end of the frame.
    Ipv6BadLength,
    Ipv6ExtTruncated,
    /// More extension headers than the parser walks.
    Ipv6ExtTooMany,
    TcpTruncated,
    /// TCP data offset below 5.
    TcpBadOffset,
    UdpTruncated,
    /// UDP length below 8 or past the end of the IP payload.
    UdpBadLength,
    IcmpTruncated,
    /// An IPv6 Hop-by-Hop header anywhere but first (RFC 8200, 4.1).
    Ipv6ExtBadOrder,
    /// A FlowSpec rule received from a BGP neighbour (discard, or over its rate).
    UpstreamRule,
    /// Strict: a SYN to a served port the program could not answer with a cookie (the
    /// kernel's syncookies off, the listener gone, a SYN the helper refuses, no cookie
    /// program). It went on through the per-source limiter, the aggregate ceiling and the
    /// received rules like any packet; passed to the kernel if none objected.
    SynNoCookie,
    /// A SYN over its source's limit (or from a source serving a SYN penalty), answered with
    /// a SYN cookie instead of dropped: a spoofed address gets a SYN-ACK it ignores, a real
    /// client behind it still connects. Strict need not be engaged.
    PenaltyCookie,
    /// Strict: UDP from a familiar source (one that sent within its limits while calm, see
    /// FAMILIAR), passed before the unknown sources' budget while that applies.
    Familiar,
    /// Strict: UDP from an unknown, unfamiliar source that matches a flood signature the
    /// controller mined while its class is under attack (see SIGNATURES).
    FloodSignature,
    /// A BGP session of Levee's with a configured neighbour (TCP to or from port 179, the
    /// neighbour its source; see BGP_PEERS): passed before every stage, so no rule, received
    /// or Levee's own, can cut the session that carries Levee's rules.
    BgpSession,
}

impl Reason {
    pub const COUNT: usize = 42;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::Clean,
        Reason::ModeOff,
        Reason::NonIp,
        Reason::Allowlisted,
        Reason::Blocklisted,
        Reason::Lockdown,
        Reason::AmpPort,
        Reason::TcpFlags,
        Reason::Fragment,
        Reason::SourceRate,
        Reason::SourcePenalty,
        Reason::Aggregate,
        Reason::Flow,
        Reason::CookieAck,
        Reason::NoService,
        Reason::NoFlow,
        Reason::SynCookie,
        Reason::UnknownBudget,
        Reason::EthTruncated,
        Reason::VlanTruncated,
        Reason::VlanTooDeep,
        Reason::Ipv4Truncated,
        Reason::Ipv4BadVersion,
        Reason::Ipv4BadIhl,
        Reason::Ipv4BadLength,
        Reason::Ipv6Truncated,
        Reason::Ipv6BadVersion,
        Reason::Ipv6BadLength,
        Reason::Ipv6ExtTruncated,
        Reason::Ipv6ExtTooMany,
        Reason::TcpTruncated,
        Reason::TcpBadOffset,
        Reason::UdpTruncated,
        Reason::UdpBadLength,
        Reason::IcmpTruncated,
        Reason::Ipv6ExtBadOrder,
        Reason::UpstreamRule,
        Reason::SynNoCookie,
        Reason::PenaltyCookie,
        Reason::Familiar,
        Reason::FloodSignature,
        Reason::BgpSession,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Reason::Clean => "clean",
            Reason::ModeOff => "mode_off",
            Reason::NonIp => "non_ip",
            Reason::Allowlisted => "allowlisted",
            Reason::Blocklisted => "blocklisted",
            Reason::Lockdown => "lockdown",
            Reason::AmpPort => "amp_port",
            Reason::TcpFlags => "tcp_flags",
            Reason::Fragment => "fragment",
            Reason::SourceRate => "source_rate",
            Reason::SourcePenalty => "source_penalty",
            Reason::Aggregate => "aggregate",
            Reason::Flow => "flow",
            Reason::CookieAck => "cookie_ack",
            Reason::NoService => "no_service",
            Reason::NoFlow => "no_flow",
            Reason::SynCookie => "syn_cookie",
            Reason::UnknownBudget => "unknown_budget",
            Reason::EthTruncated => "eth_truncated",
            Reason::VlanTruncated => "vlan_truncated",
            Reason::VlanTooDeep => "vlan_too_deep",
            Reason::Ipv4Truncated => "ipv4_truncated",
            Reason::Ipv4BadVersion => "ipv4_bad_version",
            Reason::Ipv4BadIhl => "ipv4_bad_ihl",
            Reason::Ipv4BadLength => "ipv4_bad_length",
            Reason::Ipv6Truncated => "ipv6_truncated",
            Reason::Ipv6BadVersion => "ipv6_bad_version",
            Reason::Ipv6BadLength => "ipv6_bad_length",
            Reason::Ipv6ExtTruncated => "ipv6_ext_truncated",
            Reason::Ipv6ExtTooMany => "ipv6_ext_too_many",
            Reason::TcpTruncated => "tcp_truncated",
            Reason::TcpBadOffset => "tcp_bad_offset",
            Reason::UdpTruncated => "udp_truncated",
            Reason::UdpBadLength => "udp_bad_length",
            Reason::IcmpTruncated => "icmp_truncated",
            Reason::Ipv6ExtBadOrder => "ipv6_ext_bad_order",
            Reason::UpstreamRule => "upstream_rule",
            Reason::SynNoCookie => "syn_no_cookie",
            Reason::PenaltyCookie => "penalty_cookie",
            Reason::Familiar => "familiar",
            Reason::FloodSignature => "flood_signature",
            Reason::BgpSession => "bgp_session",
        }
    }

    /// What the host knows of the packet's source vouches for it: a flow, a familiar
    /// source, the allowlist, a valid cookie. Its traffic is the crowd's, attack or not (the
    /// flood signatures' miner learns what the crowd sends from it).
    pub const fn known_source(self) -> bool {
        matches!(
            self,
            Reason::Flow | Reason::Familiar | Reason::Allowlisted | Reason::CookieAck
        )
    }

    /// From a source within its own limits that met no rule: what is left of a flood once
    /// the lists, the static signatures and the per-source limiter have had it. Strict's
    /// budget for unknown sources and its cookies come after the limiter, so what they
    /// refuse counts too, and so does what a flood signature drops in their place: detection's
    /// measure of a spread flood does not change when they engage, and the miner learns a
    /// flood's fingerprint from it.
    pub const fn unstopped(self) -> bool {
        matches!(
            self,
            Reason::Clean
                | Reason::UnknownBudget
                | Reason::FloodSignature
                | Reason::SynCookie
                | Reason::SynNoCookie
        )
    }

    /// A frame the parser rejected: it is never passed as something it is not. A list, not
    /// a range: reasons are appended at the end (the counters' layout), malformed or not.
    pub const fn is_malformed(self) -> bool {
        matches!(
            self,
            Reason::EthTruncated
                | Reason::VlanTruncated
                | Reason::VlanTooDeep
                | Reason::Ipv4Truncated
                | Reason::Ipv4BadVersion
                | Reason::Ipv4BadIhl
                | Reason::Ipv4BadLength
                | Reason::Ipv6Truncated
                | Reason::Ipv6BadVersion
                | Reason::Ipv6BadLength
                | Reason::Ipv6ExtTruncated
                | Reason::Ipv6ExtTooMany
                | Reason::TcpTruncated
                | Reason::TcpBadOffset
                | Reason::UdpTruncated
                | Reason::UdpBadLength
                | Reason::IcmpTruncated
                | Reason::Ipv6ExtBadOrder
        )
    }
}

/// Index into COUNTERS for one (action, reason, class) triple.
#[inline(always)]
pub const fn counter_index(action: Action, reason: Reason, class: Class) -> u32 {
    ((action as u32 * Reason::COUNT as u32) + reason as u32) * Class::COUNT as u32 + class as u32
}

/// Number of entries in COUNTERS.
pub const COUNTER_ENTRIES: u32 = (Action::COUNT * Reason::COUNT * Class::COUNT) as u32;

/// One COUNTERS slot, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// [`Config::flags`] bits.
pub mod flags {
    /// Drop UDP from the source ports set in AMP_PORTS.
    pub const SIG_AMP_PORTS: u32 = 1 << 0;
    /// Drop impossible TCP flag combinations.
    pub const SIG_TCP_FLAGS: u32 = 1 << 1;
    /// Drop IP fragments.
    pub const SIG_FRAGMENTS: u32 = 1 << 2;
    /// Run the per-source limiter.
    pub const SOURCE_LIMITS: u32 = 1 << 3;
    /// The map has entries; without the bit the program skips the lookup.
    pub const HAS_ALLOW_V4: u32 = 1 << 4;
    pub const HAS_ALLOW_V6: u32 = 1 << 5;
    pub const HAS_BLOCK_V4: u32 = 1 << 6;
    pub const HAS_BLOCK_V6: u32 = 1 << 7;
    /// The egress program records flows (strict is `auto` or `always`).
    pub const TRACK_FLOWS: u32 = 1 << 8;
    /// Strict is engaged: drop what no service or flow accounts for, answer SYNs with cookies.
    pub const STRICT: u32 = 1 << 9;
    /// Unknown UDP sources to a service share its budget (strict, UDP under attack).
    pub const UDP_BUDGET: u32 = 1 << 10;
    /// The host accepts ECN (`net.ipv4.tcp_ecn` not 0): a SYN asking for it (ECE and CWR) gets
    /// ECE in our SYN-ACK and the ECN bit in the cookie's timestamp.
    pub const SYNACK_ECN: u32 = 1 << 11;
    /// UPSTREAM_RULES holds FlowSpec rules received from BGP neighbours (map content, like
    /// HAS_*).
    pub const UPSTREAM_RULES: u32 = 1 << 12;
    /// `levee capture` runs: copy the packets CAPTURE_FILTER matches. Kept out of
    /// [`SETTINGS`], so a config write (a mode switch, a reload) leaves a capture running.
    pub const CAPTURE: u32 = 1 << 13;
    /// The host takes SACK on a connection made from a cookie (`net.ipv4.tcp_sack` not 0):
    /// our SYN-ACK may agree to it.
    pub const SYNACK_SACK: u32 = 1 << 14;
    /// The host takes a window scale (`net.ipv4.tcp_window_scaling` not 0).
    pub const SYNACK_WSCALE: u32 = 1 << 15;
    /// The host has timestamps (`net.ipv4.tcp_timestamps` not 0): without them the kernel
    /// refuses a cookie ACK that carries one, so our SYN-ACK offers none.
    pub const SYNACK_TS: u32 = 1 << 16;
    /// Strict may engage in the program, on one CPU, when packets of one class from sources
    /// it has no state for pass [`super::Config::trigger_cost_ns`]'s rate (strict not `off`).
    pub const TRIGGER: u32 = 1 << 17;
    /// While the program's trigger holds strict, `monitor` enforces (`detection.auto_enforce`).
    pub const AUTO_ENFORCE: u32 = 1 << 18;
    /// Remember sources that send UDP within their limits while calm, and pass them before
    /// the unknown budget (strict not `off`).
    pub const FAMILIAR: u32 = 1 << 19;
    /// SIGNATURES holds at least one UDP flood signature (map content, like UPSTREAM_RULES).
    pub const SIGNATURES: u32 = 1 << 20;
    /// SIGNATURES holds at least one TCP SYN flood signature (map content).
    pub const SIGNATURES_SYN: u32 = 1 << 21;
    /// BGP_PEERS holds a neighbour: its sessions pass before every stage.
    pub const BGP_PEERS: u32 = 1 << 22;
    /// Mask of the bits the controller sets; the HAS_* bits follow the map contents.
    pub const SETTINGS: u32 = SIG_AMP_PORTS
        | SIG_TCP_FLAGS
        | SIG_FRAGMENTS
        | SOURCE_LIMITS
        | TRACK_FLOWS
        | STRICT
        | UDP_BUDGET
        | SYNACK_ECN
        | SYNACK_SACK
        | SYNACK_WSCALE
        | SYNACK_TS
        | TRIGGER
        | AUTO_ENFORCE
        | FAMILIAR;
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

/// Value of ALLOW_V4 / ALLOW_V6 (presence is what counts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllowEntry {
    pub _reserved: u32,
}

/// Key of FLOWS, seen from the host: the remote end, the local end, the protocol. The egress
/// program writes it from a packet's destination and source, the XDP program looks it up from
/// a packet's source and destination.
#[repr(C)]
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

const _: () = assert!(size_of::<Counter>() == 16);
const _: () = assert!(size_of::<Limit>() == 32);
const _: () = assert!(
    size_of::<Config>() == 64 + 2 * Class::COUNT * 32 + 8 + 32 + 16 + Class::COUNT * 16 + 8 + 8 + 8
);
const _: () = assert!(size_of::<TriggerState>() == 4 * Class::COUNT * 8 + 8);
const _: () = assert!(size_of::<SourceState>() == 128);
const _: () = assert!(size_of::<FlowKey>() == 40);
const _: () = assert!(size_of::<CpuState>() == 88 + SKETCH_ROWS * SKETCH_WIDTH);
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
    unsafe impl aya::Pod for CpuState {}
    unsafe impl aya::Pod for TriggerState {}
    unsafe impl aya::Pod for Familiar {}
    unsafe impl aya::Pod for Event {}
    unsafe impl aya::Pod for Sample {}
    unsafe impl aya::Pod for crate::signature::FloodSignature {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for FlowEntry {}
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
        assert!(!Reason::Aggregate.is_malformed());
        assert!(Reason::EthTruncated.is_malformed());
        assert!(Reason::IcmpTruncated.is_malformed());
        assert!(Reason::Ipv6ExtBadOrder.is_malformed());
        // Issue 21: appended after the parser's reasons, and not one of them.
        assert!(!Reason::UpstreamRule.is_malformed());
        assert!(!Reason::SynNoCookie.is_malformed());
        assert!(!Reason::PenaltyCookie.is_malformed());
        assert!(!Reason::Familiar.is_malformed());
        let malformed = Reason::ALL.iter().filter(|r| r.is_malformed()).count();
        assert_eq!(
            malformed, 18,
            "a new parser reason belongs in is_malformed's list"
        );
    }

    #[test]
    fn mode_round_trips() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_u32(m as u32), m);
        }
    }
}
