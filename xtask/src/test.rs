//! `cargo xtask test`: formatting, lints, then every test layer: host unit tests, the program
//! tests through BPF_PROG_TEST_RUN, and the network-namespace end-to-end tests.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{require_root, run_cmd, workspace_root};

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
    // The daemon tests run the real `levee` binary, and the package test the .deb.
    run_cmd(Command::new("cargo").args(["build", "-p", "levee", "--bin", "levee"]))?;
    crate::package::run()?;
    // The kernel tests share the kernel's namespaces and BPF state, so one test at a time.
    let mut child = Command::new("cargo")
        .args([
            "test",
            "--workspace",
            "--exclude",
            "filter-ebpf",
            "--",
            "--test-threads=1",
        ])
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("failed to start cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = parse_result(&line) {
            passed += p;
            failed += f;
        }
    }
    let status = child.wait()?;
    // One closing line for the whole run: cargo prints one per test binary.
    println!("levee: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed: {status}");
    }
    Ok(())
}

/// Reads `test result: ok. 22 passed; 0 failed; ...`.
fn parse_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let number_before = |word: &str| -> Option<u64> {
        let end = rest.find(word)?;
        rest[..end].trim_end().rsplit(' ').next()?.parse().ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_cargo_result_lines() {
        let line = "test result: ok. 22 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(super::parse_result(line), Some((22, 3)));
        assert_eq!(super::parse_result("running 3 tests"), None);
    }
}
