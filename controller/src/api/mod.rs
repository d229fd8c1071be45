//! The control API between the CLI and the daemon: one JSON request line over a Unix socket,
//! one JSON response line back. Requests carry typed values (checked again when the daemon
//! reads them, so a script cannot send what the CLI would refuse); the answers are the
//! [`views`], defined once for the daemon, the CLI and the tests.

pub mod views;
pub mod wire;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::IpAddr,
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use filter_common::{
    abi::Class,
    parse::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;

/// A request from the CLI: one command (see [`crate::cmd`]).
pub use crate::cmd::Request;

/// The packet `levee explain` asks about: its source and what is known of its transport.
/// Checked when built and again when the daemon reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ExplainFields")]
pub struct ExplainPacket {
    pub source: IpAddr,
    /// The protected address it is sent to, when given.
    pub dst: Option<IpAddr>,
    /// IP protocol number.
    pub proto: Option<u8>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// A TCP SYN (class tcp_syn); other TCP is tcp_other.
    pub syn: bool,
}

/// [`ExplainPacket`] as it travels, before its check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainFields {
    source: IpAddr,
    #[serde(default)]
    dst: Option<IpAddr>,
    #[serde(default)]
    proto: Option<u8>,
    #[serde(default)]
    sport: Option<u16>,
    #[serde(default)]
    dport: Option<u16>,
    #[serde(default)]
    syn: bool,
}

impl TryFrom<ExplainFields> for ExplainPacket {
    type Error = anyhow::Error;

    fn try_from(f: ExplainFields) -> Result<ExplainPacket> {
        ExplainPacket::new(f.source, f.proto, f.sport, f.dport, f.syn)?.to(f.dst)
    }
}

impl ExplainPacket {
    /// The packet, or one line naming the argument that does not fit: ports need TCP or UDP,
    /// `--syn` needs TCP.
    pub fn new(
        source: IpAddr,
        proto: Option<u8>,
        sport: Option<u16>,
        dport: Option<u16>,
        syn: bool,
    ) -> Result<ExplainPacket> {
        let ports = matches!(proto, Some(IPPROTO_TCP | IPPROTO_UDP));
        for (name, port) in [("--sport", sport), ("--dport", dport)] {
            if port.is_some() && !ports {
                anyhow::bail!("{name}: a port needs --proto tcp or udp");
            }
        }
        if syn && proto != Some(IPPROTO_TCP) {
            anyhow::bail!("--syn: needs --proto tcp");
        }
        Ok(ExplainPacket {
            source,
            dst: None,
            proto,
            sport,
            dport,
            syn,
        })
    }

    /// The packet sent to `dst`, which must be of the source's family.
    pub fn to(self, dst: Option<IpAddr>) -> Result<ExplainPacket> {
        if let Some(d) = dst
            && d.is_ipv6() != self.source.is_ipv6()
        {
            anyhow::bail!("--dst {d}: not of the source's address family");
        }
        Ok(ExplainPacket { dst, ..self })
    }

    /// The packet's class, as the program's parser gives it; None without a protocol.
    pub fn class(&self) -> Option<Class> {
        Some(match self.proto? {
            IPPROTO_TCP if self.syn => Class::TcpSyn,
            IPPROTO_TCP => Class::TcpOther,
            IPPROTO_UDP => Class::Udp,
            IPPROTO_ICMP | IPPROTO_ICMPV6 => Class::Icmp,
            _ => Class::Other,
        })
    }
}

/// The daemon's answer: `ok` with data, or one error line. The data stays encoded JSON on
/// both sides (no intermediate tree), so a million-entry list costs one pass each way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Done, but with a caveat the operator must hear (the CLI prints it on stderr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub data: Box<RawValue>,
}

impl Response {
    pub fn ok(data: impl Serialize) -> Response {
        Response::from_result(Ok(data))
    }

    /// `ok` with data already encoded.
    pub fn ok_raw(data: Box<RawValue>) -> Response {
        Response {
            ok: true,
            error: None,
            warning: None,
            data,
        }
    }

    /// `ok` with the value, or the error's line.
    pub fn from_result<T: Serialize>(result: Result<T>) -> Response {
        match result.and_then(|v| Ok(serde_json::value::to_raw_value(&v)?)) {
            Ok(data) => Response::ok_raw(data),
            Err(e) => Response::error(&e),
        }
    }

    pub fn error(e: &anyhow::Error) -> Response {
        Response {
            ok: false,
            error: Some(format!("{e:#}")),
            warning: None,
            data: RawValue::from_string("null".into()).expect("null is JSON"),
        }
    }
}

/// How long the CLI waits for the daemon's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one request to the daemon at `socket` and waits for its answer.
pub fn call(socket: &Path, request: &Request) -> Result<Response> {
    call_then_read(socket, request).map(|(response, _)| response)
}

/// [`call`], and the connection after the answer, for a request answered with a stream.
pub fn call_then_read(
    socket: &Path,
    request: &Request,
) -> Result<(Response, BufReader<UnixStream>)> {
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on {}: the control socket is root's alone; run levee as root",
            socket.display()
        ),
        _ => anyhow!(
            "levee is not running: cannot connect to {} ({e}); start it with `levee run`",
            socket.display()
        ),
    })?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    // The socket's errors are told as text, never as an io::Error in the chain: the CLI
    // takes a broken pipe for its own closed stdout (`levee block list | head`), and a
    // daemon that closed the connection must never read as a quiet success.
    stream
        .write_all(line.as_bytes())
        .map_err(|e| anyhow!("failed to send the request to the daemon: {e}"))?;
    let mut answer = String::new();
    let mut reader = BufReader::new(stream);
    match reader.read_line(&mut answer) {
        Ok(0) => bail!("the daemon closed the connection without answering"),
        Ok(_) => {}
        Err(e) => bail!("the daemon did not answer: {e}"),
    }
    let response = serde_json::from_str(&answer).with_context(|| {
        let shown: String = answer.chars().take(200).collect();
        format!("malformed answer from the daemon: {shown:?}")
    })?;
    Ok((response, reader))
}

/// Sends a request and returns its answer's data, or the daemon's refusal as the error (a
/// warning is printed on stderr).
pub fn request_raw(socket: &Path, request: &Request) -> Result<Box<RawValue>> {
    let response = call(socket, request)?;
    if !response.ok {
        return Err(anyhow!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon refused".into())
        ));
    }
    if let Some(w) = &response.warning {
        eprintln!("warning: {w}");
    }
    Ok(response.data)
}

/// [`request_raw`], the data as `T`.
pub fn request<T: DeserializeOwned>(socket: &Path, request: &Request) -> Result<T> {
    let data = request_raw(socket, request)?;
    serde_json::from_str(data.get()).context("unexpected answer from the daemon")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{BlockAdd, Explain, LimitsChange, SetMode, Status};

    #[test]
    fn requests_are_tagged_json_with_checked_values() {
        let r = Request::BlockAdd(BlockAdd {
            cidr: "192.0.2.0/24".parse().unwrap(),
            ttl: Some(Duration::from_secs(600)),
            reason: None,
        });
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"cmd":"block_add","cidr":"192.0.2.0/24","ttl_secs":600,"reason":null}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&j).unwrap(), r);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"mode","mode":"enforce"}"#).unwrap(),
            Request::Mode(SetMode {
                mode: Some(filter_common::abi::Mode::Enforce)
            })
        );
        assert_eq!(
            serde_json::from_str::<Request>(
                r#"{"cmd":"limits_set","class":"udp","aggregate":true,"pps":5}"#
            )
            .unwrap(),
            Request::LimitsSet(LimitsChange {
                class: Some(Class::Udp),
                aggregate: true,
                pps: Some(5),
                bps: None,
                burst: None,
            })
        );
        for (bad, want) in [
            (r#"{"cmd":"explode"}"#, "unknown variant"),
            (r#"{"cmd":"mode","mode":"panic"}"#, "unknown mode"),
            (r#"{"cmd":"block_del","cidr":"192.0.2.7/24"}"#, "host bits"),
            (
                r#"{"cmd":"block_add","cidr":"192.0.2.7","ttl_secs":0}"#,
                "more than zero",
            ),
            (
                r#"{"cmd":"limits_set","class":"sctp","pps":1}"#,
                "unknown class",
            ),
            (r#"{"cmd":"limits_set","pps":1,"ppps":2}"#, "unknown field"),
        ] {
            let e = serde_json::from_str::<Request>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn explain_packets_are_checked_on_the_wire_too() {
        let r: Request = serde_json::from_str(
            r#"{"cmd":"explain","packet":{"source":"192.0.2.7","proto":17,"sport":123}}"#,
        )
        .unwrap();
        let Request::Explain(Explain { packet, .. }) = r else {
            panic!("{r:?}");
        };
        assert_eq!(packet.class(), Some(Class::Udp));
        assert_eq!(packet.sport, Some(123));
        let syn = ExplainPacket::new("2001:db8::1".parse().unwrap(), Some(6), None, None, true);
        assert_eq!(syn.unwrap().class(), Some(Class::TcpSyn));
        assert_eq!(
            ExplainPacket::new("192.0.2.7".parse().unwrap(), None, None, None, false)
                .unwrap()
                .class(),
            None
        );
        for (bad, want) in [
            (
                r#"{"cmd":"explain","packet":{"source":"192.0.2.7","sport":53}}"#,
                "--sport: a port needs --proto tcp or udp",
            ),
            (
                r#"{"cmd":"explain","packet":{"source":"192.0.2.7","proto":1,"dport":53}}"#,
                "--dport: a port needs",
            ),
            (
                r#"{"cmd":"explain","packet":{"source":"192.0.2.7","proto":17,"syn":true}}"#,
                "--syn: needs --proto tcp",
            ),
            (
                r#"{"cmd":"explain","packet":{"source":"192.0.2.300"}}"#,
                "invalid IP address",
            ),
            (
                r#"{"cmd":"explain","packet":{"source":"192.0.2.7","proto":17,"sport":65536}}"#,
                "65536",
            ),
        ] {
            let e = serde_json::from_str::<Request>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_daemon_is_one_clear_line() {
        let e = call(
            Path::new("/nonexistent/levee.sock"),
            &Status { json: false }.into(),
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.starts_with("levee is not running"), "{msg}");
        assert!(!msg.contains('\n'));
    }
}
