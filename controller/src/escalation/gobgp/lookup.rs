//! Where Levee's paths are looked for in gobgpd's RIB.

use ipnet::IpNet;

use super::{api, family};
use crate::escalation::Rule;
use api::Family;

/// Where Levee's paths are looked for in gobgpd's RIB. A unicast family is asked only for
/// these prefixes, so a full table is never read (gobgpd answers an exact prefix from its
/// map); FlowSpec families are read whole, as gobgpd cannot filter them (a neighbour's share
/// of them is bounded by its max-prefix).
#[derive(Clone, Debug)]
pub enum Lookup {
    /// Exactly these prefixes: the rules' destinations.
    Exact(Vec<IpNet>),
    /// Every prefix within these (an earlier run's leftovers, in the protected prefixes).
    Within(Vec<IpNet>),
}

impl Lookup {
    /// Where the paths of `rules` are.
    pub fn of<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Lookup {
        Lookup::Exact(
            rules
                .into_iter()
                .filter_map(|r| match r {
                    Rule::Rtbh { dst } => Some(IpNet::from(*dst)),
                    Rule::FlowSpec(_) | Rule::SourceBlock { .. } => None,
                })
                .collect(),
        )
    }

    /// What to ask of `family`: None to skip it (no prefix of that family to look up).
    pub(super) fn asks(&self, family: Family) -> Option<Vec<api::TableLookupPrefix>> {
        if family.safi != family::Safi::Unicast as i32 {
            return Some(Vec::new());
        }
        let v6 = family.afi == family::Afi::Ip6 as i32;
        let (nets, kind) = match self {
            Lookup::Exact(n) => (n, api::table_lookup_prefix::Type::Exact),
            Lookup::Within(n) => (n, api::table_lookup_prefix::Type::Longer),
        };
        let asked: Vec<api::TableLookupPrefix> = nets
            .iter()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .map(|n| api::TableLookupPrefix {
                prefix: n.to_string(),
                r#type: kind as i32,
            })
            .collect();
        (!asked.is_empty()).then_some(asked)
    }
}
