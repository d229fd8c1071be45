//! Levee's user-space half.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated into plain settings; no kernel needed.
//! - [`dataplane`]: the only module that touches aya: loads the XDP object, sizes its maps,
//!   writes its configuration and lists, attaches it to interfaces, reads its counters.

pub mod config;
pub mod dataplane;
