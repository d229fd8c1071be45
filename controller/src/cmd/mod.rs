//! The control commands. Each is one type, in its family's file: the clap arguments of its
//! CLI command (where the CLI takes them as they are), the request on the wire (serde, tagged
//! by `cmd`), and what [`Command::apply`] takes; beside it, whether it changes saved state and
//! how its answer prints. Adding a command is its type with its `impl Command`, one line in
//! [`commands!`] below, and its place in the CLI tree (`cli::Command`).

mod allow;
mod block;
pub mod escalate;
pub mod explain;
mod limits;
mod mode;
mod show;
mod signatures;

use std::io::Write;

use anyhow::Result;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

use crate::controller::Controller;

pub use self::{
    allow::{AllowAdd, AllowDel, AllowList},
    block::{BlockAdd, BlockDel, BlockList},
    escalate::{Escalate, EscalateList, EscalateWithdraw},
    explain::Explain,
    limits::{LimitsChange, LimitsShow},
    mode::SetMode,
    show::{Capture, Services, Stats, Status, Top},
    signatures::{SignaturePin, SignatureRefuse, Signatures},
};

/// One command: applied by the daemon, its answer printed by the CLI.
pub trait Command {
    /// Applying it changes what the state file keeps: the file is written (once per batch)
    /// before the answer leaves, so a restart keeps the change.
    fn changes(&self) -> bool {
        false
    }
    /// The answer's data.
    type View: Serialize + DeserializeOwned;
    /// Changes the controller all-or-nothing and returns the answer.
    fn apply(self, c: &mut Controller) -> Result<Self::View>;
    /// The answer as the CLI prints it (without `--json`).
    fn print(&self, view: &Self::View, out: &mut dyn Write) -> Result<()>;
    /// `--json`: the CLI prints the answer's data as JSON instead.
    fn json(&self) -> bool {
        false
    }
    /// What the CLI checks before asking the daemon (which checks it again).
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// The command list: each command's wire name (the variant, in snake_case) and its type.
macro_rules! commands {
    ($($variant:ident($ty:ty),)+) => {
        /// A request from the CLI: one command, tagged by its name (`{"cmd":"block_add",...}`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        pub enum Request {
            $($variant($ty),)+
        }

        impl Request {
            /// Whether applying it changes what the state file keeps.
            pub fn changes(&self) -> bool {
                match self {
                    $(Request::$variant(cmd) => cmd.changes(),)+
                }
            }

            /// Applies it; the answer's data as JSON.
            pub fn apply(self, c: &mut Controller) -> Result<Box<RawValue>> {
                match self {
                    $(Request::$variant(cmd) => json(cmd.apply(c)),)+
                }
            }

            /// Prints the daemon's answer `data` to it, as the CLI shows it.
            pub fn print(&self, data: &RawValue, out: &mut dyn Write) -> Result<()> {
                match self {
                    $(Request::$variant(cmd) => print(cmd, data, out),)+
                }
            }

            /// What the CLI checks before asking.
            pub fn check(&self) -> Result<()> {
                match self {
                    $(Request::$variant(cmd) => cmd.check(),)+
                }
            }
        }

        $(impl From<$ty> for Request {
            fn from(cmd: $ty) -> Request {
                Request::$variant(cmd)
            }
        })+
    };
}

commands! {
    Status(Status),
    Mode(SetMode),
    BlockAdd(BlockAdd),
    BlockDel(BlockDel),
    BlockList(BlockList),
    AllowAdd(AllowAdd),
    AllowDel(AllowDel),
    AllowList(AllowList),
    Stats(Stats),
    Services(Services),
    Top(Top),
    LimitsShow(LimitsShow),
    LimitsSet(LimitsChange),
    Capture(Capture),
    Escalate(Escalate),
    EscalateList(EscalateList),
    EscalateWithdraw(EscalateWithdraw),
    Signatures(Signatures),
    SignaturePin(SignaturePin),
    SignatureRefuse(SignatureRefuse),
    Explain(Explain),
}

fn json<T: Serialize>(view: Result<T>) -> Result<Box<RawValue>> {
    Ok(serde_json::value::to_raw_value(&view?)?)
}

fn print<C: Command>(cmd: &C, data: &RawValue, out: &mut dyn Write) -> Result<()> {
    let view: C::View = serde_json::from_str(data.get())
        .map_err(|e| anyhow::anyhow!("unexpected answer from the daemon: {e}"))?;
    if cmd.json() {
        serde_json::to_writer_pretty(&mut *out, &view)?;
        writeln!(out)?;
        return Ok(());
    }
    cmd.print(&view, out)
}
