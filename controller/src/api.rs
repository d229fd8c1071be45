//! The control API between the CLI and the daemon: one JSON request line over a Unix socket,
//! one JSON response line back. The types are plain serde structs, so the protocol is
//! testable without a daemon and scripts can speak it too.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow};
use serde::{Deserialize, Serialize};

/// A request from the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// Reads the mode, or sets it when `mode` is given.
    Mode {
        mode: Option<String>,
    },
    BlockAdd {
        cidr: String,
        ttl_secs: Option<u64>,
        reason: Option<String>,
    },
    BlockDel {
        cidr: String,
    },
    BlockList,
    AllowAdd {
        cidr: String,
    },
    AllowDel {
        cidr: String,
    },
    AllowList,
    Stats,
    /// The heaviest sources of the last seconds, from sampled headers.
    Top {
        n: usize,
    },
    LimitsShow,
    /// Changes the per-source limits (or the aggregate ceilings) of one class, or of all
    /// classes when `class` is None. Absent values stay as they are; 0 removes a limit.
    LimitsSet {
        class: Option<String>,
        aggregate: bool,
        pps: Option<u64>,
        bps: Option<u64>,
        burst: Option<u64>,
    },
}

/// The daemon's answer: `ok` with data, or one error line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response {
            ok: true,
            error: None,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn error(e: &anyhow::Error) -> Response {
        Response {
            ok: false,
            error: Some(format!("{e:#}")),
            data: serde_json::Value::Null,
        }
    }
}

/// Sends one request to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, request: &Request) -> Result<Response> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        anyhow!(
            "levee is not running: cannot connect to {} ({e}); start it with `levee run`",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .context("failed to send the request to the daemon")?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("the daemon did not answer")?;
    serde_json::from_str(&answer)
        .with_context(|| format!("malformed answer from the daemon: {answer:?}"))
}

/// Sends a request and returns its data, or the daemon's refusal as the error.
pub fn request(socket: &Path, request: &Request) -> Result<serde_json::Value> {
    let response = call(socket, request)?;
    if !response.ok {
        return Err(anyhow!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon refused".into())
        ));
    }
    Ok(response.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_json() {
        let r = Request::BlockAdd {
            cidr: "192.0.2.0/24".into(),
            ttl_secs: Some(600),
            reason: None,
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"cmd":"block_add","cidr":"192.0.2.0/24","ttl_secs":600,"reason":null}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"mode","mode":"enforce"}"#).unwrap(),
            Request::Mode {
                mode: Some("enforce".into())
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
    }

    #[test]
    fn missing_daemon_is_one_clear_line() {
        let e = call(Path::new("/nonexistent/levee.sock"), &Request::Status).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.starts_with("levee is not running"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
