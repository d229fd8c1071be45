//! Developer and CI tasks. `cargo xtask <task>`; every task that builds the XDP program runs
//! `setup` first, so a fresh machine needs nothing but rustup and its toolchains.

mod bench;
mod package;
mod setup;
mod test;

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Levee's developer tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: rust-src, bpf-linker, Debian packages.
    Setup,
    /// Set up, check formatting and lints, then run every test (needs root).
    Test,
    /// Set up, then measure per-packet costs against a floor (needs root).
    Bench(bench::Options),
    /// Set up, then build the Debian package: target/debian/levee_<version>_amd64.deb.
    Package,
    /// Set up, then play a flood scenario in a two-namespace lab and print what happened.
    Demo {
        /// Play the escalation scenario instead: announcements reaching a real upstream
        /// router (bird2) and their withdrawal.
        #[arg(long, conflicts_with = "fleet")]
        escalation: bool,
        /// Play the fleet scenario instead: three nodes and a route reflector (bird2), one
        /// node's detection enforced by all, with a table of who learned what and when.
        #[arg(long)]
        fleet: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(),
        Task::Test => setup::run().and_then(|()| test::run()),
        Task::Bench(opts) => setup::run().and_then(|()| bench::run(&opts)),
        Task::Package => setup::run().and_then(|()| package::run().map(|_| ())),
        Task::Demo { escalation, fleet } => setup::run().and_then(|()| {
            require_root("demo")?;
            // The demo runs the real daemon, built in the same profile.
            run_cmd(Command::new("cargo").args(["build", "--release", "--quiet", "-p", "levee"]))?;
            let args = match (escalation, fleet) {
                (true, _) => vec!["--escalation".to_string()],
                (_, true) => vec!["--fleet".to_string()],
                _ => vec![],
            };
            run_lab_bin("demo", &args)
        }),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_path_buf()
}

/// Runs a command to completion in the workspace root, failing with its command line.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Builds and runs one of the lab binaries of the tests crate (bench, demo) in release mode.
pub fn run_lab_bin(name: &str, args: &[String]) -> Result<()> {
    run_cmd(
        Command::new("cargo")
            .args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "levee-tests",
                "--bin",
                name,
                "--",
            ])
            .args(args),
    )
}

/// Whether this process runs as root (the kernel tests and benchmarks need it).
pub fn require_root(task: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask {task}` loads BPF programs and creates network namespaces: run it as root (sudo -E cargo xtask {task})"
        );
    }
    Ok(())
}
