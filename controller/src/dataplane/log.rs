//! The program's diagnostics: the rare failures it reports through aya-log (a map update
//! refused, a helper's unexpected error; see filter-ebpf's `diag`) are read from its AYA_LOGS
//! ring and forwarded to the daemon's `tracing` log, naming the interface the program runs on.
//! The ring belongs to one loaded object (the XDP, SYN-cookie and egress programs of one
//! interface share it) and is never pinned: each load starts a fresh one.

use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use aya::Ebpf;
use aya_log::EbpfLogger;

/// Where the program's records go: `tracing`, under the target `levee::program`, with the
/// interface (`iface`) and the place in the program's source (`at`) as fields.
struct Forward {
    iface: Arc<Mutex<String>>,
}

impl log::Log for Forward {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let iface = self.iface.lock().map(|n| n.clone()).unwrap_or_default();
        let at = match (record.file(), record.line()) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => String::new(),
        };
        let message = record.args();
        match record.level() {
            log::Level::Error => {
                tracing::error!(target: "levee::program", iface = %iface, at = %at, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "levee::program", iface = %iface, at = %at, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "levee::program", iface = %iface, at = %at, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "levee::program", iface = %iface, at = %at, "{message}")
            }
            log::Level::Trace => {
                tracing::trace!(target: "levee::program", iface = %iface, at = %at, "{message}")
            }
        }
    }

    fn flush(&self) {}
}

/// The reader of one loaded object's log ring. It holds the ring's descriptor, which the
/// programs' loading needs: it is made right after the maps and lives as long as the
/// [`super::Dataplane`].
pub(super) struct ProgramLog {
    logger: EbpfLogger<Forward>,
    iface: Arc<Mutex<String>>,
}

impl ProgramLog {
    /// Takes the object's AYA_LOGS ring; call before the programs are loaded.
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<ProgramLog> {
        let iface = Arc::new(Mutex::new(String::from("-")));
        let logger = EbpfLogger::init_with_logger(
            ebpf,
            Forward {
                iface: iface.clone(),
            },
        )
        .context("cannot read the program's log ring (AYA_LOGS)")?;
        Ok(ProgramLog { logger, iface })
    }

    /// Names the interface in the records forwarded from now on.
    pub(super) fn name(&self, iface: &str) {
        if let Ok(mut name) = self.iface.lock() {
            *name = iface.to_owned();
        }
    }

    /// Forwards every record waiting in the ring; never blocks.
    pub(super) fn flush(&mut self) {
        self.logger.flush();
    }
}
