//! `levee escalate`: its arguments, the rule they make, and the daemon's answer printed.

use std::time::Duration;

use clap::Subcommand;

use super::parsers::*;
use crate::{api::Request, cmd};

#[derive(Subcommand, Debug)]
pub enum EscalateCommand {
    /// Blackhole every packet to one protected address (a /32 or /128 with BLACKHOLE and
    /// NO_EXPORT): the last resort, the address goes dark.
    Rtbh {
        /// The attacked host (inside escalation.protected_prefixes).
        #[arg(value_parser = host)]
        dst: std::net::IpAddr,
        /// Withdrawn after this long (default escalation.default_ttl, at most max_ttl).
        #[arg(long, value_parser = ttl)]
        ttl: Option<Duration>,
        /// The neighbour group it goes to: upstream, fleet or both (escalation.neighbors[].role).
        #[arg(long, value_parser = audience, default_value = "upstream")]
        to: crate::escalation::Audience,
        /// Check and log the rule; announce nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Discard or rate-limit only the flood's shape to one protected address (FlowSpec), so
    /// the service stays up.
    Flowspec {
        /// The attacked host (inside escalation.protected_prefixes).
        #[arg(long, value_parser = host)]
        dst: std::net::IpAddr,
        #[command(flatten)]
        transport: Transport,
        /// Packet length range, LO-HI (bytes of the IP packet).
        #[arg(long, value_parser = len_range)]
        len: Option<(u16, u16)>,
        /// discard, or rate:BYTES (bytes a second).
        #[arg(long, value_parser = flow_action, default_value = "discard")]
        action: crate::escalation::FlowAction,
        /// Withdrawn after this long (default escalation.default_ttl, at most max_ttl).
        #[arg(long, value_parser = ttl)]
        ttl: Option<Duration>,
        /// The neighbour group it goes to: upstream, fleet or both (escalation.neighbors[].role).
        #[arg(long, value_parser = audience, default_value = "upstream")]
        to: crate::escalation::Audience,
        /// Check and log the rule; announce nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Share a block with the fleet: every node discards what SRC sends toward DST (FlowSpec
    /// with a source component; never sent upstream).
    Block {
        /// The source prefix (no wider than escalation.received_min_prefix_v4/v6).
        #[arg(long, value_parser = cidr)]
        src: ipnet::IpNet,
        /// The protected prefix it may not reach (inside escalation.protected_prefixes).
        #[arg(long, value_parser = cidr)]
        dst: ipnet::IpNet,
        /// Withdrawn after this long (default escalation.default_ttl, at most max_ttl).
        #[arg(long, value_parser = ttl)]
        ttl: Option<Duration>,
        /// Check and log the rule; announce nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The rules announced, read back from the BGP daemon's RIB, with their time left.
    List {
        /// The FlowSpec rules the neighbours sent instead, and what the program does with them
        /// (escalation.accept_flowspec).
        #[arg(long)]
        received: bool,
        #[arg(long)]
        json: bool,
    },
    /// Withdraw one rule by its id, or all of them.
    Withdraw {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<u32>,
        #[arg(long)]
        all: bool,
        /// Say what would be withdrawn; withdraw nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The request of a `levee escalate ...` command: the rule from the arguments.
pub(super) fn request(command: EscalateCommand) -> Request {
    use crate::escalation::{FlowRule, Rule};
    let (rule, to, ttl, dry_run) = match command {
        EscalateCommand::Rtbh {
            dst,
            ttl,
            to,
            dry_run,
        } => (Rule::Rtbh { dst }, to, ttl, dry_run),
        EscalateCommand::Block {
            src,
            dst,
            ttl,
            dry_run,
        } => (
            Rule::SourceBlock { src, dst },
            crate::escalation::Audience::Fleet,
            ttl,
            dry_run,
        ),
        EscalateCommand::Flowspec {
            dst,
            transport:
                Transport {
                    proto,
                    sport,
                    dport,
                },
            len,
            action,
            ttl,
            to,
            dry_run,
        } => {
            let rule = FlowRule {
                dst,
                proto,
                src_port: sport,
                dst_port: dport,
                len,
                action,
            };
            (Rule::FlowSpec(rule), to, ttl, dry_run)
        }
        EscalateCommand::List { received, json } => {
            return cmd::EscalateList { received, json }.into();
        }
        EscalateCommand::Withdraw {
            id,
            all: _,
            dry_run,
        } => return cmd::EscalateWithdraw { id, dry_run }.into(),
    };
    cmd::Escalate {
        rule,
        to,
        ttl,
        dry_run,
    }
    .into()
}
