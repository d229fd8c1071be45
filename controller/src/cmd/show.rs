//! `levee status`, `levee stats`, `levee top`: views of what the controller keeps. None of
//! them walks a list or a table, so they answer at once whatever the list sizes.

use std::io::Write;

use anyhow::{Result, bail};
use filter_common::abi::{Action, Class, Reason};
use serde::{Deserialize, Serialize};

use super::Command;
use crate::{
    api::views::{CounterView, InterfaceView, SourcesView, StatusView, StrictView, TalkerView},
    cli::print::Print as _,
    controller::Controller,
    services::ServiceView,
};

/// A command that only reads a view, printed as a table or, with `--json`, as JSON.
macro_rules! view_command {
    ($(#[$meta:meta])* $name:ident => $view:ty, $apply:expr) => {
        $(#[$meta])*
        #[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[arg(long)]
            #[serde(skip)]
            pub json: bool,
        }

        impl Command for $name {
            type View = $view;
            fn apply(self, c: &mut Controller) -> Result<$view> {
                $apply(c)
            }
            fn print(&self, view: &$view, out: &mut dyn Write) -> Result<()> {
                Ok(view.print(out)?)
            }
            fn json(&self) -> bool {
                self.json
            }
        }
    };
}

view_command!(
    /// `levee status`.
    Status => StatusView, |c: &mut Controller| status(c)
);
view_command!(
    /// `levee stats`.
    Stats => Vec<CounterView>, |c: &mut Controller| stats(c)
);
view_command!(
    /// `levee services`.
    Services => Vec<ServiceView>, |c: &mut Controller| Ok(services(c))
);

/// `levee top`: the heaviest sources of the last seconds, from sampled headers.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Top {
    /// How many sources.
    #[arg(long, default_value_t = 20)]
    pub n: usize,
    /// Print once and exit (always the case with --json or when not on a terminal).
    #[arg(long)]
    #[serde(skip)]
    pub once: bool,
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

impl Command for Top {
    type View = Vec<TalkerView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<TalkerView>> {
        top(c, self.n)
    }
    fn print(&self, view: &Vec<TalkerView>, out: &mut dyn Write) -> Result<()> {
        Ok(view.print(out)?)
    }
    fn json(&self) -> bool {
        self.json
    }
}

/// Starts a capture: the answer line, then the packets as a pcapng stream until the capture
/// ends, served by the control socket itself (`server::control`), never through `apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub spec: crate::capture::CaptureSpec,
}

impl Command for Capture {
    type View = ();
    fn apply(self, _: &mut Controller) -> Result<()> {
        bail!("a capture is served as a stream")
    }
    fn print(&self, _: &(), _: &mut dyn Write) -> Result<()> {
        Ok(())
    }
}

fn status(c: &Controller) -> Result<StatusView> {
    let stats = stats(c)?;
    let packets = stats.iter().map(|s| s.packets).sum();
    let dropped = stats
        .iter()
        .filter(|s| s.action == Action::Drop.name())
        .map(|s| s.packets)
        .sum();
    Ok(StatusView {
        mode: c.mode.effective(),
        mode_set_by: c.mode.set_by_name().to_string(),
        interfaces: c
            .fleet
            .interfaces
            .iter()
            .map(|i| InterfaceView {
                name: i.name.clone(),
                attach: i.attached.name().to_string(),
            })
            .collect(),
        uptime_secs: c.started.elapsed().as_secs(),
        blocklist_entries: c.lists.block_count() as u64,
        allowlist_entries: c.lists.allow_count() as u64,
        packets,
        dropped,
        rates: c.telemetry.rates(),
        attack: Class::ALL
            .iter()
            .map(|k| (k.name().to_string(), c.engine.state(*k).name().to_string()))
            .collect(),
        baseline_pps: Class::ALL
            .iter()
            .map(|k| (k.name().to_string(), c.engine.baseline_pps(*k)))
            .collect(),
        decisions: c
            .decisions
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect(),
        strict: StrictView {
            mode: c.settings.strict.mode.name().to_string(),
            engaged: c.strict.engaged,
            udp_budget: c.strict.udp_budget,
            triggered: c
                .strict
                .trigger
                .held
                .iter()
                .map(|class| class.name().to_string())
                .collect(),
            signatures: c.flood.book.view(std::time::Instant::now()),
            services: c.strict.services.len(),
            services_left_out: c.strict.left_out,
            kernel: c
                .strict
                .kernel
                .as_ref()
                .map(|k| k.view())
                .unwrap_or_default(),
        },
        sources: SourcesView {
            gate_window_ms: c.gate.window_secs() * 1e3,
            gate_threshold: c.gate.threshold,
            tracked_above_pps: c.gate.tracked_above_pps() as u64,
            cpu_pps: c.gate_pps as u64,
            narrowed: c.gate != c.configured_gate(),
            refused: c
                .fleet
                .interfaces
                .iter()
                .map(|i| i.dp.sources_refused())
                .sum::<Result<u64>>()?,
        },
        top_reasons: stats
            .into_iter()
            .filter(|s| s.action != Action::Pass.name())
            .take(5)
            .collect(),
        neighbors: c
            .bgp
            .as_ref()
            .map(|u| u.neighbors_view())
            .unwrap_or_default(),
    })
}

/// Counters by (action, reason), summed over interfaces and classes, largest first.
fn stats(c: &Controller) -> Result<Vec<CounterView>> {
    let mut sums = vec![(0u64, 0u64); Action::COUNT * Reason::COUNT];
    for (_, counters) in c.fleet.counters()? {
        for (action, reason, _, v) in counters.non_zero() {
            let slot = &mut sums[action as usize * Reason::COUNT + reason as usize];
            slot.0 += v.packets;
            slot.1 += v.bytes;
        }
    }
    let mut out: Vec<CounterView> = sums
        .into_iter()
        .enumerate()
        .filter(|(_, (packets, _))| *packets > 0)
        .map(|(i, (packets, bytes))| CounterView {
            action: Action::ALL[i / Reason::COUNT].name().to_string(),
            reason: Reason::ALL[i % Reason::COUNT].name().to_string(),
            packets,
            bytes,
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.packets));
    Ok(out)
}

fn top(c: &Controller, n: usize) -> Result<Vec<TalkerView>> {
    let every = c.settings.events.sample_every;
    if every == 0 {
        bail!("sampling is off (events.sample_every = 0): top has nothing to rank");
    }
    Ok(c.telemetry.top.top(n))
}

/// The services the program knows, with their origin.
fn services(c: &Controller) -> Vec<ServiceView> {
    crate::services::view(&c.strict.services)
}
