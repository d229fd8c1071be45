//! Who owns the mode. The operator does, through the config file or `levee mode`; detection
//! may only raise `monitor` to `enforce` while an attack lasts, and lowers it back when the
//! attack is over. So a reload or a restart mid-attack keeps enforcing, and an engine switch
//! is never saved as the operator's choice.

use filter_common::abi::Mode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetBy {
    Config,
    Cli,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeOwner {
    /// The operator's mode: the config file's, or the last `levee mode`.
    pub operator: Mode,
    pub set_by: SetBy,
    /// Detection switched `monitor` to `enforce` for an attack still under way.
    pub detection_holds: bool,
}

impl ModeOwner {
    pub fn from_config(mode: Mode) -> ModeOwner {
        ModeOwner {
            operator: mode,
            set_by: SetBy::Config,
            detection_holds: false,
        }
    }

    /// The mode the program runs in.
    pub fn effective(&self) -> Mode {
        if self.detection_holds && self.operator == Mode::Monitor {
            Mode::Enforce
        } else {
            self.operator
        }
    }

    /// Who set the mode in force: `config`, `cli` or `detection`.
    pub fn set_by_name(&self) -> &'static str {
        match self.set_by {
            _ if self.effective() != self.operator => "detection",
            SetBy::Config => "config",
            SetBy::Cli => "cli",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_raises_only_monitor() {
        let mut m = ModeOwner::from_config(Mode::Monitor);
        m.detection_holds = true;
        assert_eq!(
            (m.effective(), m.set_by_name()),
            (Mode::Enforce, "detection")
        );
        m.operator = Mode::Lockdown;
        assert_eq!((m.effective(), m.set_by_name()), (Mode::Lockdown, "config"));
        m.operator = Mode::Off;
        assert_eq!(m.effective(), Mode::Off, "the operator's off is obeyed");
    }
}
