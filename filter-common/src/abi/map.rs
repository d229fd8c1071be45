//! Map names, declared once. The kernel keeps 15 characters of a map name.

pub const CONFIG: &str = "CONFIG";
pub const ALLOW_V4: &str = "ALLOW_V4";
pub const ALLOW_V6: &str = "ALLOW_V6";
pub const BLOCK_V4: &str = "BLOCK_V4";
pub const BLOCK_V6: &str = "BLOCK_V6";
pub const AMP_PORTS: &str = "AMP_PORTS";
/// Sources whose slot of SOURCE_SLOTS another source holds (LRU, sized by
/// `sources.max_tracked`).
pub const SOURCES: &str = "SOURCES";
/// Per slot, a tracked source and its state ([`super::SourceSlot`]); looked up first.
pub const SOURCE_SLOTS: &str = "SOURCE_SLOTS";
/// Per CPU: [slots given to a new source, of them slots that were free]. Slots are never
/// freed, only given on, so the second summed is how many are held.
pub const SLOTS_GIVEN: &str = "SLOTS_GIVEN";
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
/// Per CPU: [sources the program gave a slot or a SOURCES entry, sources left untracked
/// because the bucket of new entries was empty]. The kernel keeps no count of an LRU table
/// and it only loses entries to eviction, so min(added - slots given, capacity) is its size.
pub const SOURCES_ADDED: &str = "SOURCES_ADDED";
/// Per CPU: [sources the program added to FAMILIAR, sightings it left unrecorded because
/// the bucket of new entries was empty (`strict.familiar_max_new_per_sec`)].
pub const FAMILIAR_ADDED: &str = "FAMILIAR_ADDED";
/// Flows the host started or answered, recorded by the egress program (LRU).
pub const FLOWS: &str = "FLOWS";
/// Per slot, the flow the egress program last recorded there ([`super::FlowCacheEntry`]).
pub const FLOW_CACHE: &str = "FLOW_CACHE";
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
/// Per CPU: what BLOCK_V4 answered for IPv4 sources, by slot ([`super::BlockedV4`]); never
/// pinned.
pub const BLOCKED_V4: &str = "BLOCKED_V4";
/// The lists' generation: the controller adds one after every change to a list, which
/// makes every BLOCKED_V4 record stale; never pinned.
pub const LIST_GENERATION: &str = "LIST_GENERATION";
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
pub const ALL: [&str; 24] = [
    CONFIG,
    ALLOW_V4,
    ALLOW_V6,
    BLOCK_V4,
    BLOCK_V6,
    AMP_PORTS,
    SOURCES,
    SOURCE_SLOTS,
    SLOTS_GIVEN,
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
    FAMILIAR_ADDED,
    SERVICES_V4,
    SERVICES_V6,
    SVC_BUDGET,
    LIST_SUMMARY,
];
