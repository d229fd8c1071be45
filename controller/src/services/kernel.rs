//! The kernel settings the program's SYN cookies need, set while strict may engage and put
//! back on exit, and the SYN-ACK parameters read from the kernel so the connection the
//! kernel makes from a cookie matches what the SYN-ACK said.
//!
//! - `net.ipv4.tcp_syncookies = 2`: the kernel takes a cookie ACK even when it never itself
//!   overflowed (it covers IPv6 too).
//! - `net.ipv4.tcp_timestamps = 2` (from 1): timestamps without a per-connection random
//!   offset, so the options the program encodes in its timestamp decode the same way in the
//!   kernel. With 0 the kernel has no timestamps and the program offers none.
//!
//! Followed, not owned ([`HostTcp`]): `tcp_sack`, `tcp_window_scaling` and `tcp_ecn` decide
//! what the SYN-ACK may agree to.

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

/// Settings changed by Levee, put back by [`KernelSettings::restore`].
#[derive(Debug, Default)]
pub struct KernelSettings {
    changed: Vec<(String, String, String)>,
}

impl KernelSettings {
    /// Sets what the SYN cookies need; each change is logged.
    pub fn apply() -> Result<KernelSettings> {
        let mut k = KernelSettings::default();
        k.set("ipv4.tcp_syncookies", |_| Some("2"))?;
        k.set("ipv4.tcp_timestamps", |v| (v == "1").then_some("2"))?;
        Ok(k)
    }

    fn set(&mut self, name: &str, want: impl Fn(&str) -> Option<&'static str>) -> Result<()> {
        let old = read(name)?;
        if let Some(new) = want(&old).filter(|n| *n != old) {
            write(name, new)?;
            info!(setting = %format!("net.{name}"), from = %old, to = new, "kernel setting changed for SYN cookies");
            self.changed.push((name.to_string(), old, new.to_string()));
        }
        Ok(())
    }

    /// Puts every changed setting back (unless someone changed it since).
    pub fn restore(&mut self) {
        for (name, old, new) in self.changed.drain(..).rev() {
            match read(&name) {
                Ok(now) if now == new => match write(&name, &old) {
                    Ok(()) => {
                        info!(setting = %format!("net.{name}"), to = %old, "kernel setting restored")
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
                .find(|(n, _, _)| n == name)
                .map(|(_, old, _)| old.clone()),
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
    pub sack: bool,
    pub wscale: bool,
    /// `net.ipv4.tcp_ecn` 1 or 2 (the default): the connection keeps ECN a client asked for.
    pub ecn: bool,
}

impl HostTcp {
    pub fn read() -> HostTcp {
        let on = |name| read(name).is_ok_and(|v| v != "0");
        HostTcp {
            sack: on("ipv4.tcp_sack"),
            wscale: on("ipv4.tcp_window_scaling"),
            ecn: on("ipv4.tcp_ecn"),
        }
    }
}

/// MSS to offer for an interface's MTU (IPv4, IPv6).
pub fn mss_for(iface: &str) -> (u16, u16) {
    let mtu = fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1500);
    (
        mtu.saturating_sub(40).max(536),
        mtu.saturating_sub(60).max(1220),
    )
}
