//! What the daemon answers, defined once: the daemon builds these, the CLI prints them, the
//! demo and the tests read them. Field names are the stable JSON of `--json` (fields may be
//! added, never renamed).

use std::collections::BTreeMap;

use filter_common::abi::Mode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::wire;

/// A prefix, as CIDR text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Prefix(#[serde(with = "wire::cidr")] pub IpNet);

/// A mode, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeName(#[serde(with = "wire::mode")] pub Mode);

/// A blocklist entry as `levee block list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockView {
    pub cidr: Prefix,
    /// Seconds left, or null for a block without TTL.
    pub ttl_secs: Option<u64>,
    /// The operator's note, `config` for entries from the config, `detection: ...` for the
    /// engine's; null when none was given.
    pub reason: Option<String>,
}

/// Counters of one (action, reason) pair, all interfaces and classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CounterView {
    pub action: String,
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
}

/// One rate limit; 0 means no limit on that dimension.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateView {
    pub pps: u64,
    pub burst: u64,
    pub bps: u64,
    pub burst_bytes: u64,
}

/// `levee limits show`: per class name, in class order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LimitsView {
    pub per_source: BTreeMap<String, RateView>,
    pub aggregate: BTreeMap<String, RateView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceView {
    pub name: String,
    /// `native`, `generic` or `adopted` (a link pinned by an earlier run).
    pub attach: String,
}

/// Packets and bits per second over the last interval, passed (including would-be drops in
/// monitor mode) and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RatesView {
    pub pass_pps: u64,
    pub pass_bps: u64,
    pub drop_pps: u64,
    pub drop_bps: u64,
}

/// `levee status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    #[serde(with = "wire::mode")]
    pub mode: Mode,
    /// Who set the mode in force: `config`, `cli` or `detection`.
    pub mode_set_by: String,
    pub interfaces: Vec<InterfaceView>,
    pub uptime_secs: u64,
    pub blocklist_entries: u64,
    pub allowlist_entries: u64,
    pub packets: u64,
    pub dropped: u64,
    pub rates: RatesView,
    /// Attack state per class: normal, under_attack, recovering.
    pub attack: BTreeMap<String, String>,
    /// Learned baseline per class, packets/s.
    pub baseline_pps: BTreeMap<String, u64>,
    /// Decisions the detection engine took, by kind.
    pub decisions: BTreeMap<String, u64>,
    pub top_reasons: Vec<CounterView>,
    pub strict: StrictView,
    pub sources: SourcesView,
    /// The BGP neighbours (escalation), with the rules each group is sent and each sent.
    #[serde(default)]
    pub neighbors: Vec<crate::escalation::views::NeighborView>,
}

/// The per-source stage in `levee status`: the sketch gate in force and the table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcesView {
    pub gate_window_ms: f64,
    pub gate_threshold: u32,
    /// A steady source above this rate on one CPU gets per-source state.
    pub tracked_above_pps: u64,
    /// The highest rate one CPU saw in the last interval, which sized the gate.
    pub cpu_pps: u64,
    /// The gate is narrower than the config's (a high rate per CPU).
    pub narrowed: bool,
    /// Sources the gate let through but the budget of new entries left untracked.
    pub refused: u64,
}

/// Strict mode in `levee status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrictView {
    /// off, auto or always.
    pub mode: String,
    /// Dropping what no service or flow accounts for, SYNs answered with cookies.
    pub engaged: bool,
    /// Unknown UDP sources share their service's budget.
    pub udp_budget: bool,
    /// Classes whose flood made the program engage strict by itself on some CPU, now (it
    /// holds a second past the flood's last excess).
    #[serde(default)]
    pub triggered: Vec<String>,
    /// Flood signatures in force (see `levee signatures`).
    #[serde(default)]
    pub signatures: Vec<crate::signatures::SignatureView>,
    pub services: usize,
    /// Services the tables had no room for (their ports get `no_service`).
    #[serde(default)]
    pub services_left_out: usize,
    /// The kernel settings the SYN cookies need, and what they were before Levee.
    pub kernel: Vec<crate::services::kernel::SettingView>,
}

/// One source of `levee top`, rates estimated from samples (sampled count x N / seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TalkerView {
    pub source: std::net::IpAddr,
    pub class: String,
    pub pps: u64,
    pub bits_per_sec: u64,
    /// Share of its sampled packets that were dropped (or would be, in monitor mode), in %.
    pub dropped_pct: u8,
}

/// `levee explain`: the verdict a packet would get now on each interface, and every stage's
/// say, read from the program's maps and annotated with what the controller knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainView {
    pub source: std::net::IpAddr,
    /// The destination; null when not given.
    pub dst: Option<std::net::IpAddr>,
    /// IP protocol number; null when not given.
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub syn: bool,
    /// The packet's class; null without a protocol.
    pub class: Option<String>,
    /// live (the host is sending to it on a connection now: detection never blocklists it),
    /// verified (the host held a TCP connection with it: its offences may get it
    /// blocklisted) or unverified (they stay penalties in their class).
    pub verification: String,
    /// Seconds since the host last sent on a connection with the source, when verified.
    pub verified_secs_ago: Option<u64>,
    /// Seconds since the source last sent UDP within its limits while calm, when familiar
    /// (during a spread UDP flood it passes before the unknown sources' budget).
    #[serde(default)]
    pub familiar_secs_ago: Option<u64>,
    pub interfaces: Vec<InterfaceExplain>,
}

/// The verdict on one interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceExplain {
    pub interface: String,
    #[serde(with = "wire::mode")]
    pub mode: filter_common::abi::Mode,
    /// pass, drop or would_drop (monitor mode).
    #[serde(with = "wire::named")]
    pub action: filter_common::abi::Action,
    /// The counter's reason: clean when nothing objects.
    #[serde(with = "wire::named")]
    pub reason: filter_common::abi::Reason,
    /// The stage that decides (or `mode`, for mode off); null when none objects.
    pub decided_by: Option<String>,
    /// Stages before the decision whose say depends on a detail not given: the verdict holds
    /// unless one of them objects first.
    pub unless: Vec<String>,
    /// Every stage, in the program's order.
    pub stages: Vec<StageView>,
}

/// What one stage's say comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It gives the verdict.
    Decides,
    /// It lets the packet on.
    Passes,
    /// Its say depends on `depends_on`, details not given.
    Depends,
    /// An earlier stage decided; `say` is what it holds all the same.
    NotReached,
}

impl Outcome {
    /// As JSON shows it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Decides => "decides",
            Outcome::Passes => "passes",
            Outcome::Depends => "depends",
            Outcome::NotReached => "not_reached",
        }
    }
}

/// One stage's say.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    /// The stage (`filter_common::abi::Stage`): bgp session, allowlist, lockdown, blocklist,
    /// signatures, strict, per_source, aggregate, received.
    #[serde(with = "wire::named")]
    pub stage: filter_common::abi::Stage,
    pub outcome: Outcome,
    /// The reason it objects with (or would, for `depends` and `not_reached`).
    #[serde(
        default,
        with = "wire::opt_named",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<filter_common::abi::Reason>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    pub say: String,
    /// Allowlist and blocklist: the prefix that matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<Prefix>,
    /// Allowlist and blocklist: who set the entry: config, file, cli, detection, adopted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    /// Blocklist: the operator's or detection's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Blocklist: seconds left of a timed entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Per-source: whether the source has an entry in the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<bool>,
    /// Per-source: seconds of penalty left, by class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub penalty_secs: BTreeMap<String, u64>,
    /// Per-source: packets left in the class's bucket now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offences: Option<u32>,
    /// Aggregate: the class's attack state (normal, under_attack, recovering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<String>,
    /// Aggregate: seconds since the class's attack was declared (under attack or recovering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_secs: Option<u64>,
    /// Aggregate: the class's ceiling, all CPUs; null for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling_pps: Option<u64>,
}

impl StageView {
    /// A stage's say, with nothing else known yet.
    pub fn new(stage: filter_common::abi::Stage, say: String) -> StageView {
        StageView {
            stage,
            outcome: Outcome::Passes,
            reason: None,
            depends_on: Vec::new(),
            say,
            entry: None,
            origins: Vec::new(),
            note: None,
            ttl_secs: None,
            tracked: None,
            penalty_secs: BTreeMap::new(),
            tokens: None,
            offences: None,
            attack: None,
            attack_secs: None,
            ceiling_pps: None,
        }
    }
}
