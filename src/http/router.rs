//! Routing by path.

use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use super::response::{self, Body};
use super::{admin, console, mdm, pki, scep, AppState};

/// SCEP lives at `/scep` and every path below it (`/scep/pkiclient.exe`), and at the
/// `/cgi-bin/pkiclient.exe` path that older clients (Cisco, sscep defaults) hard-code.
fn is_scep_path(path: &str) -> bool {
    path == "/scep" || path.starts_with("/scep/") || path == "/cgi-bin/pkiclient.exe"
}

/// Whether `admin_tls_only` refuses this request: the admin and challenge APIs and the web
/// console over plain HTTP, except from loopback (the local CLI).
fn refused_over_plain_http(admin_tls_only: bool, secure: bool, path: &str, peer: std::net::IpAddr) -> bool {
    let api = path.starts_with("/api/") || path.starts_with("/certsrv/") || console::is_console_path(path);
    admin_tls_only && !secure && api && !peer.is_loopback()
}

/// The size of the request line and headers as sent (give or take optional whitespace).
fn head_bytes<B>(req: &Request<B>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + " HTTP/1.1\r\n ".len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
        .sum();
    line + headers + "\r\n".len()
}

pub async fn route(state: &AppState, req: Request<Incoming>, peer: SocketAddr, secure: bool) -> Response<Body> {
    let id = state.request_id();
    // Behind a trusted proxy, the client it names; otherwise the TCP peer.
    let client = state.trusted_proxies.client(peer.ip(), req.headers());
    let span = tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path(), %client);
    let started = Instant::now();
    let _in_flight = InFlight::new(&state.service.metrics().in_flight);
    let timeout = state.limits.request_timeout;
    let handled = async move {
        let path = req.uri().path().to_string();
        let resp = if head_bytes(&req) > super::MAX_HEAD_BYTES {
            response::text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request line and headers exceed 64 KiB",
            )
        } else if refused_over_plain_http(state.admin_tls_only, secure, &path, client) {
            response::text(StatusCode::FORBIDDEN, "this API is served over HTTPS only")
        } else if console::is_console_path(&path) {
            console::handle(state, req, client, secure, id).await
        } else if is_scep_path(&path) {
            scep::handle(state, req, client, id).await
        } else {
            match (req.method(), path.as_str()) {
                // Jamf Pro and Fleet request the page with and without the trailing slash.
                (&Method::GET, "/certsrv/mscep_admin/" | "/certsrv/mscep_admin") => {
                    mdm::ndes_page(state, req, client, id).await
                }
                (&Method::POST, "/api/v1/webhooks/jamf/scep-challenge") => {
                    mdm::jamf_webhook(state, req, client, id).await
                }
                (&Method::POST, "/api/v1/challenges") => mdm::challenge_api(state, req, client, id).await,
                (_, p) if p == "/api/v1" || p.starts_with("/api/v1/") => admin::handle(state, req, client, id).await,
                (&Method::GET, p) if p == "/crl" || (p.starts_with("/crl/") && p.ends_with(".crl")) => {
                    pki::crl(state, req).await
                }
                (&Method::POST, "/ocsp") => pki::ocsp(state, req).await,
                (&Method::GET, p) if p.starts_with("/ocsp/") => pki::ocsp(state, req).await,
                (&Method::GET, p) if p == "/ca.crt" || (p.starts_with("/ca/") && p.ends_with(".crt")) => {
                    pki::ca_cert(state, p)
                }
                (&Method::GET, "/healthz") => response::text(StatusCode::OK, "ok"),
                (&Method::GET, "/metrics") => metrics_response(state),
                (&Method::GET, "/readyz") => readyz(state).await,
                _ => response::text(StatusCode::NOT_FOUND, "not found"),
            }
        };
        tracing::info!(
            status = resp.status().as_u16(),
            ms = rounded_millis(started.elapsed()),
            "done"
        );
        resp
    }
    .instrument(span);
    tokio::time::timeout(timeout, handled).await.unwrap_or_else(|_| {
        tracing::warn!(%client, "request timed out");
        response::text(StatusCode::SERVICE_UNAVAILABLE, "request timed out")
    })
}

/// A duration in milliseconds to two decimals, for the request log (`ms=0.78`, not
/// `ms=0.7750809999999999`).
fn rounded_millis(elapsed: std::time::Duration) -> f64 {
    (elapsed.as_secs_f64() * 1e5).round() / 100.0
}

/// Counts a request in flight until dropped — also when the client goes away mid-request.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub fn metrics_response(state: &AppState) -> Response<Body> {
    // A CA generation's role changes with the clock (a scheduled activation): no store read.
    state.service.refresh_ca_gauges();
    response::bytes(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        state.service.metrics().render(),
    )
}

/// `GET /readyz`: 200 when every check passes, else 503; the body says which check failed.
async fn readyz(state: &AppState) -> Response<Body> {
    let service = std::sync::Arc::clone(&state.service);
    match tokio::task::spawn_blocking(move || service.readiness()).await {
        Ok((true, body)) => response::json(StatusCode::OK, &body),
        Ok((false, body)) => response::json(StatusCode::SERVICE_UNAVAILABLE, &body),
        Err(_) => response::json_error(StatusCode::SERVICE_UNAVAILABLE, "readiness check failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::refused_over_plain_http as refused;
    use super::rounded_millis;
    use std::time::Duration;

    #[test]
    fn request_durations_are_logged_to_a_hundredth_of_a_millisecond() {
        assert_eq!(rounded_millis(Duration::from_nanos(775_081)).to_string(), "0.78");
        assert_eq!(rounded_millis(Duration::from_nanos(774_999)).to_string(), "0.77");
        assert_eq!(
            rounded_millis(Duration::from_micros(12_345_678)).to_string(),
            "12345.68"
        );
        assert_eq!(rounded_millis(Duration::ZERO).to_string(), "0");
    }

    #[test]
    fn admin_tls_only_keeps_the_apis_off_plain_http_except_loopback() {
        let remote = "192.0.2.7".parse().unwrap();
        let local = "127.0.0.1".parse().unwrap();
        assert!(refused(true, false, "/api/v1/challenges", remote));
        assert!(refused(true, false, "/certsrv/mscep_admin/", remote));
        assert!(!refused(true, true, "/api/v1/challenges", remote), "over TLS");
        assert!(!refused(true, false, "/api/v1/challenges", local), "the local CLI");
        assert!(!refused(true, false, "/scep", remote), "SCEP stays on plain HTTP");
        assert!(!refused(false, false, "/api/v1/challenges", remote));
        assert!(refused(true, false, "/ui/login", remote), "the console too");
        assert!(!refused(true, false, "/ui/", local));
    }
}
