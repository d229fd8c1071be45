//! A fleet in the lab: three Levee nodes, each in a namespace of its own behind its own client
//! namespace, all protecting the same anycast prefix (the lab's 198.18.0.0/24, whose
//! 198.18.0.1 each node holds), and bird2 as the route reflector of their iBGP sessions, in a
//! namespace joined to each node by a link of its own (198.19.N.0/24: the reflector .1, the
//! node .2). Each node shares what it learns with the others through the reflector.

use crate::{
    bgp::{Bird, scratch_dir},
    daemon::DaemonLab,
    flood::FloodLab,
    netns::{Netns, veth},
};

/// The fleet's AS: every session is iBGP, the reflector's clients.
pub const FLEET_AS: u32 = 64512;
/// How many nodes the lab fleet has.
pub const NODES: usize = 3;

/// Node `i`'s address on its link to the reflector (0-based `i`).
pub fn node_address(i: usize) -> String {
    format!("198.19.{}.2", i + 1)
}

/// The reflector's address on node `i`'s link.
pub fn reflector_address(i: usize) -> String {
    format!("198.19.{}.1", i + 1)
}

/// The name of node `i`'s session in bird's `show protocols`.
pub fn session_name(i: usize) -> String {
    format!("node{}", i + 1)
}

/// The `[escalation]` of node `i`: the reflector its one neighbour, in the fleet's group, and
/// the fleet's rules accepted and enforced within the anycast prefix.
pub fn escalation(i: usize) -> String {
    format!(
        "[escalation]\nmode = \"on\"\nasn = {FLEET_AS}\nrouter_id = \"{}\"\n\
         neighbors = [{{ address = \"{}\", asn = {FLEET_AS}, role = \"fleet\" }}]\n\
         protected_prefixes = [\"198.18.0.0/24\"]\naccept_flowspec = true\n",
        node_address(i),
        reflector_address(i)
    )
}

/// The fleet: its nodes (each a [`FloodLab`]: a daemon, a receiver, a verified flooder) and
/// the reflector. Dropped in that order: the nodes withdraw, then the reflector goes.
pub struct FleetLab {
    pub nodes: Vec<FloodLab>,
    pub reflector: Bird,
    _reflector_ns: Netns,
}

impl FleetLab {
    /// Starts the reflector, then each node with `config` (TOML before its `[escalation]`).
    pub fn start(config: &str) -> FleetLab {
        let ns = Netns::new("rr");
        let dir = scratch_dir("fleet");
        let reflector = Bird::with_config(&ns, &dir, &reflector_config());
        let nodes = (0..NODES)
            .map(|i| {
                FloodLab::start_with(&format!("{config}\n{}", escalation(i)), |d| link(&ns, d, i))
            })
            .collect();
        FleetLab {
            nodes,
            reflector,
            _reflector_ns: ns,
        }
    }

    pub fn node(&self, i: usize) -> &DaemonLab {
        &self.nodes[i].daemon
    }

    /// Node `i`'s session line at the reflector.
    pub fn session(&self, i: usize) -> String {
        self.reflector.session_of(&session_name(i))
    }

    /// Waits up to `secs` for every node's session to be up; the lines at the end.
    pub fn wait_sessions(&self, secs: u64) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let lines: Vec<String> = (0..NODES).map(|i| self.session(i)).collect();
            if lines.iter().all(|l| l.contains("Established"))
                || std::time::Instant::now() > deadline
            {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Joins node `i`'s protected namespace to the reflector's by a link of its own (the program
/// is attached to the node's client link only, as a fleet's BGP runs over its own network).
fn link(reflector: &Netns, d: &DaemonLab, i: usize) {
    let (near, far) = (format!("rr{i}"), "bgp0");
    veth(reflector, &near, &d.lab.protected, far, 1);
    reflector.ip(&[
        "addr",
        "add",
        &format!("{}/24", reflector_address(i)),
        "dev",
        &near,
    ]);
    d.lab.protected.ip(&[
        "addr",
        "add",
        &format!("{}/24", node_address(i)),
        "dev",
        far,
    ]);
    reflector.ip(&["link", "set", &near, "up"]);
    d.lab.protected.ip(&["link", "set", far, "up"]);
}

/// bird2 as the fleet's route reflector: each node a client, FlowSpec reflected as it came.
fn reflector_config() -> String {
    let mut out = format!(
        "router id 198.19.0.1;\nprotocol device {{}}\nflow4 table flowtab4;\n\
         template bgp node {{\n  local as {FLEET_AS};\n  passive on;\n  rr client;\n\
         \x20 flow4 {{ table flowtab4; import all; export all; }};\n}}\n"
    );
    for i in 0..NODES {
        out += &format!(
            "protocol bgp {} from node {{\n  local {} as {FLEET_AS};\n  neighbor {} as {FLEET_AS};\n}}\n",
            session_name(i),
            reflector_address(i),
            node_address(i)
        );
    }
    out
}

/// The time of each log line that contains `needle`, in seconds of the day (the daemon logs
/// in UTC with microseconds: `2026-12-07T19:30:00.123456Z  INFO ...`).
pub fn log_times(log: &str, needle: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| {
            let stamp = l.split_whitespace().next()?;
            let time = stamp.split_once('T')?.1.trim_end_matches('Z');
            let parts: Vec<f64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
            (parts.len() == 3).then(|| parts[0] * 3600.0 + parts[1] * 60.0 + parts[2])
        })
        .collect()
}
