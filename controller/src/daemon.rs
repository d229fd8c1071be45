//! `levee run`: owns one loaded program per interface, applies the settings and the lists to
//! all of them, serves the control socket, expires timed blocks, reloads on SIGHUP, and
//! detaches on SIGINT/SIGTERM unless told to keep the filter in place.
//!
//! State lives in the pinned maps under `<bpffs>/levee/<iface>/` (bpffs defaults to
//! /sys/fs/bpf), so a restarted daemon
//! adopts the running program's link and lists instead of starting from nothing.

use std::{
    collections::{BTreeMap, HashSet},
    fs,
    net::IpAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{MapData, RingBuf};
use filter_common::abi::{Action, Class, Event, Mode, Reason, event};
use ipnet::IpNet;
use serde::Serialize;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    signal::unix::{SignalKind, signal},
};
use tracing::{error, info, warn};

use crate::{
    api::{Request, Response},
    config::{self, Settings, parse_cidr, parse_mode},
    dataplane::{Attached, Counters, Dataplane, LoadOptions, cpu_count, monotonic_coarse_ns},
    engine::{AttackState, Decision, Engine},
    lists,
    metrics::{
        ClassLabels, InterfaceLabels, KindLabels, Metrics, ModeLabels, PacketLabels, SharedMetrics,
        StateLabels,
    },
    state::{self, State},
    top::TopTalkers,
};

/// One protected interface.
struct Interface {
    name: String,
    attached: Attached,
    dp: Dataplane,
    events: RingBuf<MapData>,
}

/// Offence events logged one by one per tick; past that they are summed in one line.
const OFFENCES_LOGGED_PER_TICK: usize = 20;

/// A block set through the CLI (or found with a TTL in adopted maps).
#[derive(Clone, Debug, Default)]
struct CliBlock {
    reason: Option<String>,
    /// CLOCK_MONOTONIC_COARSE ns when it ends; 0 for no TTL.
    expires_ns: u64,
}

pub struct Daemon {
    settings: Settings,
    config_path: Option<PathBuf>,
    interfaces: Vec<Interface>,
    /// Blocks from the config and its list files (a reload may remove them).
    config_blocks: HashSet<IpNet>,
    /// Blocks set through the CLI: expired by the timer, kept in the state file. Only these
    /// are walked every second, never the whole (possibly million-entry) list.
    cli_blocks: BTreeMap<IpNet, CliBlock>,
    allow_from_config: HashSet<IpNet>,
    /// Allowlist entries added through the CLI (kept in the state file).
    allow_from_cli: std::collections::BTreeSet<IpNet>,
    /// Set through the CLI since the config was loaded (kept in the state file).
    mode_from_cli: bool,
    limits_from_cli: bool,
    started: SystemTime,
    top: TopTalkers,
    /// The last two counter totals, for `status` rates and detection.
    totals: [Option<Totals>; 2],
    engine: Engine,
    /// Decisions of the engine so far, by kind.
    decisions: BTreeMap<&'static str, u64>,
    metrics: SharedMetrics,
    /// Per-source limit scale per class, set by the engine while a class is under attack.
    limit_scale: [f64; Class::COUNT],
    /// Metric updates so far (some metrics are refreshed less often).
    metric_ticks: u64,
}

/// A blocklist entry as `levee block list` shows it.
#[derive(Debug, Serialize)]
pub struct BlockView {
    pub cidr: String,
    /// Seconds left, or null for a block without TTL.
    pub ttl_secs: Option<u64>,
    pub reason: Option<String>,
}

/// Counters of one (action, reason) pair, all interfaces and classes.
#[derive(Debug, Serialize)]
pub struct CounterView {
    pub action: &'static str,
    pub reason: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

/// One rate limit; 0 means no limit on that dimension.
#[derive(Debug, Serialize)]
pub struct RateView {
    pub pps: u64,
    pub burst: u64,
    pub bps: u64,
    pub burst_bytes: u64,
}

/// `levee limits show`: per class, in class order.
#[derive(Debug, Serialize)]
pub struct LimitsView {
    pub per_source: BTreeMap<&'static str, RateView>,
    pub aggregate: BTreeMap<&'static str, RateView>,
}

#[derive(Debug, Serialize)]
pub struct InterfaceView {
    pub name: String,
    pub attach: &'static str,
}

#[derive(Debug, Serialize)]
pub struct StatusView {
    pub mode: &'static str,
    pub interfaces: Vec<InterfaceView>,
    pub uptime_secs: u64,
    pub blocklist_entries: usize,
    pub allowlist_entries: usize,
    pub packets: u64,
    pub dropped: u64,
    /// Rates over the last second, all interfaces.
    pub rates: RatesView,
    /// Attack state per class: normal, under_attack, recovering.
    pub attack: BTreeMap<&'static str, &'static str>,
    /// Learned baseline per class, packets/s.
    pub baseline_pps: BTreeMap<&'static str, u64>,
    /// Decisions the detection engine took, by kind.
    pub decisions: BTreeMap<&'static str, u64>,
    pub top_reasons: Vec<CounterView>,
}

/// Packets and bits per second over the last second, passed (including would-be drops in
/// monitor mode) and dropped.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RatesView {
    pub pass_pps: u64,
    pub pass_bps: u64,
    pub drop_pps: u64,
    pub drop_bps: u64,
}

/// Counter totals at one instant, to derive rates.
#[derive(Clone, Copy, Debug)]
struct Totals {
    at: std::time::Instant,
    /// (packets, bytes) passed and dropped.
    pass: (u64, u64),
    drop: (u64, u64),
    /// Packets per class, all actions.
    classes: [u64; Class::COUNT],
}

/// Mounts bpffs at `path` unless a bpffs is mounted there already.
fn ensure_bpffs(path: &Path) -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = path.to_string_lossy();
    let mounted = mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, mount_point, fs_type) = (f.next(), f.next(), f.next());
        mount_point == Some(&*target) && fs_type == Some("bpf")
    });
    if mounted {
        return Ok(());
    }
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(path)
        .status()
        .context("cannot run mount")?;
    if !status.success() {
        bail!("cannot mount bpffs at {}: {status}", path.display());
    }
    Ok(())
}

/// The expiry of a block with `ttl`, in the data plane's clock; 0 for none.
fn expires_ns(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |t| monotonic_coarse_ns() + t.as_nanos() as u64)
}

/// Progress of a long list load: a line rewritten in place on a terminal, one log line at
/// the end otherwise. Short lists say nothing.
struct Progress {
    what: String,
    total: usize,
    terminal: bool,
}

impl Progress {
    const QUIET_BELOW: usize = 10_000;

    fn new(what: String, total: usize) -> Progress {
        use std::io::IsTerminal as _;
        Progress {
            what,
            total,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn show(&mut self, done: usize) {
        if self.total < Self::QUIET_BELOW {
            return;
        }
        if self.terminal {
            eprint!("\rloading {}: {done}/{} prefixes", self.what, self.total);
            if done == self.total {
                eprintln!();
            }
        } else if done == self.total {
            info!(list = %self.what, prefixes = self.total, "loaded");
        }
    }
}

/// Where an interface's maps and link are pinned.
fn pin_dir(settings: &Settings, iface: &str) -> PathBuf {
    settings.bpffs.join("levee").join(iface)
}

impl Daemon {
    /// Loads and attaches to every interface in the settings, then applies settings and lists.
    pub fn start(settings: Settings, config_path: Option<PathBuf>) -> Result<Daemon> {
        if settings.interfaces.is_empty() {
            bail!("no interface to protect: give --iface IF or `interfaces` in the config");
        }
        ensure_bpffs(&settings.bpffs)?;
        let mut daemon = Daemon {
            settings: settings.clone(),
            config_path,
            interfaces: Vec::new(),
            config_blocks: HashSet::new(),
            cli_blocks: BTreeMap::new(),
            allow_from_config: HashSet::new(),
            allow_from_cli: Default::default(),
            mode_from_cli: false,
            limits_from_cli: false,
            started: SystemTime::now(),
            top: TopTalkers::default(),
            totals: [None, None],
            engine: Engine::new(settings.detection.clone()),
            decisions: BTreeMap::new(),
            metrics: Metrics::shared(),
            limit_scale: [1.0; Class::COUNT],
            metric_ticks: 0,
        };
        let cpus = cpu_count()?;
        for name in &settings.interfaces {
            let pin_dir = pin_dir(&settings, name);
            let options = LoadOptions {
                max_sources: settings.max_tracked,
                event_bytes: settings.ring_bytes,
                pin_dir: Some(pin_dir.clone()),
            };
            let mut dp = Dataplane::load(&options, settings.dataplane_config(cpus))
                .with_context(|| format!("interface {name}"))?;
            // A restart keeps the mode the operator last chose, not the config file's.
            if let Some(previous) = dp.previous_config()
                && previous.mode() != daemon.settings.mode
            {
                info!(iface = %name, mode = previous.mode().name(), "keeping the running filter's mode");
                daemon.settings.mode = previous.mode();
            }
            dp.set_mode(daemon.settings.mode)?;
            dp.set_amp_ports(&settings.amp_ports)?;
            let attached = dp
                .attach_pinned(name, settings.xdp_mode, &pin_dir.join("link"))
                .with_context(|| format!("interface {name}"))?;
            match attached {
                Attached::Generic if settings.xdp_mode == crate::dataplane::AttachMode::Auto => {
                    warn!(iface = %name, "native XDP unavailable, attached in generic mode (slower)")
                }
                _ => info!(iface = %name, attach = attached.name(), "attached"),
            }
            let events = dp.take_events()?;
            daemon.interfaces.push(Interface {
                name: name.clone(),
                attached,
                dp,
                events,
            });
        }
        daemon.apply_config_lists()?;
        daemon.restore_state()?;
        // Timed blocks found in adopted maps are expired by this daemon too.
        if daemon
            .interfaces
            .iter()
            .any(|i| i.dp.previous_config().is_some())
        {
            for (net, expires_ns) in daemon.first().blocklist()? {
                if expires_ns != 0 {
                    daemon.cli_blocks.entry(net).or_insert(CliBlock {
                        reason: None,
                        expires_ns,
                    });
                }
            }
        }
        let mode = daemon.settings.mode;
        daemon.for_each_dp(|dp| dp.set_mode(mode))?;
        info!(mode = mode.name(), "levee running");
        Ok(daemon)
    }

    /// Inserts the config's and the list files' prefixes; removes config prefixes that the
    /// settings no longer name (CLI entries stay).
    fn apply_config_lists(&mut self) -> Result<()> {
        let mut block: HashSet<IpNet> = self.settings.block.iter().copied().collect();
        let mut allow: HashSet<IpNet> = self.settings.allow.iter().copied().collect();
        for file in &self.settings.block_files {
            block.extend(lists::load_file(file)?);
        }
        for file in &self.settings.allow_files {
            allow.extend(lists::load_file(file)?);
        }
        let stale: Vec<IpNet> = self
            .config_blocks
            .iter()
            .filter(|net| !block.contains(net) && !self.cli_blocks.contains_key(net))
            .copied()
            .collect();
        for net in stale {
            self.for_each_dp(|dp| dp.unblock(net).map(|_| ()))?;
        }
        // A CLI block of the same prefix keeps its TTL.
        let to_block: Vec<IpNet> = block
            .iter()
            .filter(|n| !self.cli_blocks.contains_key(n))
            .copied()
            .collect();
        for iface in &mut self.interfaces {
            let mut progress =
                Progress::new(format!("blocklist on {}", iface.name), to_block.len());
            iface
                .dp
                .block_many(&to_block, None, &mut |n| progress.show(n))?;
        }
        self.config_blocks = block;
        let stale: Vec<IpNet> = self
            .allow_from_config
            .iter()
            .filter(|net| !allow.contains(net) && !self.allow_from_cli.contains(net))
            .copied()
            .collect();
        for net in stale {
            self.for_each_dp(|dp| dp.unallow(net).map(|_| ()))?;
        }
        let to_allow: Vec<IpNet> = allow.iter().copied().collect();
        for iface in &mut self.interfaces {
            let mut progress =
                Progress::new(format!("allowlist on {}", iface.name), to_allow.len());
            iface.dp.allow_many(&to_allow, &mut |n| progress.show(n))?;
        }
        self.allow_from_config = allow;
        Ok(())
    }

    fn for_each_dp(&mut self, mut f: impl FnMut(&mut Dataplane) -> Result<()>) -> Result<()> {
        for iface in &mut self.interfaces {
            f(&mut iface.dp).with_context(|| format!("interface {}", iface.name))?;
        }
        Ok(())
    }

    /// Removes an entry on every interface; whether any of them had it.
    fn remove_everywhere(
        &mut self,
        mut remove: impl FnMut(&mut Dataplane) -> Result<bool>,
    ) -> Result<bool> {
        let mut found = false;
        self.for_each_dp(|dp| {
            found |= remove(dp)?;
            Ok(())
        })?;
        Ok(found)
    }

    fn first(&self) -> &Dataplane {
        &self.interfaces[0].dp
    }

    /// Answers one request; an error leaves everything as it was. A change is written to the
    /// state file so a restart keeps it.
    pub fn handle(&mut self, request: Request) -> Response {
        let changes = matches!(
            request,
            Request::Mode { mode: Some(_) }
                | Request::BlockAdd { .. }
                | Request::BlockDel { .. }
                | Request::AllowAdd { .. }
                | Request::AllowDel { .. }
                | Request::LimitsSet { .. }
        );
        match self.dispatch(request) {
            Ok(r) => {
                if changes {
                    self.save_state();
                }
                r
            }
            Err(e) => Response::error(&e),
        }
    }

    /// Writes what the CLI set to the state file; a failure is logged, never fatal.
    fn save_state(&self) {
        let now = monotonic_coarse_ns();
        let rates = |t: &config::ClassRates| {
            t.iter()
                .map(|r| [r.pps, r.burst_packets, r.bits_per_sec, r.burst_bytes])
                .collect::<Vec<_>>()
        };
        let state = State {
            mode: self
                .mode_from_cli
                .then(|| self.settings.mode.name().to_string()),
            blocks: self
                .cli_blocks
                .iter()
                .filter(|(_, b)| b.expires_ns == 0 || b.expires_ns > now)
                .map(|(net, b)| state::Block {
                    cidr: net.to_string(),
                    expires_unix: (b.expires_ns != 0)
                        .then(|| state::expires_unix(Duration::from_nanos(b.expires_ns - now))),
                    reason: b.reason.clone(),
                })
                .collect(),
            allows: self.allow_from_cli.iter().map(|n| n.to_string()).collect(),
            limits: self.limits_from_cli.then(|| rates(&self.settings.limits)),
            aggregate: self
                .limits_from_cli
                .then(|| rates(&self.settings.aggregate)),
        };
        if let Err(e) = state::save(&self.settings.state_file, &state) {
            warn!("cannot save the state: {e:#}");
        }
    }

    /// Re-applies what the CLI set before a restart (see [`crate::state`]).
    fn restore_state(&mut self) -> Result<()> {
        let saved = state::load(&self.settings.state_file)?;
        let now = SystemTime::now();
        if let Some(m) = &saved.mode {
            self.settings.mode = parse_mode(m).context("state file mode")?;
            self.mode_from_cli = true;
        }
        let rates = |v: &Vec<[u64; 4]>, out: &mut config::ClassRates| {
            for (slot, r) in out.iter_mut().zip(v) {
                *slot = filter_common::config::Rate {
                    pps: r[0],
                    burst_packets: r[1],
                    bits_per_sec: r[2],
                    burst_bytes: r[3],
                };
            }
        };
        if let (Some(l), Some(a)) = (&saved.limits, &saved.aggregate) {
            rates(l, &mut self.settings.limits);
            rates(a, &mut self.settings.aggregate);
            self.limits_from_cli = true;
            let cfg = self.effective_config(&self.settings, cpu_count()?);
            self.for_each_dp(|dp| dp.set_config(cfg))?;
        }
        let mut restored = 0;
        for b in &saved.blocks {
            let net = parse_cidr(&b.cidr).context("state file block")?;
            let ttl = b.ttl_left(now);
            if ttl == Some(Duration::ZERO) {
                continue;
            }
            self.for_each_dp(|dp| dp.block(net, ttl))?;
            self.cli_blocks.insert(
                net,
                CliBlock {
                    reason: b.reason.clone(),
                    expires_ns: expires_ns(ttl),
                },
            );
            restored += 1;
        }
        for a in &saved.allows {
            let net = parse_cidr(a).context("state file allow")?;
            self.for_each_dp(|dp| dp.allow(net))?;
            self.allow_from_cli.insert(net);
        }
        if restored + saved.allows.len() > 0 || saved.mode.is_some() {
            info!(
                state = %self.settings.state_file.display(),
                blocks = restored,
                allows = saved.allows.len(),
                mode = saved.mode.as_deref().unwrap_or("(config)"),
                "restored what the CLI had set"
            );
        }
        Ok(())
    }

    fn dispatch(&mut self, request: Request) -> Result<Response> {
        Ok(match request {
            Request::Status => Response::ok(self.status()?),
            Request::Mode { mode: None } => Response::ok(self.settings.mode.name()),
            Request::Mode { mode: Some(m) } => {
                let mode = parse_mode(&m)?;
                self.for_each_dp(|dp| dp.set_mode(mode))?;
                info!(
                    from = self.settings.mode.name(),
                    to = mode.name(),
                    "mode switched"
                );
                self.settings.mode = mode;
                self.mode_from_cli = true;
                self.engine.mode_set_by_operator();
                Response::ok(mode.name())
            }
            Request::BlockAdd {
                cidr,
                ttl_secs,
                reason,
            } => {
                let net = parse_cidr(&cidr)?;
                let ttl = ttl_secs.map(Duration::from_secs);
                if ttl == Some(Duration::ZERO) {
                    bail!("TTL must be more than zero");
                }
                self.for_each_dp(|dp| dp.block(net, ttl))?;
                info!(cidr = %net, ttl_secs, reason = reason.as_deref().unwrap_or(""), "blocked");
                self.cli_blocks.insert(
                    net,
                    CliBlock {
                        reason,
                        expires_ns: expires_ns(ttl),
                    },
                );
                Response::ok(net.to_string())
            }
            Request::BlockDel { cidr } => {
                let net = parse_cidr(&cidr)?;
                if !self.remove_everywhere(|dp| dp.unblock(net))? {
                    bail!("{net} is not in the blocklist");
                }
                self.cli_blocks.remove(&net);
                self.config_blocks.remove(&net);
                info!(cidr = %net, "unblocked");
                Response::ok(net.to_string())
            }
            Request::BlockList => Response::ok(self.block_list()?),
            Request::AllowAdd { cidr } => {
                let net = parse_cidr(&cidr)?;
                self.for_each_dp(|dp| dp.allow(net))?;
                self.allow_from_cli.insert(net);
                info!(cidr = %net, "allowlisted");
                Response::ok(net.to_string())
            }
            Request::AllowDel { cidr } => {
                let net = parse_cidr(&cidr)?;
                if !self.remove_everywhere(|dp| dp.unallow(net))? {
                    bail!("{net} is not in the allowlist");
                }
                self.allow_from_cli.remove(&net);
                info!(cidr = %net, "removed from the allowlist");
                Response::ok(net.to_string())
            }
            Request::AllowList => {
                let nets: Vec<String> = self
                    .first()
                    .allowlist()?
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                Response::ok(nets)
            }
            Request::Stats => Response::ok(self.stats()?),
            Request::Top { n } => {
                if self.settings.sample_every == 0 {
                    bail!("sampling is off (events.sample_every = 0): top has nothing to rank");
                }
                Response::ok(self.top.top(n, self.settings.sample_every))
            }
            Request::LimitsShow => Response::ok(self.limits_view()),
            Request::LimitsSet {
                class,
                aggregate,
                pps,
                bps,
                burst,
            } => {
                let classes = match class {
                    Some(c) => vec![config::parse_class(&c)?],
                    None => Class::ALL.to_vec(),
                };
                let mut new = self.settings.clone();
                let table = if aggregate {
                    &mut new.aggregate
                } else {
                    &mut new.limits
                };
                for c in &classes {
                    let rate = &mut table[*c as usize];
                    if let Some(p) = pps {
                        rate.pps = p;
                    }
                    if let Some(b) = bps {
                        rate.bits_per_sec = b;
                    }
                    if let Some(b) = burst {
                        rate.burst_packets = b;
                    }
                    config::check_rate(
                        &format!(
                            "{}.{}",
                            if aggregate { "aggregate" } else { "limits" },
                            c.name()
                        ),
                        rate,
                    )?;
                }
                let cfg = self.effective_config(&new, cpu_count()?);
                self.for_each_dp(|dp| dp.set_config(cfg))?;
                self.settings = new;
                self.limits_from_cli = true;
                info!(aggregate, classes = ?classes.iter().map(|c| c.name()).collect::<Vec<_>>(), pps, bps, burst, "limits set");
                Response::ok(self.limits_view())
            }
        })
    }

    fn limits_view(&self) -> LimitsView {
        let table = |rates: &config::ClassRates| {
            Class::ALL
                .iter()
                .map(|c| {
                    let r = rates[*c as usize];
                    (
                        c.name(),
                        RateView {
                            pps: r.pps,
                            burst: r.burst_packets,
                            bps: r.bits_per_sec,
                            burst_bytes: r.burst_bytes,
                        },
                    )
                })
                .collect()
        };
        LimitsView {
            per_source: table(&self.settings.limits),
            aggregate: table(&self.settings.aggregate),
        }
    }

    fn block_list(&self) -> Result<Vec<BlockView>> {
        let now = monotonic_coarse_ns();
        Ok(self
            .first()
            .blocklist()?
            .into_iter()
            .filter(|(_, expires)| *expires == 0 || *expires > now)
            .map(|(net, expires)| BlockView {
                cidr: net.to_string(),
                ttl_secs: (expires != 0).then(|| (expires - now).div_ceil(1_000_000_000)),
                reason: match self.cli_blocks.get(&net) {
                    Some(b) => b.reason.clone(),
                    None if self.config_blocks.contains(&net) => Some("config".into()),
                    None => None,
                },
            })
            .collect())
    }

    /// Counters by (action, reason), summed over interfaces and classes, largest first.
    fn stats(&self) -> Result<Vec<CounterView>> {
        let mut sums: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
        for iface in &self.interfaces {
            let c = iface.dp.counters()?;
            for action in Action::ALL {
                for reason in Reason::ALL {
                    for class in Class::ALL {
                        let v = c.get(action, reason, class);
                        let e = sums.entry((action as u32, reason as u32)).or_default();
                        e.0 += v.packets;
                        e.1 += v.bytes;
                    }
                }
            }
        }
        let mut out: Vec<CounterView> = sums
            .into_iter()
            .filter(|(_, (p, _))| *p > 0)
            .map(|((a, r), (packets, bytes))| CounterView {
                action: Action::ALL[a as usize].name(),
                reason: Reason::ALL[r as usize].name(),
                packets,
                bytes,
            })
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.packets));
        Ok(out)
    }

    /// Samples the counter totals (once a second) so `status` can show rates.
    /// Every interface's counters, read once per loop for rates, detection and metrics.
    pub fn read_counters(&self) -> Result<Vec<(String, Counters)>> {
        self.interfaces
            .iter()
            .map(|i| Ok((i.name.clone(), i.dp.counters()?)))
            .collect()
    }

    pub fn sample_rates(&mut self, counters: &[(String, Counters)]) {
        let (mut pass, mut drop) = ((0, 0), (0, 0));
        let mut classes = [0u64; Class::COUNT];
        for (_, c) in counters {
            for action in Action::ALL {
                let slot = if action == Action::Drop {
                    &mut drop
                } else {
                    &mut pass
                };
                for reason in Reason::ALL {
                    for class in Class::ALL {
                        let v = c.get(action, reason, class);
                        slot.0 += v.packets;
                        slot.1 += v.bytes;
                        classes[class as usize] += v.packets;
                    }
                }
            }
        }
        self.totals = [
            self.totals[1],
            Some(Totals {
                at: std::time::Instant::now(),
                pass,
                drop,
                classes,
            }),
        ];
    }

    /// Brings the Prometheus metrics up to date (once a second).
    pub fn update_metrics(&mut self, counters: &[(String, Counters)]) -> Result<()> {
        // Counting tracked sources walks the table: every 10 s is enough.
        let mut tracked = Vec::new();
        if self.metric_ticks.is_multiple_of(10) {
            for iface in &self.interfaces {
                tracked.push((iface.name.clone(), iface.dp.tracked_sources()?));
            }
        }
        self.metric_ticks += 1;
        let mut m = self
            .metrics
            .lock()
            .map_err(|_| anyhow!("metrics lock poisoned"))?;
        for (name, n) in tracked {
            m.tracked_sources
                .get_or_create(&InterfaceLabels { interface: name })
                .set(n as i64);
        }
        m.tracked_sources_capacity
            .set(i64::from(self.settings.max_tracked));
        for (name, c) in counters {
            for (action, reason, class, v) in c.non_zero() {
                let labels = PacketLabels {
                    interface: name.clone(),
                    action: action.name().to_string(),
                    reason: reason.name().to_string(),
                    class: class.name().to_string(),
                };
                m.observe_counter(labels, v.packets, v.bytes);
            }
        }
        for mode in Mode::ALL {
            m.mode
                .get_or_create(&ModeLabels {
                    mode: mode.name().to_string(),
                })
                .set(i64::from(mode == self.settings.mode));
        }
        for class in Class::ALL {
            let state = self.engine.state(class);
            let labels = ClassLabels {
                class: class.name().to_string(),
            };
            m.under_attack
                .get_or_create(&labels)
                .set(i64::from(state != AttackState::Normal));
            m.baseline
                .get_or_create(&labels)
                .set(self.engine.baseline_pps(class) as i64);
            for s in [
                AttackState::Normal,
                AttackState::UnderAttack,
                AttackState::Recovering,
            ] {
                m.attack_state
                    .get_or_create(&StateLabels {
                        class: class.name().to_string(),
                        state: s.name().to_string(),
                    })
                    .set(i64::from(s == state));
            }
        }
        let blocked = self.config_blocks.len()
            + self
                .cli_blocks
                .keys()
                .filter(|n| !self.config_blocks.contains(n))
                .count();
        m.blocklist_entries.set(blocked as i64);
        let allowed = self.allow_from_config.len()
            + self
                .allow_from_cli
                .iter()
                .filter(|n| !self.allow_from_config.contains(n))
                .count();
        m.allowlist_entries.set(allowed as i64);
        m.tick();
        Ok(())
    }

    /// Counts an error of the controller's loop.
    pub fn count_error(&self) {
        if let Ok(m) = self.metrics.lock() {
            m.errors.inc();
        }
    }

    /// Feeds the last second's per-class rates to the detection engine and applies what it
    /// decides.
    pub fn detect(&mut self) {
        let [Some(a), Some(b)] = self.totals else {
            return;
        };
        let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
        let mut rates = [0u64; Class::COUNT];
        for (i, r) in rates.iter_mut().enumerate() {
            *r = (b.classes[i].saturating_sub(a.classes[i]) as f64 / secs) as u64;
        }
        for decision in self.engine.observe(rates, self.settings.mode) {
            self.apply(decision);
        }
    }

    /// The data plane's config for `settings`, with the per-source limits of classes under
    /// attack scaled as the engine decided.
    fn effective_config(&self, settings: &Settings, cpus: u32) -> filter_common::abi::Config {
        let mut s = settings.clone();
        for (rate, scale) in s.limits.iter_mut().zip(self.limit_scale) {
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
        s.dataplane_config(cpus)
    }

    /// Applies one decision of the engine, logs it as one line and counts it.
    fn apply(&mut self, decision: Decision) {
        *self.decisions.entry(decision.kind()).or_default() += 1;
        if let Ok(m) = self.metrics.lock() {
            m.decisions
                .get_or_create(&KindLabels {
                    kind: decision.kind().to_string(),
                })
                .inc();
        }
        match decision {
            Decision::AttackStarted {
                class,
                pps,
                baseline_pps,
            } => {
                warn!(class = class.name(), pps, baseline_pps, "attack started");
            }
            Decision::AttackEnded { class } => info!(class = class.name(), "attack over"),
            Decision::ScaleLimits { class, factor } => {
                self.limit_scale[class as usize] = factor;
                let applied = cpu_count().and_then(|cpus| {
                    let cfg = self.effective_config(&self.settings, cpus);
                    self.for_each_dp(|dp| dp.set_config(cfg))
                });
                match applied {
                    Ok(()) => info!(
                        class = class.name(),
                        factor, "detection scaled the per-source limits"
                    ),
                    Err(e) => error!("detection could not scale the limits: {e:#}"),
                }
            }
            Decision::SwitchMode { to } => match self.for_each_dp(|dp| dp.set_mode(to)) {
                Ok(()) => {
                    info!(
                        from = self.settings.mode.name(),
                        to = to.name(),
                        "detection switched the mode"
                    );
                    self.settings.mode = to;
                }
                Err(e) => error!("detection could not switch the mode: {e:#}"),
            },
            Decision::Block {
                source,
                ttl,
                offences,
            } => {
                let prefix = match source {
                    IpAddr::V4(_) => self.settings.ipv4_prefix,
                    IpAddr::V6(_) => self.settings.ipv6_prefix,
                };
                let Ok(net) = IpNet::new(source, prefix).map(|n| n.trunc()) else {
                    return;
                };
                if self.cli_blocks.contains_key(&net) || self.config_blocks.contains(&net) {
                    return;
                }
                if let Err(e) = self.for_each_dp(|dp| dp.block(net, Some(ttl))) {
                    error!(cidr = %net, "detection could not block: {e:#}");
                    return;
                }
                let reason = format!("detection: {offences} offence(s)");
                info!(cidr = %net, ttl_secs = ttl.as_secs(), offences, "detection blocked an offender");
                self.cli_blocks.insert(
                    net,
                    CliBlock {
                        reason: Some(reason),
                        expires_ns: expires_ns(Some(ttl)),
                    },
                );
                self.save_state();
            }
        }
    }

    fn rates(&self) -> RatesView {
        let [Some(a), Some(b)] = self.totals else {
            return RatesView::default();
        };
        let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
        let per_sec = |x: u64, y: u64| ((y.saturating_sub(x)) as f64 / secs) as u64;
        RatesView {
            pass_pps: per_sec(a.pass.0, b.pass.0),
            pass_bps: per_sec(a.pass.1 * 8, b.pass.1 * 8),
            drop_pps: per_sec(a.drop.0, b.drop.0),
            drop_bps: per_sec(a.drop.1 * 8, b.drop.1 * 8),
        }
    }

    fn status(&self) -> Result<StatusView> {
        let stats = self.stats()?;
        let packets = stats.iter().map(|c| c.packets).sum();
        let dropped = stats
            .iter()
            .filter(|c| c.action == "drop")
            .map(|c| c.packets)
            .sum();
        Ok(StatusView {
            mode: self.settings.mode.name(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| InterfaceView {
                    name: i.name.clone(),
                    attach: i.attached.name(),
                })
                .collect(),
            uptime_secs: self.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            blocklist_entries: {
                let now = monotonic_coarse_ns();
                let list = self.first().blocklist()?;
                list.iter().filter(|(_, e)| *e == 0 || *e > now).count()
            },
            allowlist_entries: self.first().allowlist()?.len(),
            packets,
            dropped,
            rates: self.rates(),
            attack: Class::ALL
                .iter()
                .map(|c| (c.name(), self.engine.state(*c).name()))
                .collect(),
            baseline_pps: Class::ALL
                .iter()
                .map(|c| (c.name(), self.engine.baseline_pps(*c)))
                .collect(),
            decisions: self.decisions.clone(),
            top_reasons: stats
                .into_iter()
                .filter(|c| c.action != "pass")
                .take(5)
                .collect(),
        })
    }

    /// Reads what the program reported on its ring buffers: samples feed `levee top`; each
    /// offence (a source that went over its limit and starts a penalty) is logged, summed past
    /// a few per second.
    pub fn log_events(&mut self) {
        self.top.tick();
        let mut escalations = Vec::new();
        for iface in &mut self.interfaces {
            let mut offences = 0usize;
            while let Some(item) = iface.events.next() {
                if item.len() < std::mem::size_of::<Event>() {
                    continue;
                }
                // SAFETY: the program writes whole `Event` records; read_unaligned copes with
                // the ring's 8-byte alignment.
                let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                let src: IpAddr = if e.family == 6 {
                    IpAddr::from(e.src)
                } else {
                    IpAddr::from([e.src[0], e.src[1], e.src[2], e.src[3]])
                };
                if e.kind == event::SAMPLE {
                    self.top.record(src, e.class, e.action, e.len);
                    continue;
                }
                if e.kind != event::OFFENCE {
                    continue;
                }
                if let Some(class) = Class::ALL.get(e.class as usize) {
                    escalations.extend(self.engine.offence(src, *class));
                }
                offences += 1;
                if offences <= OFFENCES_LOGGED_PER_TICK {
                    info!(
                        iface = %iface.name,
                        source = %src,
                        class = Class::ALL.get(e.class as usize).map_or("?", |c| c.name()),
                        offences = e.offences,
                        "source over its limit, penalty started"
                    );
                }
            }
            if offences > OFFENCES_LOGGED_PER_TICK {
                info!(
                    iface = %iface.name,
                    more = offences - OFFENCES_LOGGED_PER_TICK,
                    "more sources went over their limits"
                );
            }
        }
        for decision in escalations {
            self.apply(decision);
        }
    }

    /// Removes expired blocks from the maps (the program already ignores them).
    pub fn expire(&mut self) -> Result<()> {
        let now = monotonic_coarse_ns();
        let expired: Vec<IpNet> = self
            .cli_blocks
            .iter()
            .filter(|(_, b)| b.expires_ns != 0 && b.expires_ns <= now)
            .map(|(n, _)| *n)
            .collect();
        let any = !expired.is_empty();
        for net in expired {
            self.for_each_dp(|dp| dp.unblock(net).map(|_| ()))?;
            self.cli_blocks.remove(&net);
            info!(cidr = %net, "block expired");
        }
        if any {
            self.save_state();
        }
        Ok(())
    }

    /// Re-reads the config file and list files; on any error the running state stays as it was.
    pub fn reload(&mut self) -> Result<()> {
        let Some(path) = self.config_path.clone() else {
            info!("SIGHUP: no config file, reloading list files only");
            return self.apply_config_lists();
        };
        let mut new = config::load(&path)?;
        // What the command line fixed, and what only a restart can change, stays.
        for (what, changed) in [
            ("socket", new.socket != self.settings.socket),
            ("bpffs", new.bpffs != self.settings.bpffs),
            (
                "sources.max_tracked",
                new.max_tracked != self.settings.max_tracked,
            ),
            (
                "events.ring_bytes",
                new.ring_bytes != self.settings.ring_bytes,
            ),
        ] {
            if changed {
                warn!(
                    field = what,
                    "changed in the config; takes effect at the next restart"
                );
            }
        }
        new.interfaces = self.settings.interfaces.clone();
        new.socket = self.settings.socket.clone();
        new.bpffs = self.settings.bpffs.clone();
        new.max_tracked = self.settings.max_tracked;
        new.ring_bytes = self.settings.ring_bytes;
        // A mode chosen with `levee mode` outlives a reload; limits come from the file again.
        if self.mode_from_cli {
            new.mode = self.settings.mode;
        }
        let cpus = cpu_count()?;
        let old = std::mem::replace(&mut self.settings, new);
        let applied = (|| -> Result<()> {
            let cfg = self.effective_config(&self.settings, cpus);
            let ports = self.settings.amp_ports.clone();
            self.for_each_dp(|dp| {
                dp.set_config(cfg)?;
                dp.set_amp_ports(&ports)
            })?;
            self.apply_config_lists()
        })();
        if let Err(e) = applied {
            self.settings = old;
            let cfg = self.effective_config(&self.settings, cpus);
            let ports = self.settings.amp_ports.clone();
            self.for_each_dp(|dp| {
                dp.set_config(cfg)?;
                dp.set_amp_ports(&ports)
            })?;
            return Err(e);
        }
        self.limits_from_cli = false;
        self.engine.set_config(self.settings.detection.clone());
        self.save_state();
        info!(config = %path.display(), mode = self.settings.mode.name(), "config reloaded");
        Ok(())
    }

    /// Detaches and removes the pins, or leaves everything in place with `keep_on_exit`.
    pub fn stop(mut self) -> Result<()> {
        self.log_events();
        if self.settings.keep_on_exit {
            info!("stopping; the filter stays attached (keep_on_exit)");
            return Ok(());
        }
        for iface in self.interfaces {
            let dir = pin_dir(&self.settings, &iface.name);
            Dataplane::unpin_link(&dir.join("link"))?;
            drop(iface.dp);
            if let Err(e) = fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), "cannot remove pins: {e}");
            }
            info!(iface = %iface.name, "detached");
        }
        Ok(())
    }

    pub fn socket_path(&self) -> &Path {
        &self.settings.socket
    }
}

/// Binds the control socket (mode 0600) before anything is attached, so a second daemon
/// fails here instead of taking over the first one's interfaces.
pub fn bind_socket(socket: &Path) -> Result<std::os::unix::net::UnixListener> {
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            bail!("another levee is already running on {}", socket.display());
        }
        fs::remove_file(socket)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the control socket and the timers until SIGINT or SIGTERM, then stops the daemon.
pub async fn serve(
    mut daemon: Daemon,
    listener: std::os::unix::net::UnixListener,
    metrics_listener: Option<std::net::TcpListener>,
) -> Result<()> {
    let socket = daemon.socket_path().to_path_buf();
    let listener = UnixListener::from_std(listener)?;
    info!(socket = %socket.display(), "control socket ready");
    if let Some(l) = metrics_listener {
        l.set_nonblocking(true)?;
        let l = tokio::net::TcpListener::from_std(l)?;
        info!(addr = %l.local_addr()?, "metrics at /metrics");
        let metrics = daemon.metrics.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(
                    |axum::extract::State(m): axum::extract::State<SharedMetrics>| async move {
                        let body = m.lock().map(|m| m.render()).unwrap_or_default();
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        )
                    },
                ),
            )
            .with_state(metrics);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, app).await {
                error!("metrics server stopped: {e}");
            }
        });
    }

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            conn = listener.accept() => match conn {
                Ok((stream, _)) => {
                    if let Err(e) = answer(stream, &mut daemon).await {
                        warn!("control connection: {e:#}");
                    }
                }
                Err(e) => warn!("accept: {e}"),
            },
            _ = tick.tick() => {
                if let Err(e) = daemon.expire() {
                    error!("expiring blocks: {e:#}");
                }
                // Rates first, so an offence in the second an attack starts is judged under
                // attack.
                let counters = daemon.read_counters();
                if let Ok(c) = &counters {
                    daemon.sample_rates(c);
                    daemon.detect();
                }
                daemon.log_events();
                let updated = counters.and_then(|c| daemon.update_metrics(&c));
                if let Err(e) = updated {
                    daemon.count_error();
                    error!("reading counters: {e:#}");
                }
            }
            _ = hup.recv() => {
                if let Err(e) = daemon.reload() {
                    error!("reload failed, the running config stays: {e:#}");
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = fs::remove_file(&socket);
    daemon.stop()
}

async fn answer(stream: UnixStream, daemon: &mut Daemon) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(read).read_line(&mut line),
    )
    .await
    .map_err(|_| anyhow!("client sent no request within 5 s"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => daemon.handle(request),
        Err(e) => Response::error(&anyhow!("malformed request: {e}")),
    };
    let mut out = serde_json::to_string(&response)?;
    out.push('\n');
    write.write_all(out.as_bytes()).await?;
    Ok(())
}
