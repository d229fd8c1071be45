//! `cargo xtask demo --fleet`: three Levee nodes on one anycast prefix, each in namespaces of
//! its own, with bird2 as the route reflector of their iBGP sessions. A reflection flood (from
//! a game server's query port) lands on node A only: A detects it and shares its rule for the
//! flood's shape and its block of the verified flooder; B and C enforce both and drop what
//! matches, although no packet of the flood reached them, while their crowd on the same port
//! keeps its service; when A's attack is over, its rule leaves them. Ends with a table of who
//! learned what and when, from the nodes' own logs.

use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use levee_tests::{
    bgp::wait,
    fleet::{FleetLab, NODES, log_times, node_address},
    flood::{FLOOD_PORT, FLOODER},
    netns::{CLIENT_V4, PROTECTED_V4},
    traffic::{addr, drain},
};

/// Every node: enforcing, strict off (detection's threshold path), UDP attacks declared above
/// 5,000 pps, samples for the attack's shape.
const CONFIG: &str = "mode = \"enforce\"\n[strict]\nmode = \"off\"\n[detection]\nrecovery_secs = 2\n\
     [detection.floor_pps]\nudp = 5000\n[events]\nsample_every = 16";

const NAMES: [&str; NODES] = ["A", "B", "C"];
/// The reflection's source port (A2S, a game server's query port).
const REFLECTED: u16 = 27015;

fn step(what: &str) -> Result<()> {
    if crate::INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    println!("\n$ {what}");
    Ok(())
}

pub fn run() -> Result<()> {
    println!(
        "Levee fleet demo: nodes A, B and C (AS 64512) each protect 198.18.0.0/24 (the anycast \
         198.18.0.1 on each), bird2 reflects their FlowSpec rules"
    );
    let mut fleet = FleetLab::start(CONFIG);
    fleet.nodes[0].reflected(REFLECTED);
    let sessions = fleet.wait_sessions(60);
    step("birdc show protocols (the reflector)")?;
    for (i, s) in sessions.iter().enumerate() {
        println!("  {s}   <- node {} at {}", NAMES[i], node_address(i));
    }
    if !sessions.iter().all(|s| s.contains("Established")) {
        bail!("not every session came up: {sessions:?}");
    }

    step(&format!(
        "a UDP reflection flood from {FLOODER}:{REFLECTED} to node A's {PROTECTED_V4}:{FLOOD_PORT}, 30,000 pps, A only"
    ))?;
    let a = fleet.node(0);
    let shared = fleet.nodes[0].flood_at(30_000.0, || {
        let log = wait(20, || a.log(), |l| l.contains("detection shared a block"));
        if !log.contains("detection shared a block") {
            return false;
        }
        // What B and C enforce, as their operators would list it.
        let enforced = |i: usize| {
            wait(
                10,
                || fleet.node(i).cli_ok(&["escalate", "list", "--received"]),
                |s| s.matches("enforced").count() >= 2,
            )
        };
        for (i, name) in NAMES.iter().enumerate().skip(1) {
            println!("  node {name}: levee escalate list --received");
            for line in enforced(i).lines() {
                println!("    {line}");
            }
        }
        // Traffic of the flood's shape, and the crowd on the same port, sent to B and C.
        for (node, name) in fleet.nodes.iter().zip(NAMES).skip(1) {
            for (sport, what) in [(REFLECTED, "of the flood's shape"), (0, "of the crowd")] {
                send_from(node, sport);
                let got = drain(&node.rx).values().sum::<u64>();
                let from = if sport == 0 {
                    "any port".to_string()
                } else {
                    format!("port {sport}")
                };
                println!(
                    "  node {name}: 200 datagrams {what} from {} ({from}): {got} arrived",
                    CLIENT_V4[1]
                );
            }
        }
        true
    });
    if !shared {
        bail!("A shared nothing: {}", a.log());
    }

    step("the flood is over: A's attack ends")?;
    let log = wait(20, || a.log(), |l| l.contains("attack over"));
    if !log.contains("attack over") {
        bail!("A's attack never ended: {log}");
    }
    for (i, name) in NAMES.iter().enumerate().skip(1) {
        let d = fleet.node(i);
        let left = wait(
            10,
            || d.cli_ok(&["escalate", "list", "--received"]),
            |s| !s.contains(&format!("source-port: =={REFLECTED}")),
        );
        println!("  node {name}: levee escalate list --received");
        for line in left.lines() {
            println!("    {line}");
        }
    }
    step("node B: levee status (its neighbour)")?;
    for line in fleet
        .node(1)
        .cli_ok(&["status"])
        .lines()
        .filter(|l| l.starts_with("bgp"))
    {
        println!("  {line}");
    }

    step("who learned what, and when (from each node's log; ms after A declared the attack)")?;
    print_table(&fleet)?;
    println!("\nthe nodes stop; the lab is removed.");
    Ok(())
}

/// Sends 200 paced datagrams from the second lab client (source port `sport`, 0: any) to the
/// node's flooded port.
fn send_from(node: &levee_tests::flood::FloodLab, sport: u16) {
    node.daemon.lab.client.run(|| {
        let sock = std::net::UdpSocket::bind(addr(CLIENT_V4[1], sport)).expect("bind");
        for i in 0..200u32 {
            let _ = sock.send_to(&i.to_be_bytes(), addr(PROTECTED_V4, FLOOD_PORT));
            if i % 20 == 19 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// The table: each event in order, with its node and its time after A's attack started.
fn print_table(fleet: &FleetLab) -> Result<()> {
    let a_log = fleet.node(0).log();
    let Some(start) = log_times(&a_log, "attack started").first().copied() else {
        bail!("A declared no attack: {a_log}");
    };
    let first = |log: &str, needle: &str, after: f64| {
        log_times(log, needle).into_iter().find(|t| *t >= after)
    };
    let over = first(&a_log, "attack over", start).unwrap_or(f64::MAX);
    let mut rows: Vec<(Option<f64>, &str, String)> = vec![
        (Some(start), "A", "detects the UDP flood".into()),
        (
            first(&a_log, "detection shared its rule", start),
            "A",
            "shares its rule for the flood's shape".into(),
        ),
        (
            first(&a_log, "detection shared a block", start),
            "A",
            format!("shares its block of {FLOODER}"),
        ),
        (
            Some(over),
            "A",
            "declares the attack over, withdraws the rule".into(),
        ),
    ];
    for (i, name) in NAMES.iter().enumerate().skip(1) {
        let log = fleet.node(i).log();
        let shape = format!("source-port: =={REFLECTED}");
        rows.push((
            first(&log, &shape, start),
            name,
            "enforces A's rule (the flood's shape)".into(),
        ));
        rows.push((
            first(&log, &format!("src {FLOODER}/32"), start),
            name,
            "enforces A's block".into(),
        ));
        rows.push((
            first(&log, "received FlowSpec rules in force", over),
            name,
            "drops A's rule (A's block stays for its time)".into(),
        ));
    }
    let mut rows: Vec<(f64, &str, String)> = rows
        .into_iter()
        .filter_map(|(t, node, what)| Some((t?, node, what)))
        .collect();
    rows.sort_by(|x, y| x.0.total_cmp(&y.0));
    println!("  {:>8}  {:<4} WHAT", "MS", "NODE");
    for (t, node, what) in rows {
        println!("  {:>8.0}  {node:<4} {what}", (t - start) * 1000.0);
    }
    Ok(())
}
