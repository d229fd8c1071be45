//! `cargo xtask demo --escalation`: Levee's own gobgpd, in the protected namespace, peers with
//! a real upstream router (bird2) in the client namespace. An operator's RTBH route and
//! FlowSpec rule reach the router and leave it at their TTL; then a flood over the link's
//! configured capacity makes detection announce a FlowSpec rule for the flood's shape, which
//! is withdrawn once the attack is over. Everything is shown as the router's `birdc` prints it.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use levee_tests::{
    bgp::{ATTACKED, Bird, ESCALATION},
    daemon::DaemonLab,
    flood::{FLOOD_PORT, FLOODER, flooding},
    netns::PROTECTED_V4,
    traffic::udp_flood_frames,
};

/// The daemon's config: monitor mode and detection as in the detection tests, escalation on
/// with automatic FlowSpec when the link (1 Mbit/s here, a lab's "uplink") is near full.
const CONFIG: &str = "mode = \"monitor\"\n[strict]\nmode = \"off\"\n\
     [detection]\nrecovery_secs = 2\n[detection.floor_pps]\nudp = 5000\n\
     [events]\nsample_every = 16\n";
const AUTO: &str =
    "auto = true\nlink_capacity_bps = 1000000\nauto_after = \"2s\"\nauto_hold = \"5s\"\n";

fn step(what: &str) -> Result<()> {
    if crate::INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    println!("\n$ {what}");
    Ok(())
}

/// Prints the router's lines about Levee's routes, indented.
fn show(title: &str, text: &str) {
    println!("  {title}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("    {line}");
    }
}

pub fn run() -> Result<()> {
    println!(
        "Levee escalation demo: Levee (AS 64512) and its own gobgpd on the protected side, bird2 \
         (AS 65000) as the upstream router on the client side"
    );
    let mut daemon = DaemonLab::new();
    let bird = Bird::start(&daemon.lab.client, &daemon.dir);
    daemon.write_config(&format!("{CONFIG}{ESCALATION}{AUTO}"));
    daemon.start();
    let prefix = format!("{ATTACKED}/32");

    let cmd = ["escalate", "rtbh", ATTACKED, "--ttl", "15s"];
    step(&format!("levee {}", cmd.join(" ")))?;
    print!("{}", daemon.cli_ok(&cmd));
    let blackholed = |s: &str| s.contains(&prefix) && s.contains("(65535,666)");
    let shown = bird.wait_route(&prefix, 60, blackholed);
    if !blackholed(&shown) {
        bail!("the route did not reach the upstream: {}", daemon.log());
    }
    show(
        &format!("the router (birdc show route all {prefix}):"),
        &shown,
    );

    let cmd = [
        "escalate", "flowspec", "--dst", ATTACKED, "--proto", "udp", "--sport", "123", "--len",
        "468-1500", "--ttl", "15s",
    ];
    step(&format!("levee {}", cmd.join(" ")))?;
    print!("{}", daemon.cli_ok(&cmd));
    let flows = bird.wait_flows(30, |s| s.contains(&prefix));
    show(
        "the router's FlowSpec table (birdc show route all table flowtab4):",
        &flows,
    );

    step("levee escalate list")?;
    print!("{}", daemon.cli_ok(&["escalate", "list"]));

    println!("\n  ...waiting for the TTL (15 s)");
    let t0 = Instant::now();
    let route = bird.wait_route(&prefix, 30, |s| !s.contains(&prefix));
    let flows = bird.wait_flows(30, |s| !s.contains(&prefix));
    if route.contains(&prefix) || flows.contains(&prefix) {
        bail!("not withdrawn at the upstream: {route}{flows}");
    }
    println!(
        "  gone at the router {:.0} s later: both withdrawn at their TTL",
        t0.elapsed().as_secs_f64()
    );

    step(&format!(
        "a UDP flood from {FLOODER} to {PROTECTED_V4}:{FLOOD_PORT}, over the link's capacity (escalation.auto, link_capacity_bps = 1000000)"
    ))?;
    let frames = udp_flood_frames(&daemon.lab, FLOODER, FLOOD_PORT, 20_000);
    let attacked = format!("dst {PROTECTED_V4}/32");
    let t0 = Instant::now();
    let (flows, sent) = flooding(&daemon.lab, &frames, || {
        let flows = bird.wait_flows(60, |s| s.contains(&attacked));
        // A few more seconds of flood: the rule is renewed while the attack lasts.
        std::thread::sleep(Duration::from_secs(3));
        flows
    });
    if !flows.contains(&attacked) {
        bail!("detection did not escalate: {}", daemon.log());
    }
    println!(
        "  {sent} frames sent; detection announced a rule for the flood's shape within {:.0} s:",
        t0.elapsed().as_secs_f64() - 3.0
    );
    show("the router's FlowSpec table:", &flows);
    println!("\n  ...flood over: attack ends, then escalation.auto_hold (5 s)");
    let t0 = Instant::now();
    let flows = bird.wait_flows(60, |s| !s.contains(&attacked));
    if flows.contains(&attacked) {
        bail!("the automatic rule was not withdrawn: {}", daemon.log());
    }
    println!(
        "  withdrawn at the router {:.0} s after the flood stopped",
        t0.elapsed().as_secs_f64()
    );

    step("levee's log, escalation lines")?;
    for line in daemon.log().lines().filter(|l| {
        ["upstream", "escalat", "withdrawn"]
            .iter()
            .any(|w| l.contains(w))
    }) {
        println!("  {line}");
    }
    if !daemon.stop() {
        bail!("levee did not stop cleanly: {}", daemon.log());
    }
    println!("\nlevee stopped; the lab is removed.");
    Ok(())
}
