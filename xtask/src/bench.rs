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
}

pub fn run(opts: &Options) -> Result<()> {
    require_root("bench")?;
    // The detection figures run the real daemon, built in the same profile.
    run_cmd(Command::new("cargo").args(["build", "--release", "--quiet", "-p", "levee"]))?;
    run_lab_bin(
        "bench",
        &[
            "--repeat".to_string(),
            opts.repeat.to_string(),
            "--runs".to_string(),
            opts.runs.to_string(),
        ],
    )
}
