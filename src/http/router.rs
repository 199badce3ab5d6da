//! Routing by path.

use std::net::SocketAddr;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use super::response::{self, Body};
use super::{admin, mdm, pki, scep, AppState};

/// SCEP lives at `/scep` and every path below it (`/scep/pkiclient.exe`), and at the
/// `/cgi-bin/pkiclient.exe` path that older clients (Cisco, sscep defaults) hard-code.
fn is_scep_path(path: &str) -> bool {
    path == "/scep" || path.starts_with("/scep/") || path == "/cgi-bin/pkiclient.exe"
}

pub async fn route(state: &AppState, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let id = state.request_id();
    let span = tracing::info_span!("request", id, method = %req.method(), path = %req.uri().path(), client = %peer);
    let started = Instant::now();
    async move {
        let path = req.uri().path().to_string();
        let resp = if is_scep_path(&path) {
            scep::handle(state, req).await
        } else {
            match (req.method(), path.as_str()) {
                // Jamf Pro and Fleet request the page with and without the trailing slash.
                (&Method::GET, "/certsrv/mscep_admin/" | "/certsrv/mscep_admin") => mdm::ndes_page(state, req, peer).await,
                (&Method::POST, "/api/v1/webhooks/jamf/scep-challenge") => mdm::jamf_webhook(state, req, peer).await,
                (&Method::POST, "/api/v1/challenges") => mdm::challenge_api(state, req, peer).await,
                (_, p) if p == "/api/v1" || p.starts_with("/api/v1/") => admin::handle(state, req, peer).await,
                (&Method::GET, p) if p == "/crl" || (p.starts_with("/crl/") && p.ends_with(".crl")) => pki::crl(state, req).await,
                (&Method::POST, "/ocsp") => pki::ocsp(state, req).await,
                (&Method::GET, p) if p.starts_with("/ocsp/") => pki::ocsp(state, req).await,
                (&Method::GET, "/ca.crt") => pki::ca_cert(state),
                (&Method::GET, "/healthz") => response::text(StatusCode::OK, "ok"),
                (&Method::GET, "/readyz") => response::json(StatusCode::OK, &serde_json::json!({"ready": true})),
                _ => response::text(StatusCode::NOT_FOUND, "not found"),
            }
        };
        tracing::info!(status = resp.status().as_u16(), ms = started.elapsed().as_secs_f64() * 1e3, "done");
        resp
    }
    .instrument(span)
    .await
}
