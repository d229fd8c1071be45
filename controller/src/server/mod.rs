//! The thin async server of `levee run`, in the style of mini-redis: the controller runs on
//! a thread of its own and takes one call at a time from a channel; the control socket and
//! the /metrics endpoint serve each connection in its own task, with timeouts and a bound on
//! connections. A client that never reads, or a flood of idle connections, stalls only its
//! own tasks: never the controller's tick (expiry, detection, metrics) or the signals.

mod control;
mod http;

/// Control-socket connections served at once; more wait in the listen backlog.
pub use control::MAX_CONNECTIONS;

use std::{
    future::Future,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};
use tracing::{error, info};

use crate::{
    api::{Request, Response},
    controller::Controller,
};

/// What the server asks of the controller thread.
pub enum Call {
    Request(Request, oneshot::Sender<Response>),
    /// Starts a capture whose packets go to the sender; answered like a request.
    Capture(
        crate::capture::CaptureSpec,
        oneshot::Sender<Response>,
        tokio::sync::mpsc::Sender<crate::capture::CaptureMsg>,
    ),
    Reload,
    Stop,
}

/// The sockets `levee run` bound before anything was attached.
pub struct Listeners {
    pub control: std::os::unix::net::UnixListener,
    pub metrics: Option<std::net::TcpListener>,
}

/// How often the controller ticks.
const TICK: Duration = Duration::from_secs(1);
/// How often the event rings are drained between ticks.
const DRAIN: Duration = Duration::from_millis(100);
/// Requests answered together at most (one connection each: at most the connections served).
const MAX_BATCH: usize = control::MAX_CONNECTIONS;

/// Serves until `shutdown` completes or SIGINT/SIGTERM arrives, then stops the controller
/// (which detaches unless keep_on_exit) and returns its result.
pub async fn run(
    controller: Controller,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let metrics = controller.metrics();
    let (calls, inbox) = mpsc::channel::<Call>();
    let worker = std::thread::Builder::new()
        .name("levee-controller".into())
        .spawn(move || controller_loop(controller, inbox))
        .context("cannot start the controller thread")?;

    let connections = std::sync::Arc::new(tokio::sync::Semaphore::new(control::MAX_CONNECTIONS));
    let control = tokio::spawn(control::serve(
        listeners.control,
        calls.clone(),
        connections.clone(),
    ));
    let http = listeners
        .metrics
        .map(|l| tokio::spawn(http::serve(l, metrics)));
    // Every interface is attached (the controller exists) and the sockets are served: ready.
    service_manager(&[sd_notify::NotifyState::Ready]);

    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let _ = calls.send(Call::Reload);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = &mut shutdown => break,
        }
    }
    service_manager(&[sd_notify::NotifyState::Stopping]);
    control.abort();
    if let Some(h) = http {
        h.abort();
    }
    let _ = calls.send(Call::Stop);
    let stopped = tokio::task::spawn_blocking(move || worker.join())
        .await?
        .map_err(|_| anyhow!("the controller thread panicked"))?;
    // Connections still open finish their answer (a capture its last block), for 2 s at most.
    let all = control::MAX_CONNECTIONS as u32;
    let _ = tokio::time::timeout(Duration::from_secs(2), connections.acquire_many(all)).await;
    stopped
}

/// The controller's thread: one call at a time, the event rings drained ten times a second
/// and a tick once a second. A tick never catches up: after a stall (a long reload) the next
/// one comes at once and measures the whole interval, then the cadence starts again.
fn controller_loop(mut controller: Controller, inbox: mpsc::Receiver<Call>) -> Result<()> {
    // The watchdog is fed from the tick: a controller that hangs is restarted by systemd.
    let watchdog = sd_notify::watchdog_enabled().is_some();
    let mut next_tick = Instant::now() + TICK;
    let mut next_drain = Instant::now() + DRAIN;
    // A call that came in behind a batch of requests, taken next.
    let mut deferred = None;
    loop {
        let wait = next_tick
            .min(next_drain)
            .saturating_duration_since(Instant::now());
        let call = match deferred.take() {
            Some(call) => Ok(call),
            None => inbox.recv_timeout(wait),
        };
        match call {
            Ok(Call::Request(request, reply)) => {
                // What waits with it is answered together, with one write of the state file.
                let mut batch = vec![(request, reply)];
                while batch.len() < MAX_BATCH {
                    match inbox.try_recv() {
                        Ok(Call::Request(request, reply)) => batch.push((request, reply)),
                        Ok(other) => {
                            deferred = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                controller.handle_all(batch);
            }
            Ok(Call::Capture(spec, reply, to_client)) => {
                let started = controller.start_capture(&spec, to_client);
                let _ = reply.send(Response::from_result(started));
            }
            Ok(Call::Reload) => {
                let mut reloading = vec![sd_notify::NotifyState::Reloading];
                reloading.extend(sd_notify::NotifyState::monotonic_usec_now().ok());
                service_manager(&reloading);
                if let Err(e) = controller.reload() {
                    error!("reload failed, the running config stays: {e:#}");
                }
                service_manager(&[sd_notify::NotifyState::Ready]);
            }
            Ok(Call::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            controller.tick();
            controller.drain_capture();
            if watchdog {
                service_manager(&[sd_notify::NotifyState::Watchdog]);
            }
            next_tick = Instant::now() + TICK;
            next_drain = Instant::now() + DRAIN;
        } else if now >= next_drain {
            controller.drain_events();
            controller.drain_capture();
            controller.follow_bgp();
            next_drain = Instant::now() + DRAIN;
        }
    }
    info!("stopping");
    controller.stop()
}

/// Tells systemd (a `Type=notify` unit's $NOTIFY_SOCKET) how the daemon is; nothing without
/// one. A message that cannot be sent is logged: systemd would then time the start out.
fn service_manager(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// Binds the control socket before anything is attached, so a second daemon on the same
/// socket fails here. The socket is bound under umask 0177, so it is never reachable with
/// looser permissions than 0600, not even for a moment; only a stale socket is replaced,
/// never another kind of file.
pub fn bind_control_socket(socket: &std::path::Path) -> Result<std::os::unix::net::UnixListener> {
    use std::{fs, os::unix::fs::FileTypeExt as _};
    if let Some(dir) = socket.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Ok(meta) = fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket: refusing to replace it (choose another --socket)",
                socket.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            anyhow::bail!("another levee is already running on {}", socket.display());
        }
        // A socket nobody listens on: left by a daemon that was killed.
        fs::remove_file(socket)
            .with_context(|| format!("cannot remove the stale socket {}", socket.display()))?;
    }
    // SAFETY: umask(2) cannot fail; `levee run` is single-threaded here.
    let previous = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(socket);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = bound.with_context(|| format!("cannot listen on {}", socket.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
