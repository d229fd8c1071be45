//! The upstream routers of the escalation tests, as real BGP daemons in the lab's client
//! namespace: bird2 (its tables read with `birdc`, as an operator reads them at the router)
//! and gobgpd (its RIB read through its API). Levee's side is the protected namespace.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use crate::netns::Netns;

/// Levee's address on the lab link: the BGP session's near end.
pub const LEVEE_SIDE: &str = crate::netns::PROTECTED_V4;
/// The upstream router's address (the lab's first client address).
pub const UPSTREAM: &str = crate::netns::CLIENT_V4[0];
/// An attacked host inside the lab's protected prefix.
pub const ATTACKED: &str = "198.18.0.10";
/// The `[escalation]` lines that make Levee peer with [`UPSTREAM`] as AS 64512.
pub const ESCALATION: &str = "[escalation]\nmode = \"on\"\nasn = 64512\nrouter_id = \"198.18.0.1\"\n\
     neighbors = [{ address = \"198.18.0.2\", asn = 65000 }]\n\
     protected_prefixes = [\"198.18.0.0/24\", \"2001:db8:18::/48\"]\n";

/// bird2, passive, importing everything Levee announces: unicast into its master table, and
/// FlowSpec into `flowtab4`.
pub struct Bird {
    child: Child,
    socket: PathBuf,
    netns: String,
    config: PathBuf,
    hold_secs: Option<u32>,
}

impl Bird {
    pub fn start(ns: &Netns, dir: &Path) -> Bird {
        Bird::with_flows(ns, dir, &[])
    }

    /// bird2 that also announces `flows` to Levee: FlowSpec routes in bird's syntax, each
    /// with traffic-rate 0 (discard), as a route server feeding a fleet would, and the
    /// unicast route 203.0.113.0/24.
    pub fn with_flows(ns: &Netns, dir: &Path, flows: &[&str]) -> Bird {
        Bird::configured(ns, dir, flows, None)
    }

    /// [`Bird::with_flows`] with the session's hold time set to `hold_secs` (BGP takes the
    /// smaller of the two ends', so Levee's side keeps it too; keepalives every third).
    pub fn configured(ns: &Netns, dir: &Path, flows: &[&str], hold_secs: Option<u32>) -> Bird {
        let config = dir.join("bird.conf");
        write_bird_config(&config, flows, hold_secs);
        Bird::launch(ns, dir, config, hold_secs)
    }

    /// bird2 with `text` as its whole configuration (the fleet's route reflector, say).
    pub fn with_config(ns: &Netns, dir: &Path, text: &str) -> Bird {
        let config = dir.join("bird.conf");
        std::fs::write(&config, text).unwrap();
        Bird::launch(ns, dir, config, None)
    }

    fn launch(ns: &Netns, dir: &Path, config: PathBuf, hold_secs: Option<u32>) -> Bird {
        let socket = dir.join("bird.ctl");
        let child = ns
            .command("bird")
            .args(["-f", "-c"])
            .arg(&config)
            .arg("-s")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("bird (cargo xtask setup installs bird2)");
        let bird = Bird {
            child,
            socket,
            netns: ns.name.clone(),
            config,
            hold_secs,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !bird.socket.exists() {
            assert!(Instant::now() < deadline, "bird did not start");
            sleep(Duration::from_millis(50));
        }
        bird
    }

    /// Announces `flows` instead of what bird announced (it must have announced some: the
    /// session exports FlowSpec only then), as a route reflector does when a node's rule
    /// arrives or goes: `birdc configure`, the session untouched.
    pub fn set_flows(&self, flows: &[&str]) {
        assert!(!flows.is_empty(), "bird keeps exporting only with flows");
        write_bird_config(&self.config, flows, self.hold_secs);
        let out = self.birdc(&["configure"]);
        assert!(out.contains("Reconfigured"), "birdc configure: {out}");
    }

    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.netns, "birdc", "-s"])
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `birdc show route all PREFIX`, as the operator would read it at the router.
    pub fn show_route(&self, prefix: &str) -> String {
        self.birdc(&["show", "route", "all", prefix])
    }

    /// The session's line of `birdc show protocols`: its state and since when.
    pub fn session(&self) -> String {
        self.session_of("levee")
    }

    /// The line of `birdc show protocols` for the session named `protocol`.
    pub fn session_of(&self, protocol: &str) -> String {
        self.birdc(&["show", "protocols", protocol])
            .lines()
            .find(|l| l.starts_with(protocol))
            .unwrap_or_default()
            .to_string()
    }

    /// `birdc show protocols all levee`: the session with its last error.
    pub fn session_all(&self) -> String {
        self.birdc(&["show", "protocols", "all", "levee"])
    }

    /// What bird offers Levee (its unicast export).
    pub fn exported(&self) -> String {
        self.birdc(&["show", "route", "export", "levee"])
    }

    /// Every route bird learned from Levee, both tables.
    pub fn from_levee(&self) -> String {
        let mut out = self.birdc(&["show", "route", "all", "protocol", "levee"]);
        out += &self.flows();
        out
    }

    /// The upstream's FlowSpec table.
    pub fn flows(&self) -> String {
        self.birdc(&["show", "route", "all", "table", "flowtab4"])
    }

    /// Waits up to `secs` for `check` to hold of the FlowSpec table; returns what it showed.
    pub fn wait_flows(&self, secs: u64, check: impl Fn(&str) -> bool) -> String {
        wait(secs, || self.flows(), check)
    }

    /// Waits up to `secs` for `check` to hold of the route's description.
    pub fn wait_route(&self, prefix: &str, secs: u64, check: impl Fn(&str) -> bool) -> String {
        wait(secs, || self.show_route(prefix), check)
    }
}

/// bird's configuration: the session with Levee, and `flows` as static FlowSpec routes.
fn write_bird_config(config: &Path, flows: &[&str], hold_secs: Option<u32>) {
    let timers = hold_secs.map_or(String::new(), |h| {
        format!("hold time {h};\n keepalive time {};\n", (h / 3).max(1))
    });
    let mut statics = String::new();
    if !flows.is_empty() {
        statics += "protocol static flows {\n  flow4 { table flowtab4; };\n";
        for f in flows {
            statics += &format!(
                "  route flow4 {{ {f} }} {{ bgp_ext_community.add((generic, 0x80060000, 0x0)); }};\n"
            );
        }
        statics += "}\n";
        // And a unicast route, as a route server's table would carry.
        statics += "protocol static unicast4 {\n  ipv4;\n  route 203.0.113.0/24 blackhole;\n}\n";
    }
    let export = if flows.is_empty() { "none" } else { "all" };
    std::fs::write(
        config,
        format!(
            "router id {UPSTREAM};\n\
             protocol device {{}}\n\
             flow4 table flowtab4;\n\
             {statics}\
             protocol bgp levee {{\n\
               local {UPSTREAM} as 65000;\n\
               neighbor {LEVEE_SIDE} as 64512;\n\
               passive on;\n\
               {timers}\
               ipv4 {{ import all; export {export}; }};\n\
               flow4 {{ table flowtab4; import all; export {export}; }};\n\
             }}\n"
        ),
    )
    .unwrap();
}

/// When bird's session line says it came up, in ms of the day. Bird shows it as wall time
/// computed from its monotonic clock, so it may move by a millisecond between reads; a
/// session that dropped and came back would move it by seconds.
pub fn since_ms(line: &str) -> i64 {
    let at = line.split_whitespace().nth(4).unwrap_or_default();
    let parts: Vec<f64> = at.split(':').filter_map(|p| p.parse().ok()).collect();
    assert_eq!(parts.len(), 3, "a time of day in bird's line: {line}");
    ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as i64
}

/// Polls `read` every 100 ms until `check` holds of it or `secs` pass; returns the last read.
pub fn wait(secs: u64, read: impl Fn() -> String, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let shown = read();
        if check(&shown) || Instant::now() > deadline {
            return shown;
        }
        sleep(Duration::from_millis(100));
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A gobgpd the test runs itself: the upstream router, or an operator's own daemon that
/// Levee is pointed at. Its API is on a unix socket in the test's folder.
pub struct Gobgpd {
    child: Child,
    pub api: PathBuf,
}

impl Gobgpd {
    /// gobgpd as the upstream router (AS 65000), waiting for Levee's session.
    pub fn upstream(ns: &Netns, dir: &Path) -> Gobgpd {
        Gobgpd::start(
            ns,
            dir,
            "upstream-gobgpd",
            &format!(
                "[global.config]\n  as = 65000\n  router-id = \"{UPSTREAM}\"\n  local-address-list = [\"{UPSTREAM}\"]\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{LEVEE_SIDE}\"\n    peer-as = 64512\n\
                 \x20 [neighbors.transport.config]\n    passive-mode = true\n\
                 \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
                 \x20 [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-flowspec\"\n"
            ),
        )
    }

    /// gobgpd with `config` (TOML), named `name` in `dir`.
    pub fn start(ns: &Netns, dir: &Path, name: &str, config: &str) -> Gobgpd {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).unwrap();
        let api = dir.join(format!("{name}.sock"));
        let child = ns
            .command("gobgpd")
            .arg("-f")
            .arg(&path)
            .args(["-t", "toml", "--pprof-disable"])
            .arg(format!("--api-hosts=unix://{}", api.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gobgpd (cargo xtask setup installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !api.exists() {
            assert!(Instant::now() < deadline, "{name} did not start");
            sleep(Duration::from_millis(50));
        }
        Gobgpd { child, api }
    }
}

impl Drop for Gobgpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh folder under /run for one test's daemons.
pub fn scratch_dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(format!(
        "/run/levee-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
