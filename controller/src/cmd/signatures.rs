//! `levee signatures`: the flood signatures in force; pin one past its attack, or refuse one
//! for good.

use std::{io::Write, time::Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::Command;
use crate::{
    controller::Controller,
    signatures::{SignatureView, fingerprint},
};

/// `levee signatures list [--json]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    #[arg(long)]
    #[serde(skip)]
    pub json: bool,
}

/// `levee signatures pin|unpin ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturePin {
    pub id: u32,
    pub pinned: bool,
}

/// `levee signatures refuse ID`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureRefuse {
    pub id: u32,
}

/// The signatures in force, a line each.
fn print_list(view: &[SignatureView], out: &mut dyn Write) -> Result<()> {
    if view.is_empty() {
        writeln!(out, "no flood signature in force")?;
    }
    for s in view {
        writeln!(out, "{}", crate::cli::print::signature_line(s))?;
    }
    Ok(())
}

impl Command for Signatures {
    type View = Vec<SignatureView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<SignatureView>> {
        Ok(list(c))
    }
    fn print(&self, view: &Vec<SignatureView>, out: &mut dyn Write) -> Result<()> {
        print_list(view, out)
    }
    fn json(&self) -> bool {
        self.json
    }
}

impl Command for SignaturePin {
    fn changes(&self) -> bool {
        true
    }
    type View = Vec<SignatureView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<SignatureView>> {
        pin(c, self.id, self.pinned)
    }
    fn print(&self, view: &Vec<SignatureView>, out: &mut dyn Write) -> Result<()> {
        print_list(view, out)
    }
}

impl Command for SignatureRefuse {
    fn changes(&self) -> bool {
        true
    }
    type View = Vec<SignatureView>;
    fn apply(self, c: &mut Controller) -> Result<Vec<SignatureView>> {
        refuse(c, self.id)
    }
    fn print(&self, view: &Vec<SignatureView>, out: &mut dyn Write) -> Result<()> {
        print_list(view, out)
    }
}

fn list(c: &Controller) -> Vec<SignatureView> {
    c.flood.book.view(Instant::now())
}

/// Pins (or unpins) signature `id`: a pinned one stays in force until unpinned. Only the
/// controller's books change; the program already holds it.
fn pin(c: &mut Controller, id: u32, pinned: bool) -> Result<Vec<SignatureView>> {
    c.flood.book.get(id)?;
    if let Some(a) = c.flood.book.active.iter_mut().find(|a| a.id == id) {
        a.pinned = pinned;
    }
    Ok(list(c))
}

/// Refuses signature `id`: out of the program now, and its fingerprint never installed again.
/// If the program cannot be written, nothing changes.
fn refuse(c: &mut Controller, id: u32) -> Result<Vec<SignatureView>> {
    let sig = c.flood.book.get(id)?.signature;
    let before = c.flood.book.table();
    let after: Vec<_> = before.iter().filter(|s| s.id != id).copied().collect();
    c.fleet.set_signatures(&after, &before)?;
    c.flood.book.active.retain(|a| a.id != id);
    c.flood.book.refused.push(fingerprint(&sig));
    if let Ok(hits) = c.fleet.signature_hits() {
        c.flood.book.rebase(&hits);
    }
    tracing::info!(id, signature = %crate::signatures::Text(sig), "flood signature refused by the operator");
    Ok(list(c))
}
