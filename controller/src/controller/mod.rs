//! The controller: everything `levee run` owns and decides, behind one synchronous type that
//! answers one call at a time (the [`crate::server`] serializes calls onto its thread). Each
//! part has its own room:
//!
//! - `auto_escalation`: rules upstream when an attack fills the link (escalation.auto);
//! - `sharing`: detection's rules and blocks sent to the fleet (escalation.fleet.share);
//! - `capture`: `levee capture`, one at a time, never waiting on its client;
//! - `claim`: one daemon per interface;
//! - `events`: offences and samples drained from the program's rings;
//! - [`fleet`]: the interfaces, written all-or-nothing;
//! - `gate`: the sketch gate sized for the rate of one CPU;
//! - [`lists`]: every list entry and where it came from, with its expiry;
//! - [`mode`]: who owns the mode (operator or detection);
//! - [`persist`]: the state file;
//! - `start`: the final state computed first (config, state file, adopted maps), then written;
//! - `stop`: detach (or keep, with keep_on_exit), then withdraw upstream within a bounded wait;
//! - [`response`]: what the detection engine's decisions do;
//! - `signatures`: flood signatures mined from samples, kept in step with the program;
//! - [`strict`]: when strict is engaged, the services the program knows, kernel settings;
//! - [`telemetry`]: rates, events drained from the ring, top talkers, metrics;
//! - [`verified`]: who may be blocked (only sources the host held a connection with).
//!
//! The commands themselves live in [`crate::cmd`], one file per family.

mod auto_escalation;
mod capture;
mod claim;
mod events;
pub mod familiar;
pub mod fleet;
mod gate;
pub mod lists;
pub mod mode;
pub mod persist;
pub mod response;
mod sharing;
mod signatures;
mod start;
mod stop;
pub mod strict;
pub mod telemetry;
pub mod trigger;
pub mod verified;

use std::{collections::BTreeMap, path::PathBuf, time::Instant};

use anyhow::Result;
use tracing::{error, info, warn};

use crate::{
    api::{Request, Response},
    config::{self, DaemonSettings, PerClass, Settings},
    dataplane::{List, monotonic_coarse_ns},
    engine::Engine,
    escalation::bgp::{ReceivedNews, Reply},
    metrics::SharedMetrics,
};
use fleet::Fleet;
use lists::{Block, ListBook};
use mode::{ModeOwner, SetBy};
pub(crate) use start::read_list_settings;
use telemetry::Telemetry;

pub struct Controller {
    /// The config file's settings, with what only a restart changes kept from the start, and
    /// limits set through the CLI applied (`limits_from_cli`).
    pub(crate) settings: Settings,
    config_path: Option<PathBuf>,
    pub(crate) fleet: Fleet,
    pub(crate) lists: ListBook,
    pub(crate) mode: ModeOwner,
    pub(crate) limits_from_cli: bool,
    pub(crate) engine: Engine,
    /// Decisions of the engine so far, by kind.
    pub(crate) decisions: BTreeMap<&'static str, u64>,
    /// Per-source limit scale per class, set by the engine while a class is under attack.
    pub(crate) limit_scale: PerClass<f64>,
    pub(crate) telemetry: Telemetry,
    pub(crate) started: Instant,
    last_tick: Instant,
    cpus: u32,
    /// The state file is out of date (see [`Controller::save_state_soon`]).
    state_dirty: bool,
    /// Offences drained since the last tick, for the engine (see `judge_offences`).
    pending_offences: Vec<(std::net::IpAddr, filter_common::abi::Class)>,
    /// Offences judged calm in the last seconds (see `rejudge_calm_offences`).
    calm_offences: Vec<(Instant, std::net::IpAddr, filter_common::abi::Class)>,
    pub(crate) strict: strict::StrictState,
    /// The sketch gate in force (see `gate`), and the rate of one CPU it was sized for.
    pub(crate) gate: crate::dataplane::gate::Gate,
    pub(crate) gate_pps: f64,
    /// Escalation over BGP: the rules announced upstream and those received (None while
    /// escalation.mode is off).
    pub(crate) bgp: Option<crate::escalation::bgp::Bgp>,
    pub(crate) auto_escalation: auto_escalation::AutoEscalation,
    /// What detection shares with the fleet (escalation.fleet.share).
    pub(crate) sharing: sharing::Sharing,
    /// Reading the received FlowSpec rules failed at the last tick (logged once a streak).
    received_failing: bool,
    /// The `levee capture` running, if one is.
    capture: Option<capture::CaptureSession>,
    /// Flood signatures in force, their miner, and the sampling rate it needs.
    pub(crate) flood: signatures::Flood,
}

impl Controller {
    /// Answers requests that waited together, in order; an error leaves everything as it
    /// was. Their changes are written to the state file once for all of them (a group commit:
    /// under a storm of clients the file is written once per batch, not once per command),
    /// before any answer leaves, so a restart keeps them; if it cannot be, the changes hold
    /// and the answers carry a warning (the CLI prints it) and a metric counts it. Commands
    /// that need gobgpd's answer are answered later, when it has answered.
    pub fn handle_all(&mut self, requests: Vec<(Request, Reply)>) {
        let mut answers: Vec<(Reply, Response, bool)> = Vec::with_capacity(requests.len());
        for (request, reply) in requests {
            let Err(reply) = crate::cmd::escalate::answer_later(self, &request, reply) else {
                continue;
            };
            let changes = request.changes();
            answers.push(match request.apply(self) {
                Ok(data) => (reply, Response::ok_raw(data), changes),
                Err(e) => (reply, Response::error(&e), false),
            });
        }
        if answers.iter().any(|(_, _, changed)| *changed)
            && let Err(e) = self.save_state()
        {
            let warning = format!("applied, but not saved ({e:#}): a restart will lose it");
            for (_, response, _) in answers.iter_mut().filter(|(_, _, changed)| *changed) {
                response.warning = Some(warning.clone());
            }
        }
        for (reply, response, _) in answers {
            let _ = reply.send(response);
        }
    }

    /// Takes what gobgpd answered (escalation's calls run on threads of their own) and puts
    /// received rules that changed in force. Called every 100 ms and each tick.
    pub fn follow_bgp(&mut self) {
        let Some(u) = &mut self.bgp else {
            return;
        };
        u.collect();
        u.follow_received();
        match u.received_news() {
            None => {}
            Some(ReceivedNews::Changed { now: rules, before }) => {
                let abi = |r: &[crate::escalation::received::EnforcedRule]| -> Vec<_> {
                    r.iter().map(|r| r.to_abi(self.cpus)).collect()
                };
                match self.fleet.set_upstream_rules(&abi(&rules), &abi(&before)) {
                    Ok(()) => info!(rules = rules.len(), "received FlowSpec rules in force"),
                    Err(e) => {
                        u.enforcing_failed(before);
                        self.telemetry.count_error();
                        error!(
                            "cannot enforce the received FlowSpec rules, the earlier ones stay: {e:#}"
                        );
                    }
                }
                self.received_failing = false;
            }
            Some(ReceivedNews::Unchanged) => self.received_failing = false,
            Some(ReceivedNews::Failed(e)) => {
                if !self.received_failing {
                    error!("{e:#}; the received rules in force stay");
                }
                self.received_failing = true;
            }
        }
    }

    /// Renews the lease of the received rules the program enforces.
    fn renew_received_lease(&mut self) {
        if self.bgp.as_ref().is_some_and(|u| u.enforces_received())
            && let Err(e) = self.fleet.renew_upstream_lease()
        {
            self.telemetry.count_error();
            error!("cannot renew the received rules' lease: {e:#}");
        }
    }

    /// The program's configuration: the filter settings with the engine's limit scaling, in
    /// the mode in force.
    pub(crate) fn dataplane_config(&self) -> filter_common::abi::Config {
        let mut filter = self.settings.filter.clone();
        for (rate, scale) in filter.limits.0.iter_mut().zip(self.limit_scale.0) {
            if scale < 1.0 {
                let f = |v: u64| ((v as f64 * scale) as u64).max(1);
                if rate.pps > 0 {
                    rate.pps = f(rate.pps);
                    rate.burst_packets = f(rate.burst_packets);
                }
                if rate.bits_per_sec > 0 {
                    rate.bits_per_sec = f(rate.bits_per_sec);
                }
            }
        }
        let mut c = filter.dataplane_config(self.mode.effective(), self.sample_every(), self.cpus);
        self.strict_config(&mut c);
        self.trigger_config(&mut c);
        c.sketch_window_shift = self.gate.window_shift;
        c.sketch_threshold = self.gate.threshold;
        c
    }

    /// Writes [`Controller::dataplane_config`] to every interface, all or nothing.
    pub(crate) fn write_config(&mut self) -> Result<()> {
        let config = self.dataplane_config();
        self.fleet.set_config(config)
    }

    /// Writes what must outlive a restart to the state file now. A failure is logged and
    /// counted, and returned for the caller to report.
    pub(crate) fn save_state(&mut self) -> Result<()> {
        let state = persist::State::of(self);
        let saved = persist::save(&self.settings.daemon.state_file, &state);
        // A failed write stays due: the next tick tries again.
        self.state_dirty = saved.is_err();
        if let Err(e) = &saved {
            self.telemetry.count_state_error();
            warn!("cannot save the state: {e:#}");
        }
        saved
    }

    /// Marks the state file out of date: the next tick writes it once, however many changes
    /// (detection blocks, expiries) came in between.
    pub(crate) fn save_state_soon(&mut self) {
        self.state_dirty = true;
    }

    /// One turn of the loop: expiry, rates and detection, events, metrics. `elapsed` is
    /// measured, so a late tick (after a long reload, say) is one long interval.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_tick);
        self.last_tick = now;
        if let Err(e) = self.expire() {
            self.telemetry.count_error();
            error!("expiring blocks: {e:#}");
        }

        // Rates first, so an offence in the second an attack starts is judged under attack.
        let counters = self.fleet.counters();
        if let Ok(c) = &counters {
            self.telemetry.sample(c, now);
            self.update_gate();
            self.detect(elapsed);
        }
        self.update_strict();
        self.update_trigger();
        self.update_signatures();
        self.update_sampling();
        if let Some(u) = &mut self.bgp {
            u.tick();
        }
        self.follow_bgp();
        if let Some(u) = &mut self.bgp {
            let rates = self.telemetry.rates();
            let inputs = auto_escalation::Inputs {
                engine: &self.engine,
                shapes: &self.telemetry.shapes,
                lists: &self.lists,
                received_bps: rates.pass_bps + rates.drop_bps,
            };
            self.auto_escalation.step(u, &inputs, now);
            let (shapes, signatures) = (&self.telemetry.shapes, self.flood.book.table());
            let lists = &self.lists;
            self.sharing
                .step(u, &self.engine, shapes, &signatures, lists, now);
        }
        // The received rules' lease: the program stops them by itself once the controller
        // stops renewing it (a crash).
        self.renew_received_lease();
        self.drain_events();
        self.judge_offences();
        self.telemetry.top.tick();
        self.telemetry.shapes.tick();
        let updated = counters.and_then(|c| self.update_metrics(&c));
        if let Err(e) = updated {
            self.telemetry.count_error();
            error!("reading counters: {e:#}");
        }
        if self.state_dirty {
            let _ = self.save_state();
        }
    }

    /// Removes operator blocks whose time is up (the program already ignores them).
    fn expire(&mut self) -> Result<()> {
        let due = self.lists.due(monotonic_coarse_ns());
        if due.is_empty() {
            return Ok(());
        }
        let changes = due
            .iter()
            .filter_map(|net| {
                let old = self.lists.block(net)?.clone();
                Some((
                    *net,
                    Block {
                        operator: None,
                        ..old
                    },
                ))
            })
            .collect();
        self.change_blocks(changes)?;
        for net in &due {
            info!(cidr = %net, "block expired");
        }
        self.save_state_soon();
        Ok(())
    }

    /// Changes blocks in the book and on every interface, all or nothing.
    pub(crate) fn change_blocks(&mut self, changes: Vec<(ipnet::IpNet, Block)>) -> Result<()> {
        let (edits, undo) = self.lists.change_blocks(changes);
        if let Err(e) = self.fleet.write(List::Block, &edits) {
            self.lists.restore_blocks(undo);
            return Err(e);
        }
        Ok(())
    }

    /// Re-reads the config file and list files. Everything is read and checked first; then
    /// the changes are written all-or-nothing, so on any error the running state stays as it
    /// was.
    pub fn reload(&mut self) -> Result<()> {
        let mut new = match &self.config_path {
            Some(path) => config::load(path)?,
            None => {
                info!("SIGHUP: no config file, reloading list files only");
                self.settings.clone()
            }
        };
        let (blocks, allows) = read_list_settings(&new.lists)?;
        // What only a restart can change stays.
        let old = &self.settings;
        for (what, changed) in [
            ("socket", new.daemon.socket != old.daemon.socket),
            ("bpffs", new.daemon.bpffs != old.daemon.bpffs),
            (
                "sources.max_tracked",
                new.filter.sources.max_tracked != old.filter.sources.max_tracked,
            ),
            (
                "events.ring_bytes",
                new.events.ring_bytes != old.events.ring_bytes,
            ),
            ("strict.mode", new.strict.mode != old.strict.mode),
            ("escalation", new.escalation != old.escalation),
        ] {
            if changed {
                warn!(
                    field = what,
                    "changed in the config; takes effect at the next restart"
                );
            }
        }
        new.daemon = DaemonSettings {
            keep_on_exit: new.daemon.keep_on_exit,
            state_file: new.daemon.state_file.clone(),
            ..old.daemon.clone()
        };
        new.filter.sources.max_tracked = old.filter.sources.max_tracked;
        new.events.ring_bytes = old.events.ring_bytes;
        new.strict.mode = old.strict.mode;
        new.escalation = old.escalation.clone();

        let block_changes = self.lists.config_block_changes(&blocks);
        let (allow_changes, allow_edits) = self.lists.config_allow_changes(&allows);
        let old_settings = std::mem::replace(&mut self.settings, new);
        let old_mode = self.mode;
        let old_limits_from_cli = self.limits_from_cli;
        // A mode chosen with `levee mode` outlives a reload; limits come from the file again
        // (without a file, the running ones stay, CLI ones included).
        if self.mode.set_by == SetBy::Config {
            self.mode.operator = self.settings.mode;
        }
        if self.config_path.is_some() {
            self.limits_from_cli = false;
        }
        let ports = self.settings.filter.signatures.amp_port_list.clone();
        let old_ports = old_settings.filter.signatures.amp_port_list.clone();
        let applied = (|| -> Result<()> {
            self.write_config()?;
            self.fleet.set_amp_ports(&ports, &old_ports)?;
            let (block_edits, undo) = self.lists.change_blocks(block_changes);
            if let Err(e) = self.fleet.write(List::Block, &block_edits) {
                self.lists.restore_blocks(undo);
                self.fleet.set_amp_ports(&old_ports, &ports)?;
                return Err(e);
            }
            if let Err(e) = self.fleet.write(List::Allow, &allow_edits) {
                let inverse: Vec<_> = block_edits.iter().rev().map(|e| e.inverse()).collect();
                self.fleet.write(List::Block, &inverse)?;
                self.lists.restore_blocks(undo);
                self.fleet.set_amp_ports(&old_ports, &ports)?;
                return Err(e);
            }
            Ok(())
        })();
        if let Err(e) = applied {
            self.settings = old_settings;
            self.mode = old_mode;
            self.limits_from_cli = old_limits_from_cli;
            if let Err(undo) = self.write_config() {
                error!("cannot restore the running configuration after a failed reload: {undo:#}");
            }
            return Err(e);
        }
        self.lists.commit_allows(allow_changes);
        self.engine.set_config(self.settings.detection.clone());
        let _ = self.save_state();
        info!(
            config = %self.config_path.as_deref().map_or("-".into(), |p| p.display().to_string()),
            mode = self.mode.effective().name(),
            "config reloaded"
        );
        Ok(())
    }

    pub fn metrics(&self) -> SharedMetrics {
        self.telemetry.metrics.clone()
    }
}
