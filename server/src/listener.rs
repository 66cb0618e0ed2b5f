//! The accept loop. Every socket is admitted through a [`Gate`] (a cap per address and in all,
//! so no client can take the process's open files), and served by hyper with a header-read
//! timeout — which also closes a keep-alive connection idle that long — and a timeout between
//! the frames of a request body. `axum::serve` has none of these. A refused socket is closed at
//! once: holding it would cost the file it was refused to save.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::limits::{ConnectionSlot, Gate};
use crate::metrics::Metrics;

/// How sockets are admitted and how long they may take.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// Open sockets in all and per address.
    pub gate: Gate,
    /// Until a request's headers are in (and how long a kept-alive connection may idle).
    pub header_timeout: Duration,
    /// Between two frames of a request body.
    pub body_timeout: Duration,
    /// Peers whose forwarding headers name the client (and whose sockets, carrying many
    /// clients, are not capped per address).
    pub proxies: crate::proxies::TrustedProxies,
}

/// The open files a server may use for sockets: the soft limit raised to the hard one, less
/// what the databases and the process need. `requested` (`0`: as many as fit) is lowered to
/// fit, with a warning.
pub fn socket_budget(requested: usize) -> usize {
    const RESERVED: u64 = 512;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fits = usize::try_from(limit.saturating_sub(RESERVED).max(64)).unwrap_or(usize::MAX);
    if requested > fits {
        tracing::warn!(requested, fits, open_files = limit, "--max-connections lowered to fit the open-files limit");
    }
    if requested == 0 {
        fits
    } else {
        requested.min(fits)
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then gives open connections `grace`
/// to finish.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: SocketLimits,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of files or memory for a moment: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let capped = !limits.proxies.trusts(addr.ip());
        let Some(slot) = limits.gate.admit_client(crate::limits::Client::Address(addr.ip()), capped) else {
            metrics.refused_sockets.inc();
            continue;
        };
        // Small frames (acks, events) must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = connection_service(&app, addr, slot, &limits);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::info!("closing connections that did not finish within the grace period"),
    }
}

/// The router as one connection sees it: its peer's address, the body timeout, and its slot,
/// which a WebSocket upgrade takes along so the socket stays counted for as long as it is open.
fn connection_service(
    app: &Router,
    addr: SocketAddr,
    slot: ConnectionSlot,
    limits: &SocketLimits,
) -> impl tower::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let slot = std::sync::Arc::new(slot);
    let (body_timeout, proxies) = (limits.body_timeout, limits.proxies.clone());
    app.clone().map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body)));
        let client = proxies.client(addr.ip(), req.headers());
        req.extensions_mut().insert(ConnectInfo(addr));
        req.extensions_mut().insert(crate::proxies::ClientAddr(client));
        req.extensions_mut().insert(SocketSlot(slot.clone()));
        req
    })
}

/// The slot of the socket a request came on: a WebSocket upgrade keeps it for the session.
#[derive(Debug, Clone)]
pub struct SocketSlot(pub std::sync::Arc<ConnectionSlot>);
