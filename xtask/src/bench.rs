//! `cargo xtask bench`: builds and runs the benchmark binary in release mode.

use anyhow::Result;
use clap::Args;

use std::process::Command;

use crate::{require_root, run_cmd, run_lab_bin};

#[derive(Args)]
pub struct Options {
    /// Repeats per BPF_PROG_TEST_RUN call (at least 10 million for the report).
    #[arg(long, default_value_t = 10_000_000)]
    pub repeat: u32,
    /// Runs per figure; the median is printed.
    #[arg(long, default_value_t = 5)]
    pub runs: u32,
    /// Only the control socket under 200 concurrent CLI clients.
    #[arg(long)]
    pub control_only: bool,
    /// Only the per-packet figures: the paths, strict's paths, the stages and the peers
    /// (what `target/bench/latest.md` holds), not the floods, line rate and daemon figures.
    #[arg(long)]
    pub paths_only: bool,
    /// Only the random-source flood against one source ((f) and (a'), real frames).
    #[arg(long)]
    pub spread_only: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    require_root("bench")?;
    // The detection figures run the real daemon, built in the same profile.
    run_cmd(Command::new("cargo").args(["build", "--release", "--quiet", "-p", "levee"]))?;
    let mut args = vec![
        "--repeat".to_string(),
        opts.repeat.to_string(),
        "--runs".to_string(),
        opts.runs.to_string(),
    ];
    if opts.control_only {
        args.push("--control-only".into());
    }
    if opts.paths_only {
        args.push("--paths-only".into());
    }
    if opts.spread_only {
        args.push("--spread-only".into());
    }
    run_lab_bin("bench", &args)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// The performance page's figures (docs/performance.md) are the file a bench run wrote,
    /// and that run's commit is one of this repository's: a figure names where it can be
    /// reproduced.
    #[test]
    fn the_performance_page_names_the_commit_of_its_bench_figures() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let page = std::fs::read_to_string(root.join("docs/performance.md")).unwrap();
        let block = page
            .split("<!-- bench:begin -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- bench:end -->").next())
            .expect("docs/performance.md has a <!-- bench:begin --> ... <!-- bench:end --> block");
        let commit = block
            .lines()
            .find_map(|l| l.strip_prefix("commit: "))
            .expect("the block names its commit");
        assert!(
            !commit.contains("uncommitted"),
            "figures from a tree with uncommitted changes cannot be reproduced: {commit}"
        );
        for line in ["date: ", "machine: ", "command: "] {
            assert!(
                block.lines().any(|l| l.starts_with(line)),
                "the block says its {line}"
            );
        }
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(&root)
                .status()
                .expect("git")
                .success()
        };
        assert!(
            git(&["merge-base", "--is-ancestor", commit.trim(), "HEAD"]),
            "the figures' commit {commit} is not in this branch's history"
        );
    }
}
