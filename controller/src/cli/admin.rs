//! What the command line does without the daemon: the settings `levee run` starts with,
//! `check-config`, shell completions and man pages.

use std::{
    io,
    path::{Path, PathBuf},
};

use anyhow::Result;
use clap::CommandFactory as _;

use super::{Cli, MetricsAddr};
use crate::config;

/// The validated settings for `levee run`: the config file, then the command line on top.
pub fn run_settings(
    socket: Option<PathBuf>,
    config: Option<&PathBuf>,
    ifaces: &[String],
    xdp_mode: Option<crate::dataplane::AttachMode>,
    metrics: Option<MetricsAddr>,
) -> Result<config::Settings> {
    let mut s = match config {
        Some(path) => config::load(path)?,
        None => config::Settings::default(),
    };
    let d = &mut s.daemon;
    for i in ifaces {
        if !d.interfaces.contains(i) {
            d.interfaces.push(i.clone());
        }
    }
    if let Some(m) = xdp_mode {
        d.xdp_mode = m;
    }
    if let Some(p) = socket {
        d.socket = p;
    }
    if let Some(MetricsAddr(m)) = metrics {
        d.metrics = m;
    }
    Ok(s)
}

/// `levee check-config FILE`: everything `levee run` and SIGHUP read from the file, checked
/// the same way; the daemon is not asked.
pub fn check_config(file: &Path) -> Result<()> {
    let settings = config::load(file)?;
    let (block, allow) = crate::controller::read_list_settings(&settings.lists)?;
    println!(
        "{}: ok ({} interface(s), mode {}, {} blocked and {} allowlisted prefixes, escalation {})",
        file.display(),
        settings.daemon.interfaces.len(),
        settings.mode.name(),
        block.len(),
        allow.len(),
        settings.escalation.mode.name()
    );
    Ok(())
}

/// `levee completions SHELL`: the script, generated from the clap definitions.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "levee", &mut io::stdout().lock());
    Ok(())
}

/// `levee man DIR`: levee.8 and a page per subcommand (levee-block-add.8...), generated from
/// the clap definitions so they cannot drift from the CLI. Section 8: system administration.
pub fn man_pages(dir: &Path) -> Result<()> {
    fn write(cmd: clap::Command, dir: &Path) -> Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            write(sub, dir)?;
        }
        let page = clap_mangen::Man::new(cmd).section("8");
        page.generate_to(dir)?;
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write(cmd, dir)
}
