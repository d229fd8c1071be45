//! `levee mode [MODE]`: read the mode, or set the operator's mode (detection lets go of it).

use std::io::Write;

use anyhow::Result;
use filter_common::abi::Mode;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::Command;
use crate::{
    api::{views::ModeName, wire},
    cli::parsers::mode as mode_arg,
    controller::{Controller, mode::SetBy},
};

/// `levee mode [MODE]`.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    #[arg(value_parser = mode_arg)]
    #[serde(default, with = "wire::opt_mode")]
    pub mode: Option<Mode>,
}

impl Command for SetMode {
    /// Reading the mode changes nothing; setting it is saved (the state file keeps it).
    fn changes(&self) -> bool {
        self.mode.is_some()
    }
    type View = ModeName;
    fn apply(self, c: &mut Controller) -> Result<ModeName> {
        mode(c, self.mode)
    }
    fn print(&self, ModeName(m): &ModeName, out: &mut dyn Write) -> Result<()> {
        Ok(writeln!(out, "{}", m.name())?)
    }
}

fn mode(c: &mut Controller, mode: Option<Mode>) -> Result<ModeName> {
    let Some(mode) = mode else {
        return Ok(ModeName(c.mode.effective()));
    };
    let before = c.mode;
    let from = c.mode.effective();
    c.mode.operator = mode;
    c.mode.set_by = SetBy::Cli;
    c.mode.detection_holds = false;
    if let Err(e) = c.write_config() {
        c.mode = before;
        return Err(e);
    }
    c.engine.mode_set_by_operator();
    info!(from = from.name(), to = mode.name(), "mode switched");
    Ok(ModeName(mode))
}
