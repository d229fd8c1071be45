//! `levee limits show|set`: per-source limits and aggregate ceilings by class.

use anyhow::Result;
use filter_common::{abi::Class, config::Rate};
use tracing::info;

use crate::{
    api::{
        LimitsChange,
        views::{LimitsView, RateView},
    },
    config::{PerClass, check_rate},
    controller::Controller,
};

pub fn show(c: &Controller) -> LimitsView {
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
pub fn set(c: &mut Controller, change: LimitsChange) -> Result<LimitsView> {
    let LimitsChange {
        class,
        aggregate,
        pps,
        bps,
        burst,
    } = change;
    if pps.is_none() && bps.is_none() && burst.is_none() {
        anyhow::bail!("nothing to set: give --pps, --bps or --burst");
    }
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
