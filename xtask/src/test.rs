//! `cargo xtask test`: formatting, lints, then every test layer: host unit tests, the program
//! tests through BPF_PROG_TEST_RUN, and the network-namespace end-to-end tests.

use std::process::Command;

use anyhow::Result;

use crate::{require_root, run_cmd};

pub fn run() -> Result<()> {
    require_root("test")?;
    run_cmd(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    run_cmd(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--exclude",
        "filter-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel tests share the kernel's namespaces and BPF state, so one test at a time.
    run_cmd(Command::new("cargo").args([
        "test",
        "--workspace",
        "--exclude",
        "filter-ebpf",
        "--",
        "--test-threads=1",
    ]))
}
