//! The kernel settings the program's SYN cookies need, set while strict may engage and put
//! back on exit, and the SYN-ACK parameters read from the kernel so the connection the
//! kernel makes from a cookie matches what the SYN-ACK said.
//!
//! - `net.ipv4.tcp_syncookies = 2`: the kernel takes a cookie ACK even when it never itself
//!   overflowed (it covers IPv6 too).
//! - `net.ipv4.tcp_timestamps = 2` (from 1): timestamps without a per-connection random
//!   offset, so the options the program encodes in its timestamp decode the same way in the
//!   kernel. With 0 the kernel has no timestamps and the program offers none (followed).
//!
//! Both are put back every tick if someone changes them ([`KernelSettings::watch`]).
//! Followed, not owned ([`HostTcp`]): `tcp_timestamps` when 0, `tcp_sack`,
//! `tcp_window_scaling` and `tcp_ecn` decide what the SYN-ACK may agree to.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const SYSCTL: &str = "/proc/sys/net";

fn path(name: &str) -> PathBuf {
    PathBuf::from(SYSCTL).join(name.replace('.', "/"))
}

fn read(name: &str) -> Result<String> {
    fs::read_to_string(path(name))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("cannot read net.{name}"))
}

fn write(name: &str, value: &str) -> Result<()> {
    fs::write(path(name), value).with_context(|| format!("cannot set net.{name} = {value}"))
}

/// One setting as `levee status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingView {
    pub name: String,
    pub value: String,
    /// What it was before Levee set it (put back on exit); None: left as found.
    pub was: Option<String>,
}

/// The settings Levee owns while strict may engage, and the value each must have now.
const OWNED: [&str; 2] = ["ipv4.tcp_syncookies", "ipv4.tcp_timestamps"];

fn wanted(name: &str, now: &str) -> Option<&'static str> {
    match name {
        "ipv4.tcp_syncookies" => Some("2"),
        // 1 adds a random per-connection offset; 0 (no timestamps) is followed instead.
        "ipv4.tcp_timestamps" => (now == "1").then_some("2"),
        _ => None,
    }
}

/// A setting Levee changed: put back to `was` at stop, unless someone changed it since. Kept
/// in the state file, so a run that never put it back (a crash, `keep_on_exit`) leaves it to
/// the next one's stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    /// Under `net.`, as `ipv4.tcp_syncookies`.
    pub name: String,
    pub was: String,
    pub set: String,
}

/// Settings changed by Levee, put back by [`KernelSettings::restore`].
#[derive(Debug, Default)]
pub struct KernelSettings {
    changed: Vec<Changed>,
}

impl KernelSettings {
    /// Sets what the SYN cookies need; each change is logged. `inherited`: what an earlier run
    /// changed and never put back, taken over where the setting still holds that run's value.
    pub fn apply(inherited: &[Changed]) -> Result<KernelSettings> {
        let mut k = KernelSettings::inherit(inherited);
        for c in &k.changed {
            info!(setting = %format!("net.{}", c.name), was = %c.was, "kernel setting left by an earlier run; put back at stop");
        }
        for name in OWNED {
            if let Some((old, new)) = k.set(name)? {
                info!(setting = %format!("net.{name}"), from = %old, to = new, "kernel setting changed for SYN cookies");
            }
        }
        Ok(k)
    }

    /// Puts back at once what an earlier run changed and never put back (a crash), for a
    /// start that owns no setting (strict off): nothing outlives the run that changed it.
    pub fn put_back(inherited: &[Changed]) {
        let mut k = KernelSettings::inherit(inherited);
        for c in &k.changed {
            info!(setting = %format!("net.{}", c.name), was = %c.was, "kernel setting left by an earlier run; put back now (strict is off)");
        }
        k.restore();
    }

    /// What an earlier run changed, where the setting still holds that run's value.
    fn inherit(inherited: &[Changed]) -> KernelSettings {
        KernelSettings {
            changed: inherited
                .iter()
                .filter(|c| OWNED.contains(&c.name.as_str()))
                .filter(|c| read(&c.name).is_ok_and(|v| v == c.set))
                .cloned()
                .collect(),
        }
    }

    /// Gives `name` the value it must have now; returns (found, set) if it changed it. The
    /// value to put back at stop stays the first one found.
    fn set(&mut self, name: &str) -> Result<Option<(String, &'static str)>> {
        let now = read(name)?;
        let Some(new) = wanted(name, &now).filter(|n| *n != now) else {
            return Ok(None);
        };
        write(name, new)?;
        match self.changed.iter_mut().find(|c| c.name == name) {
            Some(c) => c.set = new.to_string(),
            None => self.changed.push(Changed {
                name: name.to_string(),
                was: now.clone(),
                set: new.to_string(),
            }),
        }
        Ok(Some((now, new)))
    }

    /// Once a tick: puts back every owned setting someone changed since, each logged.
    /// Returns the settings put back (for the metric) and the errors (a setting that cannot
    /// be read or written; the others are still checked).
    pub fn watch(&mut self) -> (Vec<String>, Vec<anyhow::Error>) {
        let (mut put_back, mut errors) = (Vec::new(), Vec::new());
        for name in OWNED {
            match self.set(name) {
                Ok(Some((found, to))) => {
                    warn!(setting = %format!("net.{name}"), %found, %to, "kernel setting changed behind Levee's back; put back");
                    put_back.push(format!("net.{name}"));
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (put_back, errors)
    }

    /// What must be put back if this run never does it (for the state file).
    pub fn changed(&self) -> &[Changed] {
        &self.changed
    }

    /// Puts every changed setting back (unless someone changed it since).
    pub fn restore(&mut self) {
        for Changed { name, was, set } in self.changed.drain(..).rev() {
            match read(&name) {
                Ok(now) if now == set => match write(&name, &was) {
                    Ok(()) => {
                        info!(setting = %format!("net.{name}"), to = %was, "kernel setting restored")
                    }
                    Err(e) => warn!("{e:#}"),
                },
                Ok(now) => {
                    warn!(setting = %format!("net.{name}"), %now, "changed by someone else since; left as is")
                }
                Err(e) => warn!("{e:#}"),
            }
        }
    }

    pub fn view(&self) -> Vec<SettingView> {
        [
            "ipv4.tcp_syncookies",
            "ipv4.tcp_timestamps",
            "ipv4.tcp_sack",
            "ipv4.tcp_window_scaling",
            "ipv4.tcp_ecn",
        ]
        .iter()
        .map(|name| SettingView {
            name: format!("net.{name}"),
            value: read(name).unwrap_or_else(|_| "?".into()),
            was: self
                .changed
                .iter()
                .find(|c| c.name == *name)
                .map(|c| c.was.clone()),
        })
        .collect()
    }
}

/// The window scale the kernel gives a connection it makes from a cookie: the one its
/// `tcp_select_initial_window` picks for the largest receive buffer.
pub fn kernel_wscale() -> u8 {
    let rmem = read("ipv4.tcp_rmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
        .unwrap_or(6 << 20);
    let core = read("core.rmem_max")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let mut space = rmem.max(core);
    let mut wscale = 0u8;
    while space > 65535 && wscale < 14 {
        space >>= 1;
        wscale += 1;
    }
    wscale
}

/// What the host's TCP takes on a connection it makes from a cookie, so our SYN-ACK offers
/// no more: the kernel refuses a cookie that encodes SACK with `net.ipv4.tcp_sack` 0, or a
/// window scale with `net.ipv4.tcp_window_scaling` 0, and resets the client. Settings the
/// program follows, not owns: read at start and every tick. Unreadable: off (a connection
/// without the option still works).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTcp {
    /// `net.ipv4.tcp_timestamps` not 0: the cookie's options travel in a timestamp.
    pub timestamps: bool,
    pub sack: bool,
    pub wscale: bool,
    /// `net.ipv4.tcp_ecn` 1 or 2 (the default): the connection keeps ECN a client asked for.
    pub ecn: bool,
}

impl HostTcp {
    pub fn read() -> HostTcp {
        let on = |name| read(name).is_ok_and(|v| v != "0");
        HostTcp {
            timestamps: on("ipv4.tcp_timestamps"),
            sack: on("ipv4.tcp_sack"),
            wscale: on("ipv4.tcp_window_scaling"),
            ecn: on("ipv4.tcp_ecn"),
        }
    }
}

/// `config` for the program on `iface`: its SYN-ACKs offer the MSS of that interface's MTU
/// (a client behind a jumbo link gets a jumbo MSS, one behind a 1500 link does not).
pub fn for_interface(
    mut config: filter_common::abi::Config,
    iface: &str,
) -> filter_common::abi::Config {
    (config.synack_mss_v4, config.synack_mss_v6) = mss_for(iface);
    config
}

/// MSS to offer for an interface's MTU (IPv4, IPv6).
fn mss_for(iface: &str) -> (u16, u16) {
    let mtu = fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1500);
    (
        mtu.saturating_sub(40).max(536),
        mtu.saturating_sub(60).max(1220),
    )
}
