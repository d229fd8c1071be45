//! `[escalation.fleet]` and the neighbours' roles: what one Levee shares with the rest of its
//! fleet through the operator's route reflectors, apart from what goes to the upstream
//! providers. Each group has its neighbours, its communities and its limits.

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

use super::{Community, parse_community};

/// What a neighbour is to Levee.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// A transit provider or the edge router: asked to drop what fills the link.
    #[default]
    Upstream,
    /// A route reflector of the fleet: every other node learns this node's rules through it.
    Fleet,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Upstream => "upstream",
            Role::Fleet => "fleet",
        }
    }
}

pub fn parse_role(s: &str) -> Result<Role> {
    match s {
        "upstream" => Ok(Role::Upstream),
        "fleet" => Ok(Role::Fleet),
        _ => bail!("{s:?}: expected upstream or fleet"),
    }
}

/// The fleet's group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetSettings {
    /// Detection's rules and its blocks of verified offenders go to the fleet. On by default
    /// once a neighbour has role "fleet"; an operator's own gobgpd (no neighbours here) needs
    /// `share = true`.
    pub share: bool,
    /// Standard communities the managed gobgpd adds to every rule it sends the fleet, beside
    /// Levee's own mark (so the route reflector's policy can match them).
    pub communities: Vec<Community>,
    /// Rules shared at once, at most (apart from escalation.max_active, the upstream's).
    pub max_active: u32,
    /// Rules shared in any minute, at most.
    pub max_per_minute: u32,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            share: false,
            communities: Vec::new(),
            max_active: 256,
            max_per_minute: 120,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    pub share: Option<bool>,
    pub communities: Option<Vec<String>>,
    pub max_active: Option<u32>,
    pub max_per_minute: Option<u32>,
}

/// Validates `[escalation.fleet]` into `out`; `has_fleet_neighbor` turns sharing on unless
/// the file says otherwise. Errors name the field.
pub(super) fn apply(
    f: Option<FleetFile>,
    has_fleet_neighbor: bool,
    out: &mut FleetSettings,
) -> Result<()> {
    out.share = has_fleet_neighbor;
    let Some(f) = f else { return Ok(()) };
    out.share = f.share.unwrap_or(out.share);
    if let Some(cs) = f.communities {
        out.communities = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                parse_community(c)
                    .map_err(|e| anyhow!("field escalation.fleet.communities[{i}]: {e:#}"))
            })
            .collect::<Result<_>>()?;
    }
    out.max_active = f.max_active.unwrap_or(out.max_active);
    out.max_per_minute = f.max_per_minute.unwrap_or(out.max_per_minute);
    if out.max_active == 0 || out.max_per_minute == 0 {
        bail!("field escalation.fleet.max_active and max_per_minute: must be at least 1");
    }
    Ok(())
}
