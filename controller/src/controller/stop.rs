//! Shut-down: what the CLI set is saved, the programs are detached and the kernel settings
//! put back (or all left in place with `keep_on_exit`), and the rules announced upstream are
//! withdrawn last, within a bounded wait.

use anyhow::Result;
use tracing::{error, info, warn};

use super::{Controller, persist};

impl Controller {
    /// Detaches and removes the pins, or leaves everything in place with `keep_on_exit`.
    pub fn stop(mut self) -> Result<()> {
        self.drain_capture();
        self.end_capture("levee is stopping");
        self.drain_events();
        self.judge_offences();
        let _ = self.save_state();
        // Rules received from the neighbours leave a program that stays: without Levee
        // nobody follows their withdrawal (their lease would end them within seconds).
        let mut bgp = self.bgp.take();
        if let Some(u) = &bgp
            && u.enforces_received()
            && self.settings.daemon.keep_on_exit
            && let Err(e) = self.fleet.set_upstream_rules(&[], &[])
        {
            error!("cannot clear the received FlowSpec rules at stop: {e:#}");
        }
        let detached = if self.settings.daemon.keep_on_exit {
            info!(
                "stopping; the filter stays attached (keep_on_exit), kernel settings as they are"
            );
            Ok(())
        } else {
            self.detach_and_restore()
        };
        // Rules announced upstream are withdrawn last, even with keep_on_exit (nobody would
        // expire them), within a bounded wait: a hung gobgpd never leaves XDP attached.
        if let Some(u) = &mut bgp {
            u.stop();
        }
        detached
    }

    /// Detaches the programs and puts the kernel settings back; once they are, the next
    /// start has nothing to take over.
    fn detach_and_restore(mut self) -> Result<()> {
        let mut state = persist::State::of(&self);
        state.kernel.clear();
        let path = self.settings.daemon.state_file.clone();
        if self.settings.strict.mode != crate::config::StrictMode::Off {
            self.save_familiar();
        }
        let detached = self.fleet.detach();
        if let Some(k) = &mut self.strict.kernel {
            k.restore();
            if let Err(e) = persist::save(&path, &state) {
                warn!("cannot save the state: {e:#}");
            }
        }
        detached
    }
}
