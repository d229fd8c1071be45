//! The command line: `levee run` starts the daemon; every other command talks to it over the
//! control socket. Values are parsed by the same parsers as the config file (as clap value
//! parsers), so a typo gets one line naming it and the daemon is never asked to do something
//! malformed.

mod admin;
mod capture;
mod escalate;
pub(crate) mod parsers;
pub(crate) mod print;
mod signatures;

pub use admin::{check_config, completions, man_pages, run_settings};
pub use escalate::EscalateCommand;
pub use parsers::MetricsAddr;
use parsers::*;

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    api::{self, Request, views},
    cmd,
    config::DEFAULT_SOCKET,
};

#[derive(Parser, Debug)]
#[command(
    name = "levee",
    version,
    about = "XDP DDoS mitigation: drop floods in the NIC driver"
)]
pub struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load Levee, attach to the interfaces and serve the control socket until SIGINT/SIGTERM.
    Run {
        /// TOML configuration file (see levee.example.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Interface to protect (repeat for several); adds to the config's list.
        #[arg(long = "iface", value_name = "IF", value_parser = iface)]
        ifaces: Vec<String>,
        /// auto (native, else generic), native or generic.
        #[arg(long, value_name = "MODE", value_parser = xdp_mode)]
        xdp_mode: Option<crate::dataplane::AttachMode>,
        /// Serve Prometheus metrics at ADDR:PORT/metrics (default 127.0.0.1:9750), or off.
        #[arg(long, value_name = "ADDR", value_parser = metrics_addr)]
        metrics: Option<MetricsAddr>,
    },
    #[command(flatten)]
    Client(cmd::TopLevel),
    /// Blocked prefixes.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Allowlisted prefixes: they skip every check, in every mode.
    #[command(subcommand)]
    Allow(AllowCommand),
    /// Per-source limits and aggregate ceilings by class.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Flood signatures: list them, pin, unpin or refuse one.
    #[command(subcommand)]
    Signatures(signatures::SignaturesCommand),
    /// Write the first bytes of the packets the filter judges to a pcapng file (-w FILE) or
    /// to standard output (-w -, for `| tcpdump -r -` or Wireshark), each with its verdict as
    /// a comment. The kernel copies at most --budget packets a second per CPU.
    Capture(capture::CaptureArgs),
    /// Check a config file as `levee run` and a reload would read it (the file, then its list
    /// files), without touching the daemon: exit 0, or one line naming the field and line.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (levee.8 and one per subcommand) into DIR, from these definitions.
    #[command(hide = true)]
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The verdict a packet from SOURCE would get now on each interface, and every stage's say.
    ///
    /// The stages in the program's order (BGP session, allowlist, lockdown, blocklist,
    /// signatures, strict, per-source limiter, aggregate ceiling, received rules), read from
    /// the program's maps,
    /// with where each list entry came from. The first stage that objects decides; a stage
    /// whose say depends on a detail not given (--proto, --sport...) is marked so.
    Explain {
        /// The packet's source address.
        #[arg(value_name = "SOURCE", value_parser = address)]
        source: std::net::IpAddr,
        /// The protected address it is sent to (strict's services bound to one address, the
        /// received rules' destinations).
        #[arg(long, value_name = "ADDR", value_parser = address)]
        dst: Option<std::net::IpAddr>,
        #[command(flatten)]
        transport: Transport,
        /// A TCP SYN (class tcp_syn); without it a TCP segment is tcp_other.
        #[arg(long)]
        syn: bool,
        #[arg(long)]
        json: bool,
    },
    /// Ask the upstream routers to drop a flood that fills the link (BGP RTBH or FlowSpec,
    /// through gobgpd; see [escalation] in the config).
    #[command(subcommand)]
    Escalate(EscalateCommand),
}

#[derive(Subcommand, Debug)]
pub enum BlockCommand {
    /// Block a prefix (a bare address blocks that address).
    Add(cmd::BlockAdd),
    /// Remove a blocked prefix.
    Del(cmd::BlockDel),
    /// List blocked prefixes with their time left.
    List(cmd::BlockList),
}

#[derive(Subcommand, Debug)]
pub enum LimitsCommand {
    /// Show the limits (0: no limit).
    Show(cmd::LimitsShow),
    /// Change a class's per-source limit (or, with --aggregate, its ceiling); 0 removes it.
    Set(cmd::LimitsChange),
}

#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// Allowlist a prefix.
    Add(cmd::AllowAdd),
    /// Remove an allowlisted prefix.
    Del(cmd::AllowDel),
    /// List allowlisted prefixes.
    List(cmd::AllowList),
}

/// Runs a client command: sends it, prints the answer. A closed stdout (`levee block list |
/// head`) ends it quietly.
pub fn client(socket: Option<PathBuf>, command: Command) -> Result<()> {
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut out = io::stdout().lock();
    match ask(&socket, command, &mut out).and_then(|()| Ok(out.flush()?)) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

/// Sends one command to the daemon and prints its answer as the command says.
pub(crate) fn send(socket: &Path, request: Request, out: &mut dyn Write) -> Result<()> {
    request.check()?;
    let data = api::request_raw(socket, &request)?;
    request.print(&data, out)
}

/// Asks the daemon and prints its answer, as a table or as JSON.
fn ask(socket: &Path, command: Command, out: &mut impl Write) -> Result<()> {
    let request: Request = match command {
        Command::Run { .. }
        | Command::CheckConfig { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("not a client command"),
        Command::Client(cmd::TopLevel::Top(c)) if live(&c) => return top_live(socket, c, out),
        Command::Client(c) => c.into(),
        Command::Block(BlockCommand::Add(c)) => c.into(),
        Command::Block(BlockCommand::Del(c)) => c.into(),
        Command::Block(BlockCommand::List(c)) => c.into(),
        Command::Allow(AllowCommand::Add(c)) => c.into(),
        Command::Allow(AllowCommand::Del(c)) => c.into(),
        Command::Allow(AllowCommand::List(c)) => c.into(),
        Command::Limits(LimitsCommand::Show(c)) => c.into(),
        Command::Limits(LimitsCommand::Set(c)) => c.into(),
        Command::Escalate(c) => escalate::request(c),
        Command::Signatures(c) => signatures::request(c),
        Command::Capture(args) => return capture::capture(socket, args),
        Command::Explain {
            source,
            dst,
            transport:
                Transport {
                    proto,
                    sport,
                    dport,
                },
            syn,
            json,
        } => {
            let packet = api::ExplainPacket::new(source, proto, sport, dport, syn)?.to(dst)?;
            cmd::Explain { packet, json }.into()
        }
    };
    send(socket, request, out)
}

/// `levee top` redraws its table in place every second on a terminal, unless told otherwise.
fn live(top: &cmd::Top) -> bool {
    use std::io::IsTerminal as _;
    !top.once && !top.json && io::stdout().is_terminal()
}

/// `levee top` on a terminal: the table redrawn in place every second.
fn top_live(socket: &Path, top: cmd::Top, out: &mut impl Write) -> Result<()> {
    use print::Print;
    let request: Request = top.into();
    loop {
        let top: Vec<views::TalkerView> = api::request(socket, &request)?;
        // Home the cursor and clear the screen, then draw.
        write!(out, "\x1b[H\x1b[2J")?;
        writeln!(
            out,
            "levee top: heaviest sources of the last 10 s (Ctrl-C to quit)\n"
        )?;
        top.print(out)?;
        out.flush()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests;
