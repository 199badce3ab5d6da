//! The HTTP adapter: a thin hyper service that routes to the SCEP service, the admin API and
//! the health endpoints. Protocol decisions live in the layers below; this layer only maps
//! them to status codes and content types, and enforces the transport limits.

mod admin;
mod auth;
mod ca_admin;
mod client_addr;
mod connections;
mod console;
mod mdm;
mod pki;
mod ratelimit;
mod response;
mod router;
mod scep;
pub mod tls;
mod webhooks;

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
pub use client_addr::{AddressRange, TrustedProxies};

/// Everything a request handler may use.
pub struct AppState {
    pub service: Arc<ScepService>,
    /// SHA-256 of the admin token; compared in constant time.
    pub admin_token_sha256: [u8; 32],
    pub max_body_bytes: usize,
    /// Open connections (`max_connections` permits).
    connections: Arc<Semaphore>,
    /// Open connections per source (`max_connections_per_source`).
    source_connections: Arc<connections::SourceConnections>,
    /// Whose forwarding headers give the client address.
    pub trusted_proxies: TrustedProxies,
    /// Bounds the PKIOperations in progress ([`PKI_OPERATIONS_PER_CORE`] per core), so a flood
    /// queues instead of starving the accept loop and the health checks.
    pub signing: PermitPool,
    /// OCSP's own, smaller share of private-key work: unauthenticated OCSP requests never take
    /// the permits or the queue enrollment needs.
    pub ocsp_signing: PermitPool,
    /// Failed MDM/admin authentications per source address and credential name.
    pub auth_failures: ratelimit::FailureLimiter,
    /// Refuse the admin and challenge APIs over plain HTTP (except from loopback).
    pub admin_tls_only: bool,
    /// Refused challenges per source address on the SCEP endpoint.
    pub challenge_failures: ratelimit::FailureLimiter,
    pub limits: Limits,
    /// The web console's cached overview.
    pub console: console::ConsoleState,
    next_request_id: AtomicU64,
}

/// PKIOperations in progress at once, per core. An enrollment keeps its permit through its
/// durable commit, where it waits on the disk without using a CPU. With one permit per core the
/// cores sat idle during every fsync and no two enrollments ever reached the commit together, so
/// group commit never grouped: one fdatasync and about 24 page writes per enrollment. With eight,
/// enrollments meet at the commit and share it: server CPU per enrollment fell by a quarter at
/// C = 4 and by a third at C = 16 (BENCHMARKS.md, issue 16). The CPU-bound part is still
/// bounded: its threads only take turns on the cores.
pub const PKI_OPERATIONS_PER_CORE: usize = 8;

/// Permits for private-key work and a bounded queue of waiters.
pub struct PermitPool {
    permits: Semaphore,
    queued: std::sync::atomic::AtomicUsize,
    max_queued: usize,
}

impl PermitPool {
    fn new(permits: usize, max_queued: usize) -> PermitPool {
        PermitPool {
            permits: Semaphore::new(permits.max(1)),
            queued: std::sync::atomic::AtomicUsize::new(0),
            max_queued,
        }
    }

    /// Waits for a permit, unless too many already wait (then `None`: answer "retry later"
    /// rather than queue without bound).
    pub async fn acquire(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Some(permit);
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = self.permits.acquire().await.ok();
        self.queued.fetch_sub(1, Ordering::AcqRel);
        permit
    }
}

impl AppState {
    pub fn new(
        service: Arc<ScepService>,
        admin_token: &str,
        limits: Limits,
        admin_tls_only: bool,
        trusted_proxies: TrustedProxies,
    ) -> AppState {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        AppState {
            service,
            admin_token_sha256: sha256(admin_token.as_bytes()),
            max_body_bytes: limits.max_body_bytes,
            signing: PermitPool::new(cores * PKI_OPERATIONS_PER_CORE, limits.max_queued_operations),
            ocsp_signing: PermitPool::new(cores / 2, limits.max_queued_operations),
            auth_failures: ratelimit::FailureLimiter::new(limits.auth_failures_per_minute),
            admin_tls_only,
            challenge_failures: ratelimit::FailureLimiter::new(limits.challenge_failures_per_minute),
            connections: Arc::new(Semaphore::new(limits.max_connections)),
            source_connections: Arc::new(connections::SourceConnections::new(limits.max_connections_per_source)),
            trusted_proxies,
            limits,
            console: console::ConsoleState::default(),
            next_request_id: AtomicU64::new(1),
        }
    }

    fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

/// Transport and abuse limits, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub auth_failures_per_minute: u32,
    pub challenge_failures_per_minute: u32,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub max_queued_operations: usize,
    pub request_timeout: Duration,
}

/// Slow clients get this long to send their request headers (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The request line and headers at most (431 past it). certmonger's GET PKIOperation URLs are
/// about 3.6 KB (5.5 KB with RSA-4096 and SANs). The router enforces it exactly
/// (`router::head_bytes`); hyper's read buffer, which may fill past its bound in one read, is
/// the backstop for heads that never end.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Room in hyper's read buffer past the head limit, so that the router is the one to decide.
const READ_BUFFER_SLACK: usize = 16 * 1024;

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
        // At most `max_connections` open: past it, new clients wait in the accept queue.
        let connection = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&state.connections).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
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
        // One source may hold only so many connections (proxies it trusts are exempt): past it,
        // the new connection is closed at once.
        let source_slot = if state.trusted_proxies.trusts(peer.ip()) {
            None
        } else {
            match state.source_connections.open(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "too many connections from this source; closed");
                    drop(stream);
                    continue;
                }
            }
        };
        let connection = (connection, source_slot);
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
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES + READ_BUFFER_SLACK);
        match &transport {
            Transport::Plain => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    let _connection = connection;
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Transport::Tls(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _connection = connection;
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
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    if addr.is_ipv6() && !addr.ip().is_unspecified() {
        format!("http://[{ip}]:{}", addr.port())
    } else {
        format!("http://{ip}:{}", addr.port())
    }
}
