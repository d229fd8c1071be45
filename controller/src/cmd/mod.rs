//! The control commands. Each is one type, in its family's file: the clap arguments of its
//! CLI command (where the CLI takes them as they are), the request on the wire (serde, tagged
//! by `cmd`), and what [`Command::apply`] takes; beside it, whether it changes saved state and
//! how its answer prints. Adding a top-level command is its file (type and `impl Command`),
//! its `mod` line and its line in [`commands!`] below, which also puts it in the CLI; a
//! command of a family (`levee block ...`) takes its place in that family's CLI enum too.

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
/// Those under `cli` are also the CLI's top-level commands (`levee status`...), with their
/// help; the others are reached through a family of the CLI tree (`levee block add`...) or
/// built from arguments of another shape.
macro_rules! commands {
    (
        cli { $($(#[$doc:meta])* $cli:ident($cty:ty),)+ }
        other { $($other:ident($oty:ty),)+ }
    ) => {
        /// A request from the CLI: one command, tagged by its name (`{"cmd":"block_add",...}`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "cmd", rename_all = "snake_case")]
        pub enum Request {
            $($cli($cty),)+
            $($other($oty),)+
        }

        /// The CLI's top-level commands that are requests as they are.
        #[derive(clap::Subcommand, Debug)]
        pub enum TopLevel {
            $($(#[$doc])* $cli($cty),)+
        }

        impl From<TopLevel> for Request {
            fn from(cmd: TopLevel) -> Request {
                match cmd {
                    $(TopLevel::$cli(c) => Request::$cli(c),)+
                }
            }
        }

        impl Request {
            /// Whether applying it changes what the state file keeps.
            pub fn changes(&self) -> bool {
                match self {
                    $(Request::$cli(cmd) => cmd.changes(),)+
                    $(Request::$other(cmd) => cmd.changes(),)+
                }
            }

            /// Applies it; the answer's data as JSON.
            pub fn apply(self, c: &mut Controller) -> Result<Box<RawValue>> {
                match self {
                    $(Request::$cli(cmd) => json(cmd.apply(c)),)+
                    $(Request::$other(cmd) => json(cmd.apply(c)),)+
                }
            }

            /// Prints the daemon's answer `data` to it, as the CLI shows it.
            pub fn print(&self, data: &RawValue, out: &mut dyn Write) -> Result<()> {
                match self {
                    $(Request::$cli(cmd) => print(cmd, data, out),)+
                    $(Request::$other(cmd) => print(cmd, data, out),)+
                }
            }

            /// What the CLI checks before asking.
            pub fn check(&self) -> Result<()> {
                match self {
                    $(Request::$cli(cmd) => cmd.check(),)+
                    $(Request::$other(cmd) => cmd.check(),)+
                }
            }
        }

        $(impl From<$cty> for Request {
            fn from(cmd: $cty) -> Request {
                Request::$cli(cmd)
            }
        })+
        $(impl From<$oty> for Request {
            fn from(cmd: $oty) -> Request {
                Request::$other(cmd)
            }
        })+
    };
}

commands! {
    cli {
        /// Mode, interfaces, list sizes, packets and the top drop reasons.
        Status(show::Status),
        /// Show the mitigation mode, or switch it: off, monitor, enforce, lockdown.
        Mode(mode::SetMode),
        /// The heaviest sources of the last 10 seconds, estimated from sampled headers; on a
        /// terminal refreshed in place every second until Ctrl-C.
        Top(show::Top),
        /// Packet counters by action and reason.
        Stats(show::Stats),
        /// What the host serves, as strict mode knows it: configured services and the host's
        /// listening sockets.
        Services(show::Services),
    }
    other {
        BlockAdd(block::BlockAdd),
        BlockDel(block::BlockDel),
        BlockList(block::BlockList),
        AllowAdd(allow::AllowAdd),
        AllowDel(allow::AllowDel),
        AllowList(allow::AllowList),
        LimitsShow(limits::LimitsShow),
        LimitsSet(limits::LimitsChange),
        Capture(show::Capture),
        Escalate(escalate::Escalate),
        EscalateList(escalate::EscalateList),
        EscalateWithdraw(escalate::EscalateWithdraw),
        Signatures(signatures::Signatures),
        SignaturePin(signatures::SignaturePin),
        SignatureRefuse(signatures::SignatureRefuse),
        Explain(explain::Explain),
    }
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
