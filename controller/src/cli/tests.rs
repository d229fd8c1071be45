//! The command line's contract: what parses, and what is refused before the daemon is asked.

use super::*;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("levee").chain(args.iter().copied())).unwrap()
}

fn refused(args: &[&str]) -> String {
    let e = Cli::try_parse_from(std::iter::once("levee").chain(args.iter().copied()))
        .expect_err("refused");
    e.to_string()
}

#[test]
fn the_definition_is_consistent() {
    use clap::CommandFactory as _;
    Cli::command().debug_assert();
    let Command::Run { metrics, .. } = parse(&["run", "--metrics", "off"]).command else {
        panic!("run");
    };
    assert_eq!(metrics, Some(MetricsAddr(None)));
}

#[test]
fn contract_parses() {
    assert!(
        matches!(parse(&["run", "--iface", "eth0", "--iface", "eth1"]).command, Command::Run { ref ifaces, .. } if ifaces.len() == 2)
    );
    assert!(matches!(
        parse(&["mode", "enforce"]).command,
        Command::Client(cmd::TopLevel::Mode(cmd::SetMode {
            mode: Some(filter_common::abi::Mode::Enforce)
        }))
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
        Command::Block(BlockCommand::Add(cmd::BlockAdd { ttl: Some(t), .. })) if t == Duration::from_secs(600)
    ));
    assert!(matches!(
        parse(&["allow", "list", "--json"]).command,
        Command::Allow(AllowCommand::List(cmd::AllowList { json: true }))
    ));
    assert!(Cli::try_parse_from(["levee", "block", "frobnicate"]).is_err());
}

#[test]
fn bad_values_are_refused_before_the_daemon_is_asked() {
    for (args, want) in [
        (&["mode", "panic"][..], "unknown mode \"panic\""),
        (&["block", "add", "10.0.0.300/8"], "malformed CIDR"),
        (
            &["block", "add", "192.0.2.0/24", "--ttl", "soon"],
            "malformed duration",
        ),
        (
            &["block", "add", "192.0.2.0/24", "--ttl", "0s"],
            "at least 1s",
        ),
        (&["allow", "del", "x"], "malformed CIDR"),
        (
            &["limits", "set", "--class", "sctp", "--pps", "1"],
            "unknown class",
        ),
        (&["run", "--iface", ".."], "not an interface name"),
        (&["explain", "198.51.100.300"], "not an IP address"),
        (
            &["explain", "198.51.100.7", "--proto", "sctpx"],
            "not udp, tcp",
        ),
        (
            &[
                "explain",
                "198.51.100.7",
                "--proto",
                "udp",
                "--dport",
                "65536",
            ],
            "65536",
        ),
    ] {
        let e = refused(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    let nowhere = Some(PathBuf::from("/nonexistent/levee.sock"));
    // Checked before the daemon is asked: a port without TCP or UDP.
    let Command::Explain {
        source,
        transport: Transport {
            proto,
            sport,
            dport,
        },
        syn,
        ..
    } = parse(&[
        "explain",
        "198.51.100.7",
        "--proto",
        "icmp",
        "--sport",
        "123",
    ])
    .command
    else {
        panic!("explain");
    };
    let e = api::ExplainPacket::new(source, proto, sport, dport, syn).unwrap_err();
    assert_eq!(e.to_string(), "--sport: a port needs --proto tcp or udp");
    let e = format!(
        "{:#}",
        client(
            nowhere,
            Command::Client(cmd::TopLevel::Stats(cmd::Stats { json: false }))
        )
        .unwrap_err()
    );
    assert!(e.starts_with("levee is not running"), "{e}");
}
