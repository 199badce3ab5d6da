//! The HTTP adapter: a thin hyper service that routes to the SCEP service, the admin API and
//! the health endpoints. Protocol decisions live in the layers below; this layer only maps
//! them to status codes and content types, and enforces the transport limits.

mod admin;
mod auth;
mod mdm;
mod pki;
mod ratelimit;
mod response;
mod router;
mod scep;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::service::ScepService;

/// Everything a request handler may use.
pub struct AppState {
    pub service: Arc<ScepService>,
    /// SHA-256 of the admin token; compared in constant time.
    pub admin_token_sha256: [u8; 32],
    pub max_body_bytes: usize,
    /// Bounds concurrent private-key work to the cores, so a flood queues instead of starving
    /// the accept loop and the health checks.
    pub signing_permits: Semaphore,
    /// Failed MDM/admin authentications per source address.
    pub auth_failures: ratelimit::FailureLimiter,
    /// Refuse the admin and challenge APIs over plain HTTP (except from loopback).
    pub admin_tls_only: bool,
    next_request_id: AtomicU64,
}

impl AppState {
    pub fn new(
        service: Arc<ScepService>,
        admin_token: &str,
        max_body_bytes: usize,
        auth_failures_per_minute: u32,
        admin_tls_only: bool,
    ) -> AppState {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        AppState {
            service,
            admin_token_sha256: sha256(admin_token.as_bytes()),
            max_body_bytes,
            signing_permits: Semaphore::new(cores),
            auth_failures: ratelimit::FailureLimiter::new(auth_failures_per_minute),
            admin_tls_only,
            next_request_id: AtomicU64::new(1),
        }
    }

    fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().try_into().expect("32 bytes")
}

/// Slow clients get this long to send their request headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// certmonger's GET PKIOperation URLs are about 3.6 KB (5.5 KB with RSA-4096 and SANs);
/// hyper's read buffer bounds the request head.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routes {
    All,
    /// A separate metrics listener (`--metrics-listen`): `/metrics` only.
    MetricsOnly,
}

/// Whether a listener speaks TLS.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(tokio_rustls::TlsAcceptor),
}

/// How long a client gets to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Accepts connections until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish (bounded by `SHUTDOWN_GRACE`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    routes: Routes,
    transport: Transport,
    shutdown: impl Future<Output = ()>,
) {
    let secure = matches!(transport, Transport::Tls(_));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let svc = service_fn(move |req: hyper::Request<Incoming>| {
            let state = state.clone();
            async move {
                Ok::<_, Infallible>(match routes {
                    Routes::All => router::route(&state, req, peer, secure).await,
                    Routes::MetricsOnly if req.uri().path() == "/metrics" => router::metrics_response(&state),
                    Routes::MetricsOnly => response::text(hyper::StatusCode::NOT_FOUND, "not found"),
                })
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).max_buf_size(MAX_HEAD_BYTES);
        match &transport {
            Transport::Plain => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Transport::Tls(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        _ => {
                            tracing::debug!(%peer, "TLS handshake failed");
                            return;
                        }
                    };
                    if let Err(e) = watcher.watch(builder.serve_connection(TokioIo::new(tls), svc)).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within {}s", SHUTDOWN_GRACE.as_secs());
    }
}

/// The address to tell clients for a listen address (a wildcard becomes loopback).
pub fn local_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("http://[{ip}]:{}", addr.port())
    } else {
        format!("http://{ip}:{}", addr.port())
    }
}
