//! The /metrics endpoint: HTTP/1 with hyper, one task per connection, a header timeout, a
//! lifetime cap and a bound on connections, so idle clients cannot pile up and take the
//! daemon's descriptors.

use std::{convert::Infallible, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode, body::Bytes, header::CONTENT_TYPE, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tracing::{info, warn};

use crate::metrics::SharedMetrics;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives (a scraper simply reconnects).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

pub async fn serve(listener: std::net::TcpListener, metrics: SharedMetrics) {
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => return warn!("metrics server: {e}"),
    };
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics at /metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        let Some((stream, permit)) = admit(accepted, &slots, "metrics").await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            drop(permit);
        });
    }
}

fn respond<B>(req: &Request<B>, metrics: &SharedMetrics) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        let mut not_found = Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *not_found.status_mut() = StatusCode::NOT_FOUND;
        return not_found;
    }
    let body = metrics.lock().map(|m| m.render()).unwrap_or_default();
    let mut ok = Response::new(Full::new(Bytes::from(body)));
    ok.headers_mut().insert(
        CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
            .parse()
            .expect("a valid header value"),
    );
    ok
}

/// One accepted connection and its slot. `None` when accept failed (after a short pause, so
/// running out of descriptors never spins) or when every slot is taken (the connection is
/// closed at once, so idle clients cannot pile up).
async fn admit<S>(
    accepted: std::io::Result<S>,
    slots: &std::sync::Arc<tokio::sync::Semaphore>,
    what: &str,
) -> Option<(S, tokio::sync::OwnedSemaphorePermit)> {
    let stream = match accepted {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!("{what} accept: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            return None;
        }
    };
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::debug!("{what}: too many connections, one closed");
        return None;
    };
    Some((stream, permit))
}
