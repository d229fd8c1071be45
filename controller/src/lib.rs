//! Levee's user-space half.
//!
//! # Layout
//! - [`dataplane`]: the only module that touches aya: loads the XDP object, sizes its maps,
//!   writes its configuration and lists, attaches it to interfaces, reads its counters.

pub mod dataplane;
