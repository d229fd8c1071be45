//! What `levee escalate list` shows: the rules Levee announces and the ones it received.

use serde::{Deserialize, Serialize};

use super::{Audience, Rule};

/// Who asked for a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Operator,
    Detection,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Operator => "operator",
            Origin::Detection => "detection",
        }
    }
}

/// One rule as `levee escalate` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    /// 0 for a dry run (nothing is held).
    pub id: u32,
    pub rule: Rule,
    /// The neighbour group(s) it goes to.
    #[serde(default)]
    pub to: Audience,
    pub by: Origin,
    pub ttl_left_secs: u64,
    /// The rule as gobgpd's RIB holds it, read back; None when it is not there.
    #[serde(default)]
    pub in_rib: Option<String>,
    /// Sent to gobgpd, which has not confirmed it yet.
    #[serde(default)]
    pub announce_pending: bool,
    /// Its withdrawal is under way and gobgpd has not confirmed it yet: it may still be
    /// announced (retried until confirmed).
    #[serde(default)]
    pub withdraw_pending: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// `levee escalate list`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EscalationsView {
    pub mode: String,
    /// Which gobgpd carries the rules.
    pub speaker: String,
    pub rules: Vec<RuleView>,
    /// Paths marked as Levee's in the RIB that no rule holds (withdrawn at the next check).
    pub stray: Vec<String>,
    /// Why gobgpd's RIB could not be read (the rules are then shown from Levee's books).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rib_error: Option<String>,
    /// FlowSpec rules received from the neighbours (escalation.accept_flowspec), as last read.
    #[serde(default)]
    pub received: Vec<ReceivedView>,
}

/// A FlowSpec rule a neighbour sent, and what Levee made of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedView {
    /// The rule as gobgpd prints it.
    pub rule: String,
    pub neighbor: String,
    /// enforced, skipped (a component or action Levee cannot enforce exactly, or no room
    /// left in the program's table), ignored (outside escalation.protected_prefixes),
    /// refused (wider than escalation.received_min_prefix_v4/v6) or expired (its sender's
    /// time for it ran out).
    pub state: String,
    /// What the program enforces, or why not.
    pub detail: String,
    /// How long its sender still holds it, when the sender is a Levee (which says so);
    /// the rule is expired, not enforced, once this is 0.
    #[serde(default)]
    pub ttl_left_secs: Option<u64>,
}

/// One BGP neighbour in `levee status`: its group, what Levee sends that group, and the rules
/// it sent with how long their senders still hold them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborView {
    pub address: String,
    /// upstream or fleet; empty for a neighbour of the operator's own gobgpd (not in the
    /// config: seen only by the rules it sent).
    pub role: String,
    /// Levee's own rules its group is sent now.
    pub sent: usize,
    /// The rules it sent, and how many of them the program enforces.
    pub received: usize,
    pub enforced: usize,
    /// The soonest and the latest end of those rules, seconds from now, as their senders
    /// said (Levee nodes say; other routers do not).
    pub ends_in_secs: Option<(u64, u64)>,
}
