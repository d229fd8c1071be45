//! The control socket: one JSON request line in, one JSON answer line out, per connection,
//! in a task of its own with read and write timeouts and a bound on connections.

use std::{
    sync::{Arc, mpsc},
    time::{Duration, SystemTime},
};

use anyhow::{Result, anyhow};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream, unix::OwnedWriteHalf},
    sync::{Semaphore, oneshot},
};
use tracing::{info, warn};

use super::Call;
use crate::{
    api::{Request, Response},
    capture::{CaptureMsg, CaptureSpec, CaptureStarted, PcapNgStream},
};

/// Connections served at once; more wait in the listen backlog until one ends.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request, and to read the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// Serves the control socket; each connection holds one of `slots` while it lasts.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    calls: mpsc::Sender<Call>,
    slots: Arc<Semaphore>,
) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return warn!("control socket: {e}"),
    };
    if let Ok(addr) = listener.local_addr()
        && let Some(path) = addr.as_pathname()
    {
        info!(socket = %path.display(), "control socket ready");
    }
    loop {
        // A slot first: past the bound, clients wait in the listen backlog (their connect
        // blocks there) rather than being accepted and closed.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: a short pause, so it never spins.
                warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, calls).await {
                warn!("control connection: {e:#}");
            }
            drop(permit);
        });
    }
}

async fn answer(stream: UnixStream, calls: mpsc::Sender<Call>) -> Result<()> {
    // The socket is 0600; the peer's credentials are checked too, so a descriptor passed to
    // another user (or a looser mode set by hand) does not open the daemon to it.
    let uid = stream.peer_cred()?.uid();
    // SAFETY: geteuid(2) cannot fail.
    let own = unsafe { libc::geteuid() };
    let (read, mut write) = stream.into_split();
    if uid != 0 && uid != own {
        let refusal = Response::error(&anyhow!(
            "permission denied: uid {uid} may not control levee"
        ));
        let mut out = serde_json::to_vec(&refusal)?;
        out.push(b'\n');
        let _ = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out)).await;
        return Ok(());
    }
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| anyhow!("client sent no request within 5 s"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Capture(crate::cmd::Capture { spec })) => {
            return stream_capture(spec, calls, reader, write).await;
        }
        Ok(request) => {
            let changes = request.changes().then(|| line.trim_end().to_string());
            let (reply, answer) = oneshot::channel();
            calls
                .send(Call::Request(request, reply))
                .map_err(|_| anyhow!("the controller has stopped"))?;
            let response = answer
                .await
                .map_err(|_| anyhow!("the controller has stopped"))?;
            let delivered = deliver(&mut write, &response).await;
            // A change the client is not told of must not pass unseen.
            if let (Err(e), Some(request), true) = (&delivered, changes, response.ok) {
                warn!(%request, "applied, but the client was not told: {e:#}");
            }
            return delivered;
        }
        Err(e) => Response::error(&anyhow!("malformed request: {e}")),
    };
    deliver(&mut write, &response).await
}

/// Writes the answer line.
async fn deliver(write: &mut OwnedWriteHalf, response: &Response) -> Result<()> {
    let mut out = serde_json::to_vec(response)?;
    out.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out))
        .await
        .map_err(|_| anyhow!("client did not read the answer within 10 s"))??;
    Ok(())
}

/// Packets queued for a capture's client at most; past that the controller counts them as
/// lost to a slow reader rather than wait.
const CAPTURE_QUEUE: usize = 4096;

/// A capture: the answer line, then the pcapng stream until the capture ends. The client
/// closing its end, or not reading for 10 s, ends it too; so does anything it sends after
/// its request, or shutting down its writing side (a client must keep it open).
async fn stream_capture(
    spec: CaptureSpec,
    calls: mpsc::Sender<Call>,
    mut from_client: impl AsyncRead + Unpin,
    mut write: OwnedWriteHalf,
) -> Result<()> {
    let (to_client, mut packets) = tokio::sync::mpsc::channel(CAPTURE_QUEUE);
    let (reply, answer) = oneshot::channel();
    calls
        .send(Call::Capture(spec.clone(), reply, to_client))
        .map_err(|_| anyhow!("the controller has stopped"))?;
    let response = answer
        .await
        .map_err(|_| anyhow!("the controller has stopped"))?;
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    send(&mut write, &out).await?;
    if !response.ok {
        return Ok(());
    }
    let started: CaptureStarted = serde_json::from_str(response.data.get())?;
    let mut pcap = PcapNgStream::new(&started.interfaces, spec.snaplen)?;
    let mut probe = [0u8; 1];
    loop {
        send(&mut write, &pcap.take()).await?;
        tokio::select! {
            msg = packets.recv() => match msg {
                Some(CaptureMsg::Packet { iface, at, record }) => pcap.packet(iface, at, &record)?,
                Some(CaptureMsg::End { why, skipped }) => {
                    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?;
                    pcap.end(now, &why, &skipped)?;
                    return send(&mut write, &pcap.take()).await;
                }
                None => return Ok(()),
            },
            // The client closed its end: dropping `packets` tells the controller.
            _ = from_client.read(&mut probe) => return Ok(()),
        }
    }
}

async fn send(write: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(bytes))
        .await
        .map_err(|_| anyhow!("capture client did not read for 10 s"))??;
    Ok(())
}
