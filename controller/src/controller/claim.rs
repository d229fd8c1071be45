//! One daemon per interface: a daemon holds an exclusive lock (flock) on each interface's pin
//! folder under bpffs for as long as it runs, whatever its socket, so a second one is refused
//! with a line naming the first instead of taking the interface over. The kernel drops the
//! lock when the process ends, however it ends.

use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

/// The lock on one interface's pin folder; released when dropped or when the process ends.
#[derive(Debug)]
pub struct Claim {
    _dir: File,
}

impl Claim {
    /// Claims `dir` (the interface's pin folder, which must exist) for this daemon.
    pub fn take(iface: &str, dir: &Path) -> Result<Claim> {
        let file = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
        // SAFETY: flock(2) on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
                bail!(
                    "interface {iface} is already protected by another levee ({}); stop it first",
                    holder(inode).unwrap_or_else(|| "its process is unknown".into())
                );
            }
            return Err(err).with_context(|| format!("cannot lock {}", dir.display()));
        }
        Ok(Claim { _dir: file })
    }
}

/// "pid N: levee run --config ..." for the process holding a flock on `inode`, from
/// /proc/locks.
fn holder(inode: u64) -> Option<String> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // 1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF
        let (kind, pid, id) = (f.get(1)?, f.get(4)?, f.get(5)?);
        let ino: u64 = id.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && ino == inode).then(|| pid.to_string())
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(format!("pid {pid}: {}", args.join(" ")))
}
