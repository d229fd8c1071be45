//! Levee's user-space half.
//!
//! # Layout
//! - [`config`]: the TOML configuration, validated into settings grouped by concern, and the
//!   value parsers the CLI and the API share; no kernel needed.
//! - [`engine`]: the detection engine: baselines, attack states, decisions; no kernel needed.
//! - [`dataplane`]: the only module that speaks aya: loads, configures, attaches and reads
//!   one XDP program and its maps.
//! - [`controller`]: what `levee run` owns and decides, one room per part (interfaces,
//!   lists, mode, persistence, response to detection, telemetry).
//! - [`cmd`]: the control commands, one file per family.
//! - [`server`]: the async shell: control socket, /metrics, signals, the controller thread.
//! - [`api`]: the JSON-lines protocol, its typed requests and views, and its client.
//! - [`cli`]: the command line and the client commands' output.
//! - [`metrics`]: the Prometheus metrics and their exposition.
//! - [`list_files`]: allow- and blocklist files.
//! - [`top`]: top talkers from sampled packet headers.
//! - [`services`]: the sockets this host serves, as the kernel lists them (sock_diag).

pub mod api;
pub mod capture;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod controller;
pub mod dataplane;
pub mod engine;
pub mod escalation;
pub mod list_files;
pub mod metrics;
pub mod server;
pub mod services;
pub mod signatures;
pub mod top;
