//! The real `levee` binary run as users run it: `levee run` in the protected namespace of a
//! lab, the CLI from outside, over a control socket and a bpffs the test made for itself.

use std::{
    fs,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread::sleep,
    time::{Duration, Instant},
};

use filter_common::abi::{Action, Reason};
use levee::api::views::{BlockView, CounterView, LimitsView, Prefix, StatusView, TalkerView};

use crate::netns::Lab;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The `levee` binary of the same profile as this executable: next to a binary, or one
/// directory up from a test in `deps/` (`cargo xtask test` and `demo` build it first).
pub fn levee_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("profile directory");
    }
    let bin = dir.join("levee");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p levee; cargo xtask test does)",
        bin.display()
    );
    bin
}

/// A lab with a levee daemon on its protected side.
pub struct DaemonLab {
    pub lab: Lab,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub bpffs: PathBuf,
    /// The `levee` binary `levee run` starts (the build's; a test of the package sets the
    /// packaged one).
    pub binary: PathBuf,
    child: Option<Child>,
}

impl DaemonLab {
    /// A lab and a private bpffs mount (visible inside `ip netns exec`, unlike /sys/fs/bpf).
    pub fn new() -> DaemonLab {
        DaemonLab::with_lab(Lab::new())
    }

    /// A daemon lab whose flood is spread over every CPU ([`Lab::spread`]).
    pub fn spread() -> DaemonLab {
        DaemonLab::with_lab(Lab::spread())
    }

    fn with_lab(lab: Lab) -> DaemonLab {
        let dir = PathBuf::from(format!(
            "/run/levee-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let bpffs = dir.join("bpf");
        fs::create_dir_all(&bpffs).expect("create test dir");
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&bpffs)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "cannot mount bpffs at {}", bpffs.display());
        DaemonLab {
            lab,
            socket: dir.join("levee.sock"),
            config: dir.join("levee.toml"),
            dir,
            bpffs,
            binary: levee_bin(),
            child: None,
        }
    }

    /// Writes the config: the lab's interface, socket and bpffs, then `extra` TOML.
    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "interfaces = [\"{}\"]\nxdp_mode = \"native\"\nsocket = \"{}\"\nbpffs = \"{}\"\nstate_file = \"{}\"\n{extra}\n",
            self.lab.iface,
            self.socket.display(),
            self.bpffs.display(),
            self.dir.join("state.json").display()
        );
        fs::write(&self.config, text).expect("write config");
    }

    /// Starts the daemon and waits until it answers `status` (the socket is bound before the
    /// interfaces are attached, so a connect alone proves nothing).
    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// [`DaemonLab::start`] with extra environment variables (a service manager's, say).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "already running");
        let log = fs::File::create(self.dir.join("daemon.log")).expect("log file");
        let child = self
            .run_command()
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn levee run");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("levee run exited with {status}: {}", self.log());
            }
            if self.socket.exists() && self.cli(&["status"]).status.success() {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        panic!("levee run did not answer in 20 s: {}", self.log());
    }

    /// Runs `levee run` to completion, for start-up errors (it must exit by itself).
    pub fn run_expecting_exit(&self) -> Output {
        let mut child = self
            .run_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn levee run");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("levee run kept running");
            }
            sleep(Duration::from_millis(50));
        }
        child.wait_with_output().expect("output")
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        let child = self.child.as_ref().expect("running");
        // `ip netns exec` execs levee in place, so the child's pid is levee's.
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
    }

    /// Waits for a daemon killed with SIGKILL to be gone, leaving its socket and pins as they
    /// were.
    pub fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// The `levee run` command line of this lab, for a test that manages the process itself.
    pub fn run_command(&self) -> Command {
        let mut c = self
            .lab
            .protected
            .command(self.binary.to_str().expect("utf-8 path"));
        c.args(["run", "--config"]).arg(&self.config);
        c
    }

    /// SIGTERM, then waits for the daemon to exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return false;
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Runs the CLI (from the root namespace: the socket is a path).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run levee")
    }

    /// The CLI as a command to spawn (a capture that runs beside the traffic, say).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(levee_bin());
        c.arg("--socket").arg(&self.socket).args(args);
        c
    }

    /// Runs the CLI and returns its stdout, panicking on failure.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "levee {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the CLI with `--json` appended and parses the output as raw JSON, for the tests
    /// that hold the `--json` field names to what users script against; the others read the
    /// views through [`DaemonLab::status`] and its siblings.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        self.view(args, |s| serde_json::from_str(s))
    }

    /// Runs the CLI with `--json` appended and parses the output with `parse`, panicking with
    /// the output when it does not parse.
    fn view<T>(&self, args: &[&str], parse: impl FnOnce(&str) -> serde_json::Result<T>) -> T {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cli_ok(&a);
        parse(&out).unwrap_or_else(|e| panic!("levee {a:?}: {e}: {out}"))
    }

    /// `levee status --json`.
    pub fn status(&self) -> StatusView {
        self.view(&["status"], |s| serde_json::from_str(s))
    }

    /// `levee block list --json`.
    pub fn block_list(&self) -> Vec<BlockView> {
        self.view(&["block", "list"], |s| serde_json::from_str(s))
    }

    /// `levee allow list --json`.
    pub fn allow_list(&self) -> Vec<Prefix> {
        self.view(&["allow", "list"], |s| serde_json::from_str(s))
    }

    /// `levee stats --json`; sum what a test looks for with [`packets`].
    pub fn stats(&self) -> Vec<CounterView> {
        self.view(&["stats"], |s| serde_json::from_str(s))
    }

    /// `levee limits show --json`.
    pub fn limits(&self) -> LimitsView {
        self.view(&["limits", "show"], |s| serde_json::from_str(s))
    }

    /// `levee top --n <n> --json`.
    pub fn top(&self, n: usize) -> Vec<TalkerView> {
        self.view(&["top", "--n", &n.to_string()], |s| serde_json::from_str(s))
    }

    /// Where the daemon pins an interface's maps and link.
    pub fn pin_dir(&self, iface: &str) -> PathBuf {
        self.bpffs.join("levee").join(iface)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Whether an XDP program is attached to the lab's protected interface.
    pub fn xdp_attached(&self) -> bool {
        let out = self.lab.protected.ip(&["link", "show", &self.lab.iface]);
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

/// Packets that `stats` counted under `action`, for one `reason` or (with `None`) for all.
pub fn packets(stats: &[CounterView], action: Action, reason: Option<Reason>) -> u64 {
    stats
        .iter()
        .filter(|c| c.action == action.name() && reason.is_none_or(|r| c.reason == r.name()))
        .map(|c| c.packets)
        .sum()
}

impl Default for DaemonLab {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DaemonLab {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(self.bpffs.join("levee"));
        let _ = Command::new("umount").arg(&self.bpffs).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
