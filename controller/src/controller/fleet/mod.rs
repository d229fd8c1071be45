//! The protected interfaces, one loaded program each, written as one: every change goes to
//! all of them or to none (a failure on one undoes it on those already changed), so a refused
//! command changes nothing anywhere.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{MapData, RingBuf};
use filter_common::abi::Config;
use ipnet::IpNet;
use tracing::{error, info, warn};

mod writes;

use super::claim::Claim;
use crate::{
    config::Settings,
    dataplane::{AttachMode, Attached, Counters, Dataplane, Expiry, List, LoadOptions},
    services::kernel,
};

/// One protected interface.
pub struct Interface {
    pub name: String,
    pub attached: Attached,
    pub dp: Dataplane,
    /// Sampled headers.
    pub events: RingBuf<MapData>,
    /// Offences (a ring of their own).
    pub offences: RingBuf<MapData>,
    /// Copies for `levee capture` (a ring of their own).
    pub capture: RingBuf<MapData>,
    /// This daemon's claim on the interface (see [`Claim`]).
    _claim: Claim,
    /// This start made its pin folder: a refused start removes it again.
    created: bool,
    /// Its new lists were written while the program was verified (see [`Prefill`]).
    prefilled: bool,
}

/// The lists a start writes into new maps while the kernel verifies the program.
pub struct Prefill {
    pub blocks: Vec<(IpNet, Expiry)>,
    pub allows: Vec<(IpNet, Expiry)>,
}

#[derive(Default)]
pub struct Fleet {
    pub interfaces: Vec<Interface>,
    bpffs: PathBuf,
}

/// Where an interface's maps and link are pinned.
pub fn pin_dir(bpffs: &Path, iface: &str) -> PathBuf {
    bpffs.join("levee").join(iface)
}

impl Fleet {
    /// Loads the program for every interface (reusing maps an earlier run pinned) with
    /// `config` in place. Nothing is attached yet: [`Fleet::attach`] does that.
    pub fn load(settings: &Settings, config: Config, prefill: Option<&Prefill>) -> Result<Fleet> {
        let d = &settings.daemon;
        if d.interfaces.is_empty() {
            bail!("no interface to protect: give --iface IF or `interfaces` in the config");
        }
        for name in &d.interfaces {
            let c = std::ffi::CString::new(name.as_str())?;
            // SAFETY: a valid NUL-terminated name.
            if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
                bail!("interface {name} does not exist (in this network namespace)");
            }
        }
        ensure_bpffs(&d.bpffs)?;
        let mut fleet = Fleet {
            interfaces: Vec::new(),
            bpffs: d.bpffs.clone(),
        };
        for name in &d.interfaces {
            if let Err(e) = fleet.load_one(settings, config, name, prefill) {
                fleet.roll_back();
                return Err(e);
            }
        }
        Ok(fleet)
    }

    fn load_one(
        &mut self,
        settings: &Settings,
        config: Config,
        name: &str,
        prefill: Option<&Prefill>,
    ) -> Result<()> {
        let dir = pin_dir(&self.bpffs, name);
        let created = !dir.exists();
        // Only maps this start creates are empty, so only those can be filled blindly.
        let prefill = prefill.filter(|_| created);
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {} (is bpffs mounted?)", dir.display()))?;
        let claimed = Claim::take(name, &dir);
        let loaded = claimed.and_then(|claim| {
            let options = LoadOptions {
                max_sources: settings.filter.sources.max_tracked,
                event_bytes: settings.events.ring_bytes,
                pin_dir: Some(dir.clone()),
            };
            let config = kernel::for_interface(config, name);
            let mut dp = Dataplane::load_with(&options, config, |fds| match prefill {
                Some(p) => {
                    fds.fill(List::Block, &p.blocks)?;
                    fds.fill(List::Allow, &p.allows)
                }
                None => Ok(()),
            })
            .with_context(|| format!("interface {name}"))?;
            dp.name_log(name);
            dp.set_amp_ports(&settings.filter.signatures.amp_port_list)?;
            let events = dp.take_events()?;
            let offences = dp.take_offences()?;
            let capture = dp.take_capture()?;
            Ok((claim, dp, events, offences, capture))
        });
        match loaded {
            Ok((claim, dp, events, offences, capture)) => {
                self.interfaces.push(Interface {
                    name: name.to_string(),
                    attached: Attached::Native,
                    dp,
                    events,
                    offences,
                    capture,
                    _claim: claim,
                    created,
                    prefilled: prefill.is_some(),
                });
                Ok(())
            }
            Err(e) => {
                if created {
                    let _ = fs::remove_dir_all(&dir);
                }
                Err(e)
            }
        }
    }

    /// Undoes a start that was refused after the programs were loaded: what this start
    /// created (pins, links) is removed, so the interface is as it was; a filter an earlier
    /// run left gets its previous configuration back.
    pub fn roll_back(&mut self) {
        for iface in std::mem::take(&mut self.interfaces) {
            let dir = pin_dir(&self.bpffs, &iface.name);
            if iface.created {
                let _ = Dataplane::unpin_link(&dir.join("link"));
                let _ = Dataplane::unpin_link(&dir.join(EGRESS_LINK));
                drop(iface.dp);
                let _ = fs::remove_dir_all(&dir);
                continue;
            }
            let mut dp = iface.dp;
            if let Some(previous) = dp.previous_config()
                && let Err(e) = dp.set_config(previous)
            {
                error!(iface = %iface.name, "cannot restore the running filter's configuration: {e:#}");
            }
            warn!(iface = %iface.name, "the filter the last run left keeps running");
        }
    }

    /// Attaches every program through its pinned link (adopting a link an earlier run left).
    pub fn attach(&mut self, mode: AttachMode) -> Result<()> {
        for iface in &mut self.interfaces {
            let link = pin_dir(&self.bpffs, &iface.name).join("link");
            iface.attached = iface
                .dp
                .attach_pinned(&iface.name, mode, &link)
                .with_context(|| format!("interface {}", iface.name))?;
            match iface.attached {
                Attached::Generic if mode == AttachMode::Auto => warn!(
                    iface = %iface.name,
                    "native XDP unavailable, attached in generic mode (slower)"
                ),
                a => info!(iface = %iface.name, attach = a.name(), "attached"),
            }
        }
        Ok(())
    }

    /// Attaches the egress flow program beside each XDP program (tcx), pinned so a
    /// `keep_on_exit` filter goes on recording flows.
    pub fn attach_egress(&mut self) -> Result<()> {
        for iface in &mut self.interfaces {
            let pin = pin_dir(&self.bpffs, &iface.name).join(EGRESS_LINK);
            iface
                .dp
                .attach_egress_pinned(&iface.name, &pin)
                .with_context(|| format!("interface {}", iface.name))?;
        }
        Ok(())
    }

    /// Whether some interface's lists are still to be written (not prefilled).
    pub fn needs_converge(&self) -> bool {
        self.interfaces.iter().any(|i| !i.prefilled)
    }

    /// Whether the maps were reused from an earlier run (a restart with keep_on_exit).
    pub fn adopted(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| i.dp.previous_config().is_some())
    }

    pub fn first(&self) -> &Dataplane {
        &self.interfaces[0].dp
    }

    /// Every interface's counters.
    pub fn counters(&self) -> Result<Vec<(String, Counters)>> {
        self.interfaces
            .iter()
            .map(|i| Ok((i.name.clone(), i.dp.counters()?)))
            .collect()
    }

    /// The program's trigger per CPU of every interface, one interface after the other.
    pub fn triggers(&self) -> Result<Vec<filter_common::abi::TriggerState>> {
        let mut out = Vec::new();
        for i in &self.interfaces {
            out.extend(i.dp.triggers()?);
        }
        Ok(out)
    }

    /// Detaches every interface and removes its pins.
    pub fn detach(self) -> Result<()> {
        for iface in self.interfaces {
            let dir = pin_dir(&self.bpffs, &iface.name);
            Dataplane::unpin_link(&dir.join("link"))?;
            Dataplane::unpin_link(&dir.join(EGRESS_LINK))?;
            drop(iface.dp);
            if let Err(e) = fs::remove_dir_all(&dir) {
                warn!(dir = %dir.display(), "cannot remove pins: {e}");
            }
            info!(iface = %iface.name, "detached");
        }
        Ok(())
    }
}

/// The pin of the egress program's link, beside the XDP link.
const EGRESS_LINK: &str = "egress_link";

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
