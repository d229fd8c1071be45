//! Start-up: the final state is computed first (config, then what the state file saved,
//! then what adopted maps hold), then written into the maps once, then attached.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use filter_common::abi::{Class, Mode};
use ipnet::IpNet;
use tracing::{debug, info};

use super::{
    Controller, Fleet, ListBook, ModeOwner, SetBy, Telemetry,
    fleet::Prefill,
    lists::{Allow, Block, OperatorBlock, Setter},
    persist,
    strict::StrictState,
};
use crate::{
    config::{ListSettings, PerClass, Settings, StrictMode, parse_cidr, parse_mode},
    dataplane::{List, cpu_count, expiry_after},
    engine::Engine,
    escalation::bgp::Bgp,
    list_files,
};

/// Where a managed gobgpd keeps its config and API socket: beside the control socket, one
/// folder per daemon.
fn escalation_dir(socket: &std::path::Path) -> PathBuf {
    let name = socket
        .file_stem()
        .map_or("levee".into(), |s| s.to_string_lossy().into_owned());
    socket
        .parent()
        .unwrap_or(std::path::Path::new("/run/levee"))
        .join(format!("{name}.gobgpd"))
}

impl Controller {
    /// Loads and attaches to every interface in the settings with the final settings (config,
    /// then what the state file saved) and the lists in place.
    pub fn start(settings: Settings, config_path: Option<PathBuf>) -> Result<Controller> {
        let t0 = Instant::now();
        let phase = |what: &str| debug!(ms = t0.elapsed().as_millis() as u64, "start: {what}");
        let cpus = cpu_count()?;
        let saved = persist::load_or_set_aside(&settings.daemon.state_file);
        let (config_blocks, config_allows) = read_list_settings(&settings.lists)?;
        phase("config, list files and state file read");
        let mut c = Controller {
            mode: ModeOwner::from_config(settings.mode),
            engine: Engine::new(settings.detection.clone()),
            fleet: Fleet::default(),
            settings,
            config_path,
            lists: ListBook::default(),
            limits_from_cli: false,
            decisions: BTreeMap::new(),
            limit_scale: PerClass([1.0; Class::COUNT]),
            telemetry: Telemetry::new(),
            started: Instant::now(),
            last_tick: Instant::now(),
            cpus,
            state_dirty: false,
            pending_offences: Vec::new(),
            calm_offences: Vec::new(),
            strict: Default::default(),
            gate: crate::dataplane::gate::Gate {
                window_shift: 0,
                threshold: 0,
            },
            gate_pps: 0.0,
            bgp: None,
            auto_escalation: Default::default(),
            sharing: Default::default(),
            received_failing: false,
            capture: None,
            flood: Default::default(),
        };
        c.gate = c.configured_gate();
        c.restore_settings(&saved)?;
        c.lists = ListBook::from_config(&config_blocks, &config_allows);
        c.restore_lists(&saved)?;
        // With no filter left by an earlier run, the lists are final already: they are
        // written into the new maps while the kernel verifies the program.
        let d = &c.settings.daemon;
        let fresh = d
            .interfaces
            .iter()
            .all(|i| !super::fleet::pin_dir(&d.bpffs, i).exists());
        let prefill = fresh.then(|| Prefill {
            blocks: c.lists.materialized().collect(),
            allows: c.lists.allows().map(|(n, _)| (*n, 0)).collect(),
        });
        phase("lists computed");
        // Before anything is attached: a BGP daemon that cannot start refuses the start.
        c.bgp = Bgp::start(
            &c.settings.escalation,
            &escalation_dir(&c.settings.daemon.socket),
            c.telemetry.metrics.clone(),
        )?;
        c.strict = StrictState::prepare(&c.settings.strict)?;
        c.fleet = Fleet::load(&c.settings, c.dataplane_config(), prefill.as_ref())?;
        phase("programs loaded");
        // Maps of an earlier run still hold its familiar sources; fresh ones get the file's.
        let familiar = if fresh && c.settings.strict.mode != StrictMode::Off {
            c.restore_familiar()
        } else {
            Ok(0)
        };
        if c.fleet.adopted() {
            c.adopt_unknown_entries()?;
        }
        let pending = c.fleet.needs_converge().then(|| Prefill {
            blocks: c.lists.materialized().collect(),
            allows: c.lists.allows().map(|(n, _)| (*n, 0)).collect(),
        });
        let mode = c.settings.daemon.xdp_mode;
        let started = (|| -> Result<()> {
            if let Some(lists) = &pending {
                c.fleet.converge(List::Block, &lists.blocks)?;
                c.fleet.converge(List::Allow, &lists.allows)?;
            }
            c.fleet.attach(mode)?;
            // Always: it records the verified sources detection needs; flows, strict not off.
            c.fleet.attach_egress()?;
            if c.settings.strict.mode != StrictMode::Off {
                let rules = c.strict.rules();
                c.fleet.set_services(&rules, &[])?;
            }
            // Levee's BGP sessions pass before every stage.
            let peers = c.bgp_peers();
            if !peers.is_empty() {
                c.fleet.set_bgp_peers(&peers)?;
            }
            // Pinned flood signatures the state file kept (strict applies them).
            let pinned = c.flood.book.table();
            if !pinned.is_empty() {
                c.fleet.set_signatures(&pinned, &[])?;
            }
            c.strict.set_kernel(&c.settings.strict, &saved.kernel)
        })();
        if let Err(e) = started {
            c.fleet.roll_back();
            c.restore_kernel();
            return Err(e.context("start refused, the interfaces are as they were"));
        }
        // The originals of kernel settings this start changed, kept at once: a run killed
        // before its first tick leaves them to the next one's stop.
        if c.strict
            .kernel
            .as_ref()
            .is_some_and(|k| !k.changed().is_empty())
        {
            let _ = c.save_state();
        }
        super::familiar::report_restored(&familiar);
        info!(
            mode = c.mode.effective().name(),
            started_in_ms = t0.elapsed().as_millis() as u64,
            "levee running"
        );
        Ok(c)
    }

    /// The BGP neighbours whose sessions no stage may cut: escalation's, while it is on.
    fn bgp_peers(&self) -> Vec<std::net::IpAddr> {
        let e = &self.settings.escalation;
        if e.mode != crate::config::EscalationMode::On {
            return Vec::new();
        }
        e.neighbors.iter().map(|n| n.address).collect()
    }

    /// Puts back the kernel settings this start changed (a refused start changes nothing).
    fn restore_kernel(&mut self) {
        if let Some(k) = &mut self.strict.kernel {
            k.restore();
        }
    }

    /// What the state file saved, applied to the settings before anything is written.
    fn restore_settings(&mut self, saved: &persist::State) -> Result<()> {
        if let Some(m) = &saved.mode {
            self.mode.operator = parse_mode(m).context("state file mode")?;
            self.mode.set_by = SetBy::Cli;
        }
        if saved.detection_holds_enforce && self.mode.operator == Mode::Monitor {
            self.mode.detection_holds = true;
            self.engine.adopt_enforce();
            info!(
                "detection held enforce when the last run stopped: enforcing until the attack is over"
            );
        }
        let rates = |v: &Vec<[u64; 4]>, out: &mut PerClass<filter_common::config::Rate>| {
            for (slot, r) in out.0.iter_mut().zip(v) {
                *slot = filter_common::config::Rate {
                    pps: r[0],
                    burst_packets: r[1],
                    bits_per_sec: r[2],
                    burst_bytes: r[3],
                };
            }
        };
        if let (Some(l), Some(a)) = (&saved.limits, &saved.aggregate) {
            rates(l, &mut self.settings.filter.limits);
            rates(a, &mut self.settings.filter.aggregate);
            self.limits_from_cli = true;
        }
        Ok(())
    }

    /// The blocks and allows the state file saved, recorded in the book (written later).
    fn restore_lists(&mut self, saved: &persist::State) -> Result<()> {
        let now = SystemTime::now();
        let mut restored = 0;
        for b in &saved.blocks {
            let net = parse_cidr(&b.cidr).context("state file block")?;
            let ttl = b.ttl_left(now);
            if ttl == Some(Duration::ZERO) {
                continue;
            }
            let mut entry = self.lists.block(&net).cloned().unwrap_or_default();
            entry.operator = Some(OperatorBlock {
                by: Setter::Cli,
                reason: b.reason.clone(),
                expires_ns: expiry_after(ttl)?,
            });
            self.lists.set_block(net, entry);
            restored += 1;
        }
        for a in &saved.allows {
            let net = parse_cidr(a).context("state file allow")?;
            let entry = self.lists.allow(&net).copied().unwrap_or_default();
            self.lists.set_allow(net, Allow { cli: true, ..entry });
        }
        for r in &saved.refused_signatures {
            let text: crate::signatures::Text = r.parse()?;
            self.flood.book.refused.push(text.0);
        }
        for p in &saved.pinned_signatures {
            let text: crate::signatures::Text = p.signature.parse()?;
            let covers = (p.attack_cover, p.calm_cover);
            self.flood.book.add_pinned(text.0, covers, Instant::now());
        }
        if restored + saved.allows.len() > 0 || saved.mode.is_some() {
            info!(
                state = %self.settings.daemon.state_file.display(),
                blocks = restored,
                allows = saved.allows.len(),
                mode = saved.mode.as_deref().unwrap_or("(config)"),
                "restored what the CLI had set"
            );
        }
        Ok(())
    }

    /// Entries the adopted maps hold that neither the config nor the state file account for
    /// stay as they were: timed blocks are expired by this daemon too.
    fn adopt_unknown_entries(&mut self) -> Result<()> {
        for (net, expires_ns) in self.fleet.first().blocklist()? {
            if self.lists.block(&net).is_none() {
                let by = if expires_ns == 0 {
                    Setter::Adopted
                } else {
                    Setter::Cli
                };
                let operator = Some(OperatorBlock {
                    by,
                    reason: None,
                    expires_ns,
                });
                self.lists.set_block(
                    net,
                    Block {
                        config: false,
                        operator,
                    },
                );
            }
        }
        for net in self.fleet.first().allowlist()? {
            if self.lists.allow(&net).is_none() {
                let adopted = Allow {
                    adopted: true,
                    ..Allow::default()
                };
                self.lists.set_allow(net, adopted);
            }
        }
        Ok(())
    }
}

/// The config's and its list files' prefixes.
pub(crate) fn read_list_settings(
    lists: &ListSettings,
) -> Result<(BTreeSet<IpNet>, BTreeSet<IpNet>)> {
    let mut block: BTreeSet<IpNet> = lists.block.iter().copied().collect();
    let mut allow: BTreeSet<IpNet> = lists.allow.iter().copied().collect();
    for file in &lists.block_files {
        block.extend(list_files::load_file(file)?);
    }
    for file in &lists.allow_files {
        allow.extend(list_files::load_file(file)?);
    }
    Ok((block, allow))
}
