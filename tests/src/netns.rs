//! Network namespaces joined by veth, made and removed by the test itself. Traffic stays
//! inside them: the addresses are from the benchmarking range 198.18.0.0/15 (RFC 2544) and the
//! IPv6 documentation prefix 2001:db8::/32, assigned only to these namespaces' interfaces.

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!(
            "levee-{role}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip ARGS` inside the namespace, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> Output {
        sh(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command that will run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it opens live there.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                // SAFETY: a valid netns fd; setns only affects this thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: `protected` (where Levee attaches, on `iface`) and
/// `client`, with IPv4 and IPv6 addresses on both ends and extra client source addresses.
pub struct Lab {
    pub protected: Netns,
    pub client: Netns,
    /// The protected side's veth, inside `protected`.
    pub iface: String,
    /// Queues of each veth end: 1, or one per CPU ([`Lab::spread`]).
    pub queues: usize,
}

pub const PROTECTED_V4: &str = "198.18.0.1";
pub const PROTECTED_V6: &str = "2001:db8:18::1";
/// Client source addresses, all on the client's veth.
pub const CLIENT_V4: [&str; 4] = ["198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"];
pub const CLIENT_V6: [&str; 2] = ["2001:db8:18::2", "2001:db8:18:1::3"];

impl Lab {
    /// The lab with one queue per veth end: what arrives is judged on one CPU at a time
    /// (whichever runs the end's NAPI).
    pub fn new() -> Lab {
        Lab::with_queues(1)
    }

    /// The lab with one queue per CPU on each veth end, as a NIC's queues spread a flood
    /// over every CPU: [`crate::traffic::flood_at_until`] then sends from a thread pinned to
    /// each CPU, and each CPU's frames are judged on that CPU.
    pub fn spread() -> Lab {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Lab::with_queues(cpus)
    }

    fn with_queues(queues: usize) -> Lab {
        let protected = Netns::new("prot");
        let client = Netns::new("cli");
        let iface = "lv0".to_string();
        veth(&protected, &iface, &client, "lv1", queues);
        protected.ip(&["addr", "add", &format!("{PROTECTED_V4}/24"), "dev", &iface]);
        protected.ip(&[
            "addr",
            "add",
            &format!("{PROTECTED_V6}/48"),
            "dev",
            &iface,
            "nodad",
        ]);
        for a in CLIENT_V4 {
            client.ip(&["addr", "add", &format!("{a}/24"), "dev", "lv1"]);
        }
        for a in CLIENT_V6 {
            client.ip(&["addr", "add", &format!("{a}/48"), "dev", "lv1", "nodad"]);
        }
        protected.ip(&["link", "set", &iface, "up"]);
        client.ip(&["link", "set", "lv1", "up"]);
        Lab {
            protected,
            client,
            iface,
            queues,
        }
    }
}

/// A second veth link into the protected namespace, from a second client namespace.
pub struct SecondLink {
    pub client: Netns,
    /// The protected side's second veth.
    pub iface: String,
}

/// Addresses of the second link.
pub const PROTECTED2_V4: &str = "198.18.1.1";
pub const CLIENT2_V4: &str = "198.18.1.2";

impl Lab {
    /// Adds `lv2` to the protected namespace, joined to `lv3` in a new client namespace.
    /// On veth, a frame sent back with XDP_TX (strict mode's SYN-ACKs) arrives only if the
    /// peer end runs an XDP program too (or has GRO on): this gives the client's end Levee's
    /// program in mode off, which passes everything, for as long as the result lives. A real
    /// NIC needs nothing of this.
    pub fn pass_all_on_client_end(&self) -> levee::dataplane::Dataplane {
        use levee::dataplane::{AttachMode, Dataplane, LoadOptions};
        self.client.run(|| {
            let mut dp = Dataplane::load(
                &LoadOptions::default(),
                filter_common::abi::Config::new(filter_common::abi::Mode::Off),
            )
            .expect("load a pass-all program");
            dp.attach("lv1", AttachMode::Native)
                .expect("attach to the client's end");
            dp
        })
    }

    pub fn second_link(&self) -> SecondLink {
        let client = Netns::new("cli2");
        let iface = "lv2".to_string();
        veth(&self.protected, &iface, &client, "lv3", self.queues);
        self.protected
            .ip(&["addr", "add", &format!("{PROTECTED2_V4}/24"), "dev", &iface]);
        client.ip(&["addr", "add", &format!("{CLIENT2_V4}/24"), "dev", "lv3"]);
        self.protected.ip(&["link", "set", &iface, "up"]);
        client.ip(&["link", "set", "lv3", "up"]);
        SecondLink { client, iface }
    }

    /// Gives the client's veth more source addresses (each in a /24), and routes each /24
    /// that is not the lab's own to it from the protected side, so answers reach them.
    pub fn add_client_addresses(&self, addrs: impl IntoIterator<Item = String>) {
        let mut routed = vec!["198.18.0".to_string()];
        for a in addrs {
            self.client
                .ip(&["addr", "add", &format!("{a}/24"), "dev", "lv1"]);
            let net = a.rsplit_once('.').map_or(a.clone(), |(n, _)| n.to_string());
            if !routed.contains(&net) {
                let route = format!("{net}.0/24");
                self.protected
                    .ip(&["route", "add", &route, "dev", &self.iface]);
                routed.push(net);
            }
        }
    }

    /// The MAC address of `iface` in `ns`.
    pub fn mac(ns: &Netns, iface: &str) -> [u8; 6] {
        let out = ns.ip(&["-o", "link", "show", iface]);
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC for {iface}: {text}"));
        let mut mac = [0u8; 6];
        for (i, b) in hex.split(':').enumerate().take(6) {
            mac[i] = u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("{hex}: {e}"));
        }
        mac
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// A veth pair with one end, `a`, in namespace `ns_a` and the other, `b`, in `ns_b`, each
/// with `queues` queues. (Made under a unique temporary name, since the root namespace sees
/// it first.)
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str, queues: usize) {
    let tmp = format!("lvp{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let q = queues.to_string();
    let queues = ["numtxqueues", &q, "numrxqueues", &q];
    sh(Command::new("ip")
        .args(["link", "add", &tmp])
        .args(queues)
        .args(["netns", &ns_b.name, "type", "veth", "peer", "name", a])
        .args(queues)
        .args(["netns", &ns_a.name]));
    ns_b.ip(&["link", "set", &tmp, "name", b]);
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
