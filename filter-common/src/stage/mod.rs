//! Each stage's decision, written once: the XDP program and `levee explain` both call these.
//!
//! A decision is a plain function over the packet's facts (what the parser yields) and what
//! the maps hold for it. The maps are asked through a small trait per stage, answered lazily,
//! so the program looks up only what the decision needs, in the order it needs it: the
//! program answers from its BPF maps, explain from the same maps read from user space (and,
//! for a detail it was not given, with the answer that objects, noting what it assumed).
//! Everything is `#[inline(always)]`: the program's code is what it was when each stage
//! wrote its own decision.
//!
//! The order of the stages is [`crate::abi::Stage::ALL`]; the action a mode gives a reason,
//! [`crate::abi::action`].

pub mod signatures;
pub mod source;
pub mod strict;
