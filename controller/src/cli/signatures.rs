//! `levee signatures`: list the flood signatures in force, pin, unpin or refuse one.

use clap::Subcommand;

use crate::{api::Request, cmd};

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

/// The request of a `levee signatures ...` command.
pub fn request(command: SignaturesCommand) -> Request {
    match command {
        SignaturesCommand::List { json } => cmd::Signatures { json }.into(),
        SignaturesCommand::Pin { id } => cmd::SignaturePin { id, pinned: true }.into(),
        SignaturesCommand::Unpin { id } => cmd::SignaturePin { id, pinned: false }.into(),
        SignaturesCommand::Refuse { id } => cmd::SignatureRefuse { id }.into(),
    }
}
