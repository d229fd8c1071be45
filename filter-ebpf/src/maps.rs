//! Every map of the program. Sizes here are defaults; the loader resizes SOURCES and EVENTS.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use filter_common::abi::{
    AMP_PORT_WORDS, AllowEntry, BlockEntry, COUNTER_ENTRIES, Config, Counter, CpuState,
    DEFAULT_EVENT_BYTES, DEFAULT_MAX_SOURCES, LIST_ENTRIES, OFFENCE_BYTES, SourceKey, SourceState,
};

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

/// Bitmap of UDP source ports dropped by the amplification signature.
#[map]
pub static AMP_PORTS: Array<u64> = Array::with_max_entries(AMP_PORT_WORDS, 0);

#[map]
pub static SOURCES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);

/// Entries added to SOURCES, per CPU (see `filter_common::abi::map::SOURCES_ADDED`).
#[map]
pub static SOURCES_ADDED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

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

/// Records lost to a full ring, per CPU: [offences, samples].
#[map]
pub static EVENTS_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(2, 0);
