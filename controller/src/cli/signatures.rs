//! `levee signatures`: list the flood signatures in force, pin, unpin or refuse one.

use std::{io::Write, path::Path};

use anyhow::Result;
use clap::Subcommand;

use crate::{
    api::{self, Request},
    signatures::SignatureView,
};

#[derive(Subcommand, Debug)]
pub enum SignaturesCommand {
    /// The signatures in force: what each matches, what it dropped, how long it has left.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Keep a signature in force after its attack ends, until unpinned.
    Pin { id: u32 },
    /// Let a pinned signature end with its attack again.
    Unpin { id: u32 },
    /// Drop a signature now and never install its fingerprint again (kept across restarts).
    Refuse { id: u32 },
}

pub fn run(socket: &Path, command: SignaturesCommand, out: &mut impl Write) -> Result<()> {
    let (request, json) = match command {
        SignaturesCommand::List { json } => (Request::Signatures, json),
        SignaturesCommand::Pin { id } => (Request::SignaturePin { id, pinned: true }, false),
        SignaturesCommand::Unpin { id } => (Request::SignaturePin { id, pinned: false }, false),
        SignaturesCommand::Refuse { id } => (Request::SignatureRefuse { id }, false),
    };
    let view: Vec<SignatureView> = api::request(socket, &request)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &view)?;
        writeln!(out)?;
        return Ok(());
    }
    if view.is_empty() {
        writeln!(out, "no flood signature in force")?;
    }
    for s in &view {
        writeln!(out, "{}", super::print::signature_line(s))?;
    }
    Ok(())
}
