//! `levee mode [MODE]`: read the mode, or set the operator's mode (detection lets go of it).

use anyhow::Result;
use filter_common::abi::Mode;
use tracing::info;

use crate::{
    api::views::ModeName,
    controller::{Controller, mode::SetBy},
};

pub fn mode(c: &mut Controller, mode: Option<Mode>) -> Result<ModeName> {
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
