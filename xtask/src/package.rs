//! `cargo xtask package`: the Debian package, with cargo-deb. The man pages and completion
//! scripts are generated first from the release binary's own CLI definitions (so they cannot
//! drift from it), into target/package/; cargo-deb then packs the binary, the config (a
//! conffile), the systemd unit, the pages, the completions, the alert rules and dashboard.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{run_cmd, workspace_root};

/// Builds target/debian/levee_<version>_amd64.deb; returns its path.
pub fn run() -> Result<PathBuf> {
    let root = workspace_root();
    run_cmd(Command::new("cargo").args(["build", "--release", "--quiet", "-p", "levee"]))?;
    let levee = root.join("target/release/levee");
    let out = root.join("target/package");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("completions"))?;
    run_cmd(Command::new(&levee).arg("man").arg(out.join("man")))?;
    for (shell, file) in [("bash", "levee"), ("zsh", "_levee"), ("fish", "levee.fish")] {
        let script = Command::new(&levee)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("{} completions {shell}", levee.display()))?;
        if !script.status.success() {
            bail!("levee completions {shell} failed");
        }
        std::fs::write(out.join("completions").join(file), script.stdout)?;
    }
    let debian = root.join("target/debian");
    // Only this build's package in the folder: the tests take the .deb they find there.
    let _ = std::fs::remove_dir_all(&debian);
    run_cmd(
        Command::new("cargo")
            .args(["deb", "-p", "levee", "--no-build", "--no-strip", "--output"])
            .arg(&debian),
    )?;
    let deb = std::fs::read_dir(&debian)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("cargo deb wrote no .deb")?;
    println!("package: {}", deb.display());
    Ok(deb)
}
