//! The control socket: one JSON request line in, one JSON answer line out, per connection,
//! in a task of its own with read and write timeouts and a bound on connections.

use std::{sync::Arc, sync::mpsc, time::Duration};

use anyhow::{Result, anyhow};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{Semaphore, oneshot},
};
use tracing::{info, warn};

use super::Call;
use crate::api::{Request, Response};

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request, and to read the answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

pub async fn serve(listener: std::os::unix::net::UnixListener, calls: mpsc::Sender<Call>) {
    let listener = match UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return warn!("control socket: {e}"),
    };
    if let Ok(addr) = listener.local_addr()
        && let Some(path) = addr.as_pathname()
    {
        info!(socket = %path.display(), "control socket ready");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = super::admit(accepted, &slots, "control socket").await else {
            continue;
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
        Ok(request) => {
            let (reply, answer) = oneshot::channel();
            calls
                .send(Call::Request(request, reply))
                .map_err(|_| anyhow!("the controller has stopped"))?;
            answer
                .await
                .map_err(|_| anyhow!("the controller has stopped"))?
        }
        Err(e) => Response::error(&anyhow!("malformed request: {e}")),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out))
        .await
        .map_err(|_| anyhow!("client did not read the answer within 10 s"))??;
    Ok(())
}
