//! Attaching the program to interfaces: native or generic XDP, through a link pinned under
//! bpffs so the filter can outlive the daemon and a restart can adopt it without a gap.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use aya::programs::{
    TcAttachType, XdpMode,
    links::{FdLink, PinnedLink},
    xdp::XdpLink,
};

use super::Dataplane;

/// How to attach to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native (driver) mode, else generic (skb) mode.
    Auto,
    Native,
    Generic,
}

/// The mode an attachment ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Native,
    Generic,
    /// A link pinned by an earlier run, now running this program (its mode is the earlier one).
    Adopted,
}

impl Attached {
    pub fn name(self) -> &'static str {
        match self {
            Attached::Native => "native",
            Attached::Generic => "generic",
            Attached::Adopted => "adopted",
        }
    }
}

impl Dataplane {
    /// Attaches to `iface`. Auto tries native mode first and falls back to generic mode.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<Attached> {
        let attempts: &[(XdpMode, Attached)] = match mode {
            AttachMode::Native => &[(XdpMode::Driver, Attached::Native)],
            AttachMode::Generic => &[(XdpMode::Skb, Attached::Generic)],
            AttachMode::Auto => &[
                (XdpMode::Driver, Attached::Native),
                (XdpMode::Skb, Attached::Generic),
            ],
        };
        let program = self.program_mut()?;
        let mut last_err = None;
        for (xdp_mode, attached) in attempts {
            match program.attach(iface, *xdp_mode) {
                Ok(id) => {
                    self.links.push((iface.to_string(), id, *attached));
                    return Ok(*attached);
                }
                Err(e) => last_err = Some(e),
            }
        }
        let err = last_err.expect("at least one attempt");
        Err(anyhow::Error::new(err))
            .with_context(|| format!("failed to attach to {iface} in {mode:?} mode"))
    }

    /// Attaches to `iface` through a link pinned at `link_pin`: an existing pin (left by an
    /// earlier run) has its program replaced atomically, without a moment unfiltered;
    /// otherwise a new link is made and pinned. The pin owns the link: it outlives this
    /// process until [`Dataplane::unpin_link`] removes it.
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: AttachMode,
        link_pin: &Path,
    ) -> Result<Attached> {
        if link_pin.exists() {
            let pinned = PinnedLink::from_pin(link_pin)
                .with_context(|| format!("cannot open the pinned link {}", link_pin.display()))?;
            let link = XdpLink::try_from(FdLink::from(pinned))
                .with_context(|| format!("{} is not an XDP link", link_pin.display()))?;
            let id = self.program_mut()?.attach_to_link(link).with_context(|| {
                format!(
                    "failed to replace the program on the link pinned at {}",
                    link_pin.display()
                )
            })?;
            self.links.push((iface.to_string(), id, Attached::Adopted));
            return Ok(Attached::Adopted);
        }
        let attached = self.attach(iface, mode)?;
        let (_, id, _) = self.links.pop().expect("attach recorded the link");
        let link = self.program_mut()?.take_link(id)?;
        let fd_link = FdLink::try_from(link).with_context(|| {
            format!("the kernel attached {iface} without a BPF link, which cannot be pinned")
        })?;
        fd_link
            .pin(link_pin)
            .with_context(|| format!("cannot pin the link at {}", link_pin.display()))?;
        Ok(attached)
    }

    /// Attaches the egress flow program to `iface` (tcx) through a link pinned at `pin`. A
    /// pin an earlier run left is replaced: flows are merely not recorded for that instant.
    pub fn attach_egress_pinned(&mut self, iface: &str, pin: &Path) -> Result<()> {
        Self::unpin_link(pin)?;
        let program = self.egress_program_mut()?;
        let id = program
            .attach(iface, TcAttachType::Egress)
            .with_context(|| format!("failed to attach the egress flow program to {iface}"))?;
        let link = program.take_link(id)?;
        let fd_link = FdLink::try_from(link)
            .with_context(|| format!("the egress program on {iface} has no BPF link to pin"))?;
        fd_link
            .pin(pin)
            .with_context(|| format!("cannot pin the egress link at {}", pin.display()))?;
        Ok(())
    }

    /// Removes a link pin; the link (and the attachment) ends when the last holder lets go.
    pub fn unpin_link(link_pin: &Path) -> Result<()> {
        match std::fs::remove_file(link_pin) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", link_pin.display())),
        }
    }

    /// Detaches from `iface`.
    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let Some(pos) = self.links.iter().position(|(i, _, _)| i == iface) else {
            bail!("not attached to {iface}");
        };
        let (_, id, _) = self.links.remove(pos);
        self.program_mut()?.detach(id)?;
        Ok(())
    }

    /// Interfaces attached and how.
    pub fn attachments(&self) -> Vec<(String, Attached)> {
        self.links.iter().map(|(i, _, a)| (i.clone(), *a)).collect()
    }
}
