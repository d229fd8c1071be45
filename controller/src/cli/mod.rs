//! The command line: `levee run` starts the daemon; every other command talks to it over the
//! control socket. Values are parsed by the same parsers as the config file (as clap value
//! parsers), so a typo gets one line naming it and the daemon is never asked to do something
//! malformed.

mod admin;
mod capture;
mod escalate;
mod parsers;
mod print;
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
use filter_common::abi::Mode;
use ipnet::IpNet;

use crate::{
    api::{self, Request, views},
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
    /// Mode, interfaces, list sizes, packets and the top drop reasons.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the mitigation mode, or switch it: off, monitor, enforce, lockdown.
    Mode {
        #[arg(value_parser = mode)]
        mode: Option<Mode>,
    },
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
    /// The heaviest sources of the last 10 seconds, estimated from sampled headers; on a
    /// terminal refreshed in place every second until Ctrl-C.
    Top {
        /// How many sources.
        #[arg(long, default_value_t = 20)]
        n: usize,
        /// Print once and exit (always the case with --json or when not on a terminal).
        #[arg(long)]
        once: bool,
        #[arg(long)]
        json: bool,
    },
    /// Packet counters by action and reason.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// What the host serves, as strict mode knows it: configured services and the host's
    /// listening sockets.
    Services {
        #[arg(long)]
        json: bool,
    },
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
    Add {
        #[arg(value_parser = cidr)]
        cidr: IpNet,
        /// Remove the block after this long (30s, 10m, 2h); without it the block stays.
        #[arg(long, value_parser = ttl)]
        ttl: Option<Duration>,
        /// A note shown by `block list`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove a blocked prefix.
    Del {
        #[arg(value_parser = cidr)]
        cidr: IpNet,
    },
    /// List blocked prefixes with their time left.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LimitsCommand {
    /// Show the limits (0: no limit).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Change a class's per-source limit (or, with --aggregate, its ceiling); 0 removes it.
    Set(api::LimitsChange),
}

#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// Allowlist a prefix.
    Add {
        #[arg(value_parser = cidr)]
        cidr: IpNet,
    },
    /// Remove an allowlisted prefix.
    Del {
        #[arg(value_parser = cidr)]
        cidr: IpNet,
    },
    /// List allowlisted prefixes.
    List {
        #[arg(long)]
        json: bool,
    },
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

/// Asks the daemon and prints its typed answer, as a table or as JSON.
fn ask(socket: &Path, command: Command, out: &mut impl Write) -> Result<()> {
    use print::Print;
    fn show<T: serde::de::DeserializeOwned + serde::Serialize + Print>(
        socket: &Path,
        request: Request,
        json: bool,
        out: &mut impl Write,
    ) -> Result<()> {
        let view: T = api::request(socket, &request)?;
        if json {
            serde_json::to_writer_pretty(&mut *out, &view)?;
            writeln!(out)?;
        } else {
            view.print(out)?;
        }
        Ok(())
    }
    /// A list change, said with the prefix the daemon changed.
    fn done(
        socket: &Path,
        request: Request,
        say: impl Fn(IpNet) -> String,
        out: &mut impl Write,
    ) -> Result<()> {
        let views::Prefix(net) = api::request(socket, &request)?;
        Ok(writeln!(out, "{}", say(net))?)
    }
    match command {
        Command::Run { .. }
        | Command::CheckConfig { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("not a client command"),
        Command::Status { json } => show::<views::StatusView>(socket, Request::Status, json, out),
        Command::Mode { mode } => {
            let views::ModeName(m) = api::request(socket, &Request::Mode { mode })?;
            Ok(writeln!(out, "{}", m.name())?)
        }
        Command::Block(BlockCommand::Add { cidr, ttl, reason }) => {
            let request = Request::BlockAdd { cidr, ttl, reason };
            done(socket, request, |n| format!("blocked {n}"), out)
        }
        Command::Block(BlockCommand::Del { cidr }) => done(
            socket,
            Request::BlockDel { cidr },
            |n| format!("unblocked {n}"),
            out,
        ),
        Command::Block(BlockCommand::List { json }) => {
            show::<Vec<views::BlockView>>(socket, Request::BlockList, json, out)
        }
        Command::Allow(AllowCommand::Add { cidr }) => done(
            socket,
            Request::AllowAdd { cidr },
            |n| format!("allowlisted {n}"),
            out,
        ),
        Command::Allow(AllowCommand::Del { cidr }) => done(
            socket,
            Request::AllowDel { cidr },
            |n| format!("removed {n} from the allowlist"),
            out,
        ),
        Command::Allow(AllowCommand::List { json }) => {
            show::<Vec<views::Prefix>>(socket, Request::AllowList, json, out)
        }
        Command::Services { json } => {
            show::<Vec<crate::services::ServiceView>>(socket, Request::Services, json, out)
        }
        Command::Stats { json } => {
            show::<Vec<views::CounterView>>(socket, Request::Stats, json, out)
        }
        Command::Top { n, once, json } => {
            use std::io::IsTerminal as _;
            if !once && !json && io::stdout().is_terminal() {
                return top_live(socket, n, out);
            }
            show::<Vec<views::TalkerView>>(socket, Request::Top { n }, json, out)
        }
        Command::Limits(LimitsCommand::Show { json }) => {
            show::<views::LimitsView>(socket, Request::LimitsShow, json, out)
        }
        Command::Limits(LimitsCommand::Set(change)) => {
            if change.pps.is_none() && change.bps.is_none() && change.burst.is_none() {
                anyhow::bail!("nothing to set: give --pps, --bps or --burst");
            }
            show::<views::LimitsView>(socket, Request::LimitsSet(change), false, out)
        }
        Command::Escalate(c) => escalate::escalate(socket, c, out),
        Command::Signatures(c) => signatures::run(socket, c, out),
        Command::Capture(args) => capture::capture(socket, args),
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
            show::<views::ExplainView>(socket, Request::Explain { packet }, json, out)
        }
    }
}

/// `levee top` on a terminal: the table redrawn in place every second.
fn top_live(socket: &Path, n: usize, out: &mut impl Write) -> Result<()> {
    use print::Print;
    loop {
        let top: Vec<views::TalkerView> = api::request(socket, &Request::Top { n })?;
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
