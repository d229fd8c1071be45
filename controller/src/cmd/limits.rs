//! `levee limits show|set`: per-source limits and aggregate ceilings by class.

use std::io::Write;

use anyhow::Result;
use filter_common::{abi::Class, config::Rate};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Command;
use crate::{
    api::{
        views::{LimitsView, RateView},
        wire,
    },
    cli::{parsers::class, print::Print as _},
    config::{PerClass, check_rate},
    controller::Controller,
};

/// `levee limits show [--json]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsShow {
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

impl Command for LimitsShow {
    type View = LimitsView;
    fn apply(self, c: &mut Controller) -> Result<LimitsView> {
        Ok(show(c))
    }
    fn print(&self, view: &LimitsView, out: &mut dyn Write) -> Result<()> {
        Ok(view.print(out)?)
    }
    fn json(&self) -> bool {
        self.json
    }
}

/// `levee limits set`: a change of the per-source limits (or, with `aggregate`, the
/// ceilings) of one class, or of all classes when `class` is None. Absent values stay as
/// they are; 0 removes a limit.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsChange {
    /// tcp_syn, tcp_other, udp, icmp or other; all classes when absent.
    #[arg(long, value_parser = class)]
    #[serde(default, with = "wire::opt_class")]
    pub class: Option<Class>,
    /// Set the aggregate ceiling (all sources together) instead of the per-source limit.
    #[arg(long)]
    #[serde(default)]
    pub aggregate: bool,
    /// Packets per second.
    #[arg(long)]
    pub pps: Option<u64>,
    /// Bits per second.
    #[arg(long)]
    pub bps: Option<u64>,
    /// Packets allowed at once after an idle time.
    #[arg(long)]
    pub burst: Option<u64>,
}

impl Command for LimitsChange {
    fn changes(&self) -> bool {
        true
    }
    type View = LimitsView;
    fn apply(self, c: &mut Controller) -> Result<LimitsView> {
        set(c, self)
    }
    fn print(&self, view: &LimitsView, out: &mut dyn Write) -> Result<()> {
        Ok(view.print(out)?)
    }
    fn check(&self) -> Result<()> {
        if self.pps.is_none() && self.bps.is_none() && self.burst.is_none() {
            anyhow::bail!("nothing to set: give --pps, --bps or --burst");
        }
        Ok(())
    }
}

fn show(c: &Controller) -> LimitsView {
    let table = |rates: &PerClass<Rate>| {
        rates
            .iter()
            .map(|(class, r)| {
                let view = RateView {
                    pps: r.pps,
                    burst: r.burst_packets,
                    bps: r.bits_per_sec,
                    burst_bytes: r.burst_bytes,
                };
                (class.name().to_string(), view)
            })
            .collect()
    };
    LimitsView {
        per_source: table(&c.settings.filter.limits),
        aggregate: table(&c.settings.filter.aggregate),
    }
}

/// Changes one class (or every class); absent values stay as they are.
fn set(c: &mut Controller, change: LimitsChange) -> Result<LimitsView> {
    change.check()?;
    let LimitsChange {
        class,
        aggregate,
        pps,
        bps,
        burst,
    } = change;
    let classes = match class {
        Some(c) => vec![c],
        None => Class::ALL.to_vec(),
    };
    let section = if aggregate { "aggregate" } else { "limits" };
    let mut table = if aggregate {
        c.settings.filter.aggregate
    } else {
        c.settings.filter.limits
    };
    for class in &classes {
        let rate = &mut table[*class];
        rate.pps = pps.unwrap_or(rate.pps);
        rate.bits_per_sec = bps.unwrap_or(rate.bits_per_sec);
        rate.burst_packets = burst.unwrap_or(rate.burst_packets);
        check_rate(&format!("{section}.{}", class.name()), rate)?;
    }
    let slot = if aggregate {
        &mut c.settings.filter.aggregate
    } else {
        &mut c.settings.filter.limits
    };
    let before = std::mem::replace(slot, table);
    if let Err(e) = c.write_config() {
        let slot = if aggregate {
            &mut c.settings.filter.aggregate
        } else {
            &mut c.settings.filter.limits
        };
        *slot = before;
        return Err(e);
    }
    c.limits_from_cli = true;
    let names: Vec<_> = classes.iter().map(|c| c.name()).collect();
    info!(aggregate, classes = ?names, pps, bps, burst, "limits set");
    Ok(show(c))
}
