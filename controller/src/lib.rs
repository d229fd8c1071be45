//! Levee's user-space half.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated into plain settings; no kernel needed.
//! - [`engine`]: the detection engine: baselines, attack states, decisions; no kernel needed.
//! - [`metrics`]: the Prometheus metrics and their exposition.
//! - [`lists`]: allow- and blocklist files.
//! - [`state`]: what the CLI set, kept across restarts.
//! - [`top`]: top talkers from sampled packet headers.
//! - [`api`]: the JSON-lines protocol on the control socket, and its client.
//! - [`cli`]: the command line and the client commands' output.
//! - [`daemon`]: `levee run`: interfaces, lists, timers, signals, the socket server.
//! - [`dataplane`]: the module that loads and drives the program through aya (the daemon
//!   also reads the event ring buffer it hands out): loads the XDP object, sizes its maps,
//!   writes its configuration and lists, attaches it to interfaces, reads its counters.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod engine;
pub mod lists;
pub mod metrics;
pub mod state;
pub mod top;
