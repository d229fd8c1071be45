//! What only the controller knows of a stage's say: who set a list entry and why, and each
//! class's attack state. No stage's decision depends on it (the decisions come from the maps,
//! read as the program reads them); [`NoBooks`] explains from the maps alone, as the program
//! tests do.

use std::net::IpAddr;

use filter_common::abi::Class;
use ipnet::IpNet;

use crate::controller::{Controller, lists::Setter};

/// The list entry covering an address, as the controller keeps it.
pub struct Entry {
    pub net: IpNet,
    /// config (named in the config file), file (in one of its list files), cli, detection,
    /// adopted.
    pub origins: Vec<String>,
    /// The operator's reason for a block.
    pub note: Option<String>,
}

/// A class's attack state as detection sees it.
pub struct Attack {
    pub state: &'static str,
    pub under_attack: bool,
    pub baseline_pps: u64,
    pub age_secs: Option<u64>,
}

pub trait Books {
    fn allow_entry(&self, ip: IpAddr) -> Option<Entry>;
    fn block_entry(&self, ip: IpAddr) -> Option<Entry>;
    fn attack(&self, class: Class) -> Option<Attack>;
}

/// Nothing beyond the maps.
pub struct NoBooks;

impl Books for NoBooks {
    fn allow_entry(&self, _: IpAddr) -> Option<Entry> {
        None
    }
    fn block_entry(&self, _: IpAddr) -> Option<Entry> {
        None
    }
    fn attack(&self, _: Class) -> Option<Attack> {
        None
    }
}

fn config_or_file(in_config: bool) -> String {
    if in_config { "config" } else { "file" }.to_string()
}

impl Books for Controller {
    fn allow_entry(&self, ip: IpAddr) -> Option<Entry> {
        let (net, a) = self.lists.allow_covering(ip)?;
        let mut origins = Vec::new();
        if a.config {
            origins.push(config_or_file(self.settings.lists.allow.contains(&net)));
        }
        if a.cli {
            origins.push("cli".to_string());
        }
        if a.adopted {
            origins.push("adopted".to_string());
        }
        Some(Entry {
            net,
            origins,
            note: None,
        })
    }

    fn block_entry(&self, ip: IpAddr) -> Option<Entry> {
        let (net, block) = self.lists.block_covering(ip)?;
        let mut origins = Vec::new();
        if block.config {
            origins.push(config_or_file(self.settings.lists.block.contains(&net)));
        }
        if let Some(o) = &block.operator {
            origins.push(
                match o.by {
                    Setter::Cli => "cli",
                    Setter::Detection => "detection",
                    Setter::Adopted => "adopted",
                }
                .to_string(),
            );
        }
        Some(Entry {
            net,
            origins,
            note: block.operator.as_ref().and_then(|o| o.reason.clone()),
        })
    }

    fn attack(&self, class: Class) -> Option<Attack> {
        let state = self.engine.state(class);
        Some(Attack {
            state: state.name(),
            under_attack: state != crate::engine::AttackState::Normal,
            baseline_pps: self.engine.baseline_pps(class),
            age_secs: self.engine.attack_age(class).map(|d| d.as_secs()),
        })
    }
}
