//! Every map of the program. Sizes here are defaults; the loader resizes SOURCES and EVENTS.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, ProgramArray, RingBuf},
};
use filter_common::abi::{
    AMP_PORT_WORDS, AllowEntry, BLOCKED_V4_BITS, BlockEntry, BlockedV4, Budget, CAPTURE_BYTES,
    COUNTER_ENTRIES, CaptureBudget, CaptureFilter, Config, Counter, CpuState, DEFAULT_EVENT_BYTES,
    DEFAULT_MAX_SOURCES, FLOW_CACHE_SLOTS, FLOW_ENTRIES, FlowCacheEntry, FlowEntry, FlowKey,
    LIST_ENTRIES, MAX_BGP_PEERS, MAX_UPSTREAM_RULES, OFFENCE_BYTES, SERVICE_BUDGETS,
    SERVICE_ENTRIES, SOURCE_SLOT_COUNT, ServiceEntry, ServiceKeyV4, ServiceKeyV6, SourceKey,
    SourceSlot, SourceState, TriggerState, UpstreamBucket, UpstreamRule, summary,
};
use filter_common::signature::{Facts, FloodSignature, SIGNATURE_SLOTS};
use filter_common::synack::{OptionsBuf, OptionsFound, SynAckBuf};

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

// LPM tries must be created with BPF_F_NO_PREALLOC (1).
#[map]
pub static ALLOW_V4: LpmTrie<[u8; 4], AllowEntry> = LpmTrie::with_max_entries(LIST_ENTRIES, 1);
#[map]
pub static ALLOW_V6: LpmTrie<[u8; 16], AllowEntry> = LpmTrie::with_max_entries(LIST_ENTRIES, 1);
#[map]
pub static BLOCK_V4: LpmTrie<[u8; 4], BlockEntry> = LpmTrie::with_max_entries(LIST_ENTRIES, 1);
#[map]
pub static BLOCK_V6: LpmTrie<[u8; 16], BlockEntry> = LpmTrie::with_max_entries(LIST_ENTRIES, 1);

/// Which address blocks may hold a list entry (`filter_common::abi::summary`).
#[map]
pub static LIST_SUMMARY: Array<u64> = Array::with_max_entries(summary::WORDS, 0);

/// What BLOCK_V4 answered for IPv4 sources, per CPU (`filter_common::abi::BlockedV4`).
#[map]
pub static BLOCKED_V4: PerCpuArray<BlockedV4> =
    PerCpuArray::with_max_entries(1 << BLOCKED_V4_BITS, 0);

/// The lists' generation (`filter_common::abi::map::LIST_GENERATION`).
#[map]
pub static LIST_GENERATION: Array<u64> = Array::with_max_entries(1, 0);

/// Bitmap of UDP source ports dropped by the amplification signature.
#[map]
pub static AMP_PORTS: Array<u64> = Array::with_max_entries(AMP_PORT_WORDS, 0);

/// Tracked sources in their slots (`filter_common::abi::SourceSlot`), looked up before SOURCES.
#[map]
pub static SOURCE_SLOTS: Array<SourceSlot> = Array::with_max_entries(SOURCE_SLOT_COUNT, 0);

/// Slots given to a new source, and of them free ones, per CPU (see
/// `filter_common::abi::map::SLOTS_GIVEN`).
#[map]
pub static SLOTS_GIVEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// One zeroed source state, never written: what a new SOURCES entry starts from.
#[map]
pub static FRESH_SOURCE: Array<SourceState> = Array::with_max_entries(1, 0);

#[map]
pub static SOURCES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);

/// Entries added to SOURCES and sources refused one, per CPU (see
/// `filter_common::abi::map::SOURCES_ADDED`).
#[map]
pub static SOURCES_ADDED: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// New FAMILIAR entries and sightings left unrecorded, per CPU (see
/// `filter_common::abi::map::FAMILIAR_ADDED`).
#[map]
pub static FAMILIAR_ADDED: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

#[map]
pub static CPU_STATE: PerCpuArray<CpuState> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(COUNTER_ENTRIES, 0);

/// [jiffies, coarse monotonic ns], written by the calibration program.
#[map]
pub static CLOCK: Array<u64> = Array::with_max_entries(2, 0);

/// Sampled headers.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_EVENT_BYTES, 0);

/// Offences, apart from samples so these never crowd them out.
#[map]
pub static OFFENCES: RingBuf = RingBuf::with_byte_size(OFFENCE_BYTES, 0);

/// Per CPU: packets left until the next sample, 0 while one is pending (see
/// `events::note_if_due`), and the pending sample's signature facts.
#[map]
pub static SAMPLE_COUNTDOWN: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static SAMPLE_FACTS: PerCpuArray<Facts> = PerCpuArray::with_max_entries(1, 0);

/// Records lost to a full ring, per CPU: [offences, samples].
#[map]
pub static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);

/// Flows the host started or answered, written by the egress program.
#[map]
pub static FLOWS: LruHashMap<FlowKey, FlowEntry> = LruHashMap::with_max_entries(FLOW_ENTRIES, 0);

/// The flow the egress program last recorded in each slot, to find a flow without a call.
#[map]
pub static FLOW_CACHE: Array<FlowCacheEntry> = Array::with_max_entries(FLOW_CACHE_SLOTS, 0);

/// Remote addresses the host held a TCP connection with, to when (see `egress`).
#[map]
pub static VERIFIED: LruHashMap<[u8; 16], u64> =
    LruHashMap::with_max_entries(filter_common::abi::VERIFIED_ENTRIES, 0);

/// What the host serves (protocol, port, destination prefix).
#[map]
pub static SERVICES_V4: LpmTrie<ServiceKeyV4, ServiceEntry> =
    LpmTrie::with_max_entries(SERVICE_ENTRIES, 1);
#[map]
pub static SERVICES_V6: LpmTrie<ServiceKeyV6, ServiceEntry> =
    LpmTrie::with_max_entries(SERVICE_ENTRIES, 1);

/// Per CPU: each service's budget for unknown sources.
#[map]
pub static SVC_BUDGET: PerCpuArray<Budget> = PerCpuArray::with_max_entries(SERVICE_BUDGETS, 0);

/// Per CPU: each service's second budget, for unknown sources of a familiar network.
#[map]
pub static NET_BUDGET: PerCpuArray<Budget> = PerCpuArray::with_max_entries(SERVICE_BUDGETS, 0);

/// FlowSpec rules received from BGP neighbours; an entry with family 0 ends the table.
#[map]
pub static UPSTREAM_RULES: Array<UpstreamRule> = Array::with_max_entries(MAX_UPSTREAM_RULES, 0);

/// Until when the received rules hold (slot 0; the program's clock, ns); 0: never written.
#[map]
pub static UPSTREAM_LEASE: Array<u64> = Array::with_max_entries(1, 0);

/// The configured BGP neighbours' addresses: their sessions pass before every stage.
#[map]
pub static BGP_PEERS: HashMap<[u8; 16], u8> = HashMap::with_max_entries(MAX_BGP_PEERS, 0);

/// Per CPU: the token buckets of the rate-limiting upstream rules, by rule index.
#[map]
pub static UPSTREAM_BUCKETS: PerCpuArray<UpstreamBucket> =
    PerCpuArray::with_max_entries(MAX_UPSTREAM_RULES, 0);

/// What `levee capture` copies (slot 0), read only while flags::CAPTURE is set.
#[map]
pub static CAPTURE_FILTER: Array<CaptureFilter> = Array::with_max_entries(1, 0);

/// Packets copied for `levee capture`, apart from the offences and samples.
#[map]
pub static CAPTURE: RingBuf = RingBuf::with_byte_size(CAPTURE_BYTES, 0);

/// Per CPU: the capture budget of the current second, and what it skipped.
#[map]
pub static CAPTURE_BUDGET: PerCpuArray<CaptureBudget> = PerCpuArray::with_max_entries(1, 0);

/// Sources that sent UDP within their limits while calm (see `familiar`).
#[map]
pub static FAMILIAR: LruHashMap<[u8; 16], filter_common::abi::Familiar> =
    LruHashMap::with_max_entries(filter_common::abi::FAMILIAR_ENTRIES, 0);

/// Per CPU: strict engaged by the program itself, per class (see `trigger`).
#[map]
pub static TRIGGER: PerCpuArray<TriggerState> = PerCpuArray::with_max_entries(1, 0);

/// Flood signatures, and per CPU the packets each dropped (see `signature`).
#[map]
pub static SIGNATURES: Array<FloodSignature> = Array::with_max_entries(SIGNATURE_SLOTS, 0);
#[map]
pub static SIGNATURE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SIGNATURE_SLOTS, 0);

/// Per CPU: room to build a SYN-ACK and read a SYN's options, off the program's small stack.
#[repr(C)]
pub struct Scratch {
    pub handover: crate::cookie::Handover,
    /// The per-source stage sighted a source since the last clean datagram took it (see
    /// `familiar`).
    pub sighted: u32,
    pub synack: SynAckBuf,
    pub opts: OptionsBuf,
    pub found: OptionsFound,
}

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: the SYN the cookie program answers, off its stack (which also holds a log
/// record's frame when the kernel refuses a cookie).
#[map]
pub static COOKIE_PKT: PerCpuArray<filter_common::parse::IpPacket> =
    PerCpuArray::with_max_entries(1, 0);

/// Slots: 0 the SYN-cookie program, 1 the no-cookie stages, 2 fragments, 3 the program while
/// strict's trigger holds, 4 flood signatures; reached by tail call (filled by the loader).
#[map]
pub static TAIL_CALLS: ProgramArray = ProgramArray::with_max_entries(5, 0);

/// Per CPU: the packet `levee_fragment` or `levee_signature` judges, parsed off its stack
/// (the later stages' frames and the parser's would not fit beside it).
#[map]
pub static FRAG_PKT: PerCpuArray<filter_common::parse::IpPacket> =
    PerCpuArray::with_max_entries(1, 0);

/// Fragmented datagrams whose first fragment passed under strict: their later fragments pass.
#[map]
pub static FRAGMENTS: LruHashMap<filter_common::abi::FragKey, u64> =
    LruHashMap::with_max_entries(filter_common::abi::FRAGMENT_ENTRIES, 0);

/// Per CPU and kind of rare event: when one was last logged (see `diag`). Never pinned.
#[map]
pub static LOG_LIMIT: PerCpuArray<crate::diag::LogLimit> =
    PerCpuArray::with_max_entries(crate::diag::kind::COUNT, 0);
