//! The command line: `levee run` starts the daemon; every other command talks to it over the
//! control socket. Values are checked here first, so a typo gets one line naming it and the
//! daemon is never asked to do something malformed.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::{
    api::{self, Request},
    config::{self, DEFAULT_SOCKET, parse_cidr, parse_duration, parse_mode, parse_xdp_mode},
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
        #[arg(long = "iface", value_name = "IF")]
        ifaces: Vec<String>,
        /// auto (native, else generic), native or generic.
        #[arg(long, value_name = "MODE")]
        xdp_mode: Option<String>,
        /// Serve Prometheus metrics at ADDR:PORT/metrics (default 127.0.0.1:9750), or off.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Mode, interfaces, list sizes, packets and the top drop reasons.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Show the mitigation mode, or switch it: off, monitor, enforce, lockdown.
    Mode { mode: Option<String> },
    /// Blocked prefixes.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Allowlisted prefixes: they skip every check, in every mode.
    #[command(subcommand)]
    Allow(AllowCommand),
    /// Per-source limits and aggregate ceilings by class.
    #[command(subcommand)]
    Limits(LimitsCommand),
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
}

#[derive(Subcommand, Debug)]
pub enum BlockCommand {
    /// Block a prefix (a bare address blocks that address).
    Add {
        cidr: String,
        /// Remove the block after this long (30s, 10m, 2h); without it the block stays.
        #[arg(long)]
        ttl: Option<String>,
        /// A note shown by `block list`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove a blocked prefix.
    Del { cidr: String },
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
    Set {
        /// tcp_syn, tcp_other, udp, icmp or other; all classes when absent.
        #[arg(long)]
        class: Option<String>,
        /// Set the aggregate ceiling (all sources together) instead of the per-source limit.
        #[arg(long)]
        aggregate: bool,
        /// Packets per second.
        #[arg(long)]
        pps: Option<u64>,
        /// Bits per second.
        #[arg(long)]
        bps: Option<u64>,
        /// Packets allowed at once after an idle time.
        #[arg(long)]
        burst: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AllowCommand {
    /// Allowlist a prefix.
    Add { cidr: String },
    /// Remove an allowlisted prefix.
    Del { cidr: String },
    /// List allowlisted prefixes.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// The validated settings for `levee run`: the config file, then the command line on top.
pub fn run_settings(
    socket: Option<PathBuf>,
    config: Option<&PathBuf>,
    ifaces: &[String],
    xdp_mode: Option<&str>,
    metrics: Option<&str>,
) -> Result<config::Settings> {
    let mut s = match config {
        Some(path) => config::load(path)?,
        None => config::Settings::default(),
    };
    for i in ifaces {
        if !s.interfaces.contains(i) {
            s.interfaces.push(i.clone());
        }
    }
    if let Some(m) = xdp_mode {
        s.xdp_mode = parse_xdp_mode(m).map_err(|e| anyhow::anyhow!("--xdp-mode: {e:#}"))?;
    }
    if let Some(p) = socket {
        s.socket = p;
    }
    if let Some(m) = metrics {
        s.metrics =
            config::parse_metrics_addr(m).map_err(|e| anyhow::anyhow!("--metrics: {e:#}"))?;
    }
    Ok(s)
}

/// Runs a client command: checks it, sends it, prints the answer. Returns the exit code.
pub fn client(socket: Option<PathBuf>, command: Command) -> Result<()> {
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    if let Command::Top {
        n,
        once: false,
        json: false,
    } = command
    {
        use std::io::IsTerminal as _;
        if std::io::stdout().is_terminal() {
            return top_live(&socket, n);
        }
    }
    let (request, json, print): (Request, bool, fn(&Value)) = match command {
        Command::Run { .. } => unreachable!("run is not a client command"),
        Command::Status { json } => (Request::Status, json, print_status),
        Command::Mode { mode } => {
            if let Some(m) = &mode {
                parse_mode(m)?;
            }
            (Request::Mode { mode }, false, print_plain)
        }
        Command::Block(BlockCommand::Add { cidr, ttl, reason }) => {
            parse_cidr(&cidr)?;
            let ttl_secs = match ttl {
                Some(t) => {
                    let d = parse_duration(&t).map_err(|e| anyhow::anyhow!("--ttl: {e:#}"))?;
                    if d.as_secs() == 0 {
                        anyhow::bail!("--ttl: must be at least 1s, got {t:?}");
                    }
                    Some(d.as_secs())
                }
                None => None,
            };
            (
                Request::BlockAdd {
                    cidr,
                    ttl_secs,
                    reason,
                },
                false,
                print_added("blocked"),
            )
        }
        Command::Block(BlockCommand::Del { cidr }) => {
            parse_cidr(&cidr)?;
            (Request::BlockDel { cidr }, false, print_added("unblocked"))
        }
        Command::Block(BlockCommand::List { json }) => (Request::BlockList, json, print_blocks),
        Command::Allow(AllowCommand::Add { cidr }) => {
            parse_cidr(&cidr)?;
            (
                Request::AllowAdd { cidr },
                false,
                print_added("allowlisted"),
            )
        }
        Command::Allow(AllowCommand::Del { cidr }) => {
            parse_cidr(&cidr)?;
            (
                Request::AllowDel { cidr },
                false,
                print_added("removed from the allowlist"),
            )
        }
        Command::Allow(AllowCommand::List { json }) => (Request::AllowList, json, print_lines),
        Command::Stats { json } => (Request::Stats, json, print_stats),
        Command::Top { n, json, .. } => (Request::Top { n }, json, print_top),
        Command::Limits(LimitsCommand::Show { json }) => (Request::LimitsShow, json, print_limits),
        Command::Limits(LimitsCommand::Set {
            class,
            aggregate,
            pps,
            bps,
            burst,
        }) => {
            if let Some(c) = &class {
                config::parse_class(c).map_err(|e| anyhow::anyhow!("--class: {e:#}"))?;
            }
            if pps.is_none() && bps.is_none() && burst.is_none() {
                anyhow::bail!("nothing to set: give --pps, --bps or --burst");
            }
            (
                Request::LimitsSet {
                    class,
                    aggregate,
                    pps,
                    bps,
                    burst,
                },
                false,
                print_limits,
            )
        }
    };
    let data = api::request(&socket, &request)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        print(&data);
    }
    Ok(())
}

fn print_plain(v: &Value) {
    println!("{}", v.as_str().unwrap_or_default());
}

fn print_added(what: &'static str) -> fn(&Value) {
    match what {
        "blocked" => |v| println!("blocked {}", v.as_str().unwrap_or_default()),
        "unblocked" => |v| println!("unblocked {}", v.as_str().unwrap_or_default()),
        "allowlisted" => |v| println!("allowlisted {}", v.as_str().unwrap_or_default()),
        _ => |v| {
            println!(
                "removed {} from the allowlist",
                v.as_str().unwrap_or_default()
            )
        },
    }
}

fn print_lines(v: &Value) {
    for item in v.as_array().into_iter().flatten() {
        println!("{}", item.as_str().unwrap_or_default());
    }
}

fn print_blocks(v: &Value) {
    println!("{:<43} {:>10}  REASON", "CIDR", "TTL");
    for b in v.as_array().into_iter().flatten() {
        let ttl = match b["ttl_secs"].as_u64() {
            Some(s) => format!("{s}s"),
            None => "-".into(),
        };
        println!(
            "{:<43} {:>10}  {}",
            b["cidr"].as_str().unwrap_or_default(),
            ttl,
            b["reason"].as_str().unwrap_or("-")
        );
    }
}

fn print_stats(v: &Value) {
    println!(
        "{:<11} {:<20} {:>14} {:>16}",
        "ACTION", "REASON", "PACKETS", "BYTES"
    );
    for c in v.as_array().into_iter().flatten() {
        println!(
            "{:<11} {:<20} {:>14} {:>16}",
            c["action"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
            c["packets"].as_u64().unwrap_or(0),
            c["bytes"].as_u64().unwrap_or(0)
        );
    }
}

/// `levee top` on a terminal: the table redrawn in place every second.
fn top_live(socket: &std::path::Path, n: usize) -> Result<()> {
    loop {
        let data = api::request(socket, &Request::Top { n })?;
        // Home the cursor and clear the screen, then draw.
        print!("\x1b[H\x1b[2J");
        println!("levee top: heaviest sources of the last 10 s (Ctrl-C to quit)\n");
        print_top(&data);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn print_top(v: &Value) {
    println!(
        "{:<40} {:<10} {:>12} {:>14} {:>8}",
        "SOURCE", "CLASS", "RATE", "BANDWIDTH", "DROPPED"
    );
    for t in v.as_array().into_iter().flatten() {
        println!(
            "{:<40} {:<10} {:>12} {:>14} {:>7}%",
            t["source"].as_str().unwrap_or_default(),
            t["class"].as_str().unwrap_or_default(),
            format!("{} pps", t["pps"].as_u64().unwrap_or(0)),
            format!(
                "{:.1} Mbit/s",
                t["bits_per_sec"].as_u64().unwrap_or(0) as f64 / 1e6
            ),
            t["dropped_pct"].as_u64().unwrap_or(0)
        );
    }
}

fn print_limits(v: &Value) {
    let rate = |n: u64, unit: &str, scale: f64| {
        if n == 0 {
            "-".to_string()
        } else if scale == 1.0 {
            format!("{n} {unit}")
        } else {
            format!("{:.1} {unit}", n as f64 / scale)
        }
    };
    for (title, key) in [
        ("per source", "per_source"),
        ("aggregate (all sources)", "aggregate"),
    ] {
        println!("{title}");
        println!(
            "  {:<10} {:>14} {:>10} {:>14} {:>12}",
            "CLASS", "RATE", "BURST", "BANDWIDTH", "BURST"
        );
        for class in ["tcp_syn", "tcp_other", "udp", "icmp", "other"] {
            let r = &v[key][class];
            let n = |f: &str| r[f].as_u64().unwrap_or(0);
            println!(
                "  {:<10} {:>14} {:>10} {:>14} {:>12}",
                class,
                rate(n("pps"), "pps", 1.0),
                if n("pps") == 0 {
                    "-".into()
                } else {
                    format!("{} pkt", n("burst"))
                },
                rate(n("bps"), "Mbit/s", 1e6),
                if n("bps") == 0 {
                    "-".into()
                } else {
                    format!("{} B", n("burst_bytes"))
                },
            );
        }
    }
}

fn print_status(v: &Value) {
    println!("mode        {}", v["mode"].as_str().unwrap_or_default());
    for i in v["interfaces"].as_array().into_iter().flatten() {
        println!(
            "interface   {} ({})",
            i["name"].as_str().unwrap_or_default(),
            i["attach"].as_str().unwrap_or_default()
        );
    }
    println!("uptime      {}s", v["uptime_secs"].as_u64().unwrap_or(0));
    println!(
        "lists       {} blocked, {} allowlisted",
        v["blocklist_entries"].as_u64().unwrap_or(0),
        v["allowlist_entries"].as_u64().unwrap_or(0)
    );
    println!(
        "packets     {} seen, {} dropped",
        v["packets"].as_u64().unwrap_or(0),
        v["dropped"].as_u64().unwrap_or(0)
    );
    let r = &v["rates"];
    let n = |f: &str| r[f].as_u64().unwrap_or(0);
    println!(
        "rate        {} pps ({:.1} Mbit/s) passed, {} pps ({:.1} Mbit/s) dropped",
        n("pass_pps"),
        n("pass_bps") as f64 / 1e6,
        n("drop_pps"),
        n("drop_bps") as f64 / 1e6
    );
    let attacked: Vec<String> = v["attack"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, s)| s.as_str() != Some("normal"))
        .map(|(c, s)| format!("{c} {}", s.as_str().unwrap_or_default()))
        .collect();
    println!(
        "attack      {}",
        if attacked.is_empty() {
            "none".to_string()
        } else {
            attacked.join(", ")
        }
    );
    let decisions: Vec<String> = v["decisions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{k} {}", n.as_u64().unwrap_or(0)))
        .collect();
    if !decisions.is_empty() {
        println!("detection   {}", decisions.join(", "));
    }
    for c in v["top_reasons"].as_array().into_iter().flatten() {
        println!(
            "  {:<10} {:<20} {:>14}",
            c["action"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
            c["packets"].as_u64().unwrap_or(0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("levee").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn contract_parses() {
        assert!(
            matches!(parse(&["run", "--iface", "eth0", "--iface", "eth1"]).command, Command::Run { ref ifaces, .. } if ifaces.len() == 2)
        );
        assert!(matches!(
            parse(&["mode", "enforce"]).command,
            Command::Mode { mode: Some(_) }
        ));
        assert!(matches!(
            parse(&[
                "--socket",
                "/tmp/s",
                "block",
                "add",
                "192.0.2.0/24",
                "--ttl",
                "10m",
                "--reason",
                "x"
            ])
            .command,
            Command::Block(BlockCommand::Add { .. })
        ));
        assert!(matches!(
            parse(&["allow", "list", "--json"]).command,
            Command::Allow(AllowCommand::List { json: true })
        ));
        assert!(Cli::try_parse_from(["levee", "block", "frobnicate"]).is_err());
    }

    #[test]
    fn bad_values_are_refused_before_the_daemon_is_asked() {
        let nowhere = Some(PathBuf::from("/nonexistent/levee.sock"));
        for (cmd, want) in [
            (
                Command::Mode {
                    mode: Some("panic".into()),
                },
                "unknown mode \"panic\"",
            ),
            (
                Command::Block(BlockCommand::Add {
                    cidr: "10.0.0.300/8".into(),
                    ttl: None,
                    reason: None,
                }),
                "malformed CIDR",
            ),
            (
                Command::Block(BlockCommand::Add {
                    cidr: "192.0.2.0/24".into(),
                    ttl: Some("soon".into()),
                    reason: None,
                }),
                "--ttl: malformed duration",
            ),
            (
                Command::Allow(AllowCommand::Del { cidr: "x".into() }),
                "malformed CIDR",
            ),
        ] {
            let e = format!("{:#}", client(nowhere.clone(), cmd).unwrap_err());
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("not running"), "checked before connecting: {e}");
        }
        let e = format!(
            "{:#}",
            client(nowhere, Command::Stats { json: false }).unwrap_err()
        );
        assert!(e.starts_with("levee is not running"), "{e}");
    }
}
