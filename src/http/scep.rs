//! The SCEP endpoint: GetCACaps, GetCACert, PKIOperation over GET and POST.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::response::{self, Body};
use super::AppState;
use crate::scep::query;
use crate::service::ServiceError;

/// A client gets this long to send its request body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Seconds a client is asked to wait when the store fails (Retry-After).
const STORE_RETRY_AFTER: u32 = 5;

/// Operation names as metric labels (anything else is `other`: bounded cardinality).
fn operation_label(operation: Option<&str>) -> &'static str {
    match operation {
        Some("GetCACaps") => "GetCACaps",
        Some("GetCACert") => "GetCACert",
        Some("PKIOperation") => "PKIOperation",
        Some("GetNextCACert") => "GetNextCACert",
        _ => "other",
    }
}

pub async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    peer: std::net::IpAddr,
    request_id: u64,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let q = query::parse(req.uri().query().unwrap_or(""));
    let operation = operation_label(q.operation.as_deref());
    let (resp, outcome) = dispatch(state, req, &q, peer, request_id).await;
    let metrics = state.service.metrics();
    metrics
        .scep_duration
        .with_label_values(&[operation])
        .observe(started.elapsed().as_secs_f64());
    let (message_type, status, fail_info) =
        outcome.unwrap_or(("", if resp.status().is_success() { "OK" } else { "ERROR" }, ""));
    metrics
        .scep_requests
        .with_label_values(&[operation, message_type, status, fail_info])
        .inc();
    resp
}

/// messageType, pkiStatus and failInfo of a PKIOperation, for the metrics.
type Outcome = Option<(&'static str, &'static str, &'static str)>;

async fn dispatch(
    state: &AppState,
    req: Request<Incoming>,
    q: &query::Query,
    peer: std::net::IpAddr,
    request_id: u64,
) -> (Response<Body>, Outcome) {
    let Some(operation) = q.operation.as_deref() else {
        return (
            response::text(StatusCode::BAD_REQUEST, "missing operation parameter"),
            None,
        );
    };
    // Apple sends `message=<payload name>` with GetCACaps and GetCACert; there is one CA, so
    // the message is ignored.
    match (req.method(), operation) {
        (&Method::GET, "GetCACaps") => (response::text(StatusCode::OK, state.service.ca_caps()), None),
        (&Method::GET, "GetCACert") => {
            let (body, content_type) = state.service.ca_cert();
            (response::bytes(StatusCode::OK, content_type, body), None)
        }
        (&Method::GET, "GetNextCACert") => (next_ca_cert(state).await, None),
        (&Method::GET, "PKIOperation") => match q.message.as_deref().map(query::decode_message) {
            None => (
                response::text(StatusCode::BAD_REQUEST, "missing message parameter"),
                None,
            ),
            Some(Err(e)) => (response::text(StatusCode::BAD_REQUEST, e.to_string()), None),
            Some(Ok(message)) => pki_operation(state, message.into(), peer, request_id).await,
        },
        (&Method::POST, "PKIOperation") => {
            // Any request Content-Type is accepted: clients disagree on it.
            let read = tokio::time::timeout(
                BODY_TIMEOUT,
                Limited::new(req.into_body(), state.max_body_bytes).collect(),
            );
            let Ok(read) = read.await else {
                return (
                    response::text(StatusCode::REQUEST_TIMEOUT, "request body too slow"),
                    None,
                );
            };
            match read {
                Ok(body) => pki_operation(state, body.to_bytes(), peer, request_id).await,
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => (
                    response::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
                    None,
                ),
                Err(_) => (
                    response::text(StatusCode::BAD_REQUEST, "could not read the request body"),
                    None,
                ),
            }
        }
        (&Method::GET | &Method::POST, _) => (
            response::text(StatusCode::BAD_REQUEST, format!("unsupported operation {operation:?}")),
            None,
        ),
        _ => (response::text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"), None),
    }
}

/// GetNextCACert (RFC 8894 §4.7): the next CA's certificates, signed by the current CA; 404
/// while no next CA is prepared (GetCACaps does not list the operation then).
async fn next_ca_cert(state: &AppState) -> Response<Body> {
    let service = Arc::clone(&state.service);
    match tokio::task::spawn_blocking(move || service.next_ca_cert()).await {
        Ok(Ok(Some(body))) => response::bytes(StatusCode::OK, "application/x-x509-next-ca-cert", body),
        Ok(Ok(None)) => response::text(StatusCode::NOT_FOUND, "no next CA is prepared"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "GetNextCACert failed");
            response::retry_later("the current CA cannot sign, retry later", STORE_RETRY_AFTER)
        }
        Err(_) => response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

async fn pki_operation(
    state: &AppState,
    body: Bytes,
    peer: std::net::IpAddr,
    request_id: u64,
) -> (Response<Body>, Outcome) {
    // Counted as it arrives: a burst of wrong challenges is over the limit from the first one
    // past it. Only refused challenges are limited: a good one is always answered.
    let attempt = state.challenge_failures.arrive(peer, "");
    let Some(_permit) = state.signing.acquire().await else {
        return (response::retry_later("busy; retry shortly", 1), None);
    };
    let service = Arc::clone(&state.service);
    let origin = crate::service::Origin::new(peer.to_string(), request_id);
    let result = tokio::task::spawn_blocking(move || service.pki_operation(&body, &origin)).await;
    match result {
        Ok(Ok(reply)) => {
            let over_limit = match reply.challenge_rejection {
                Some(_) => attempt.failed(),
                None => None,
            };
            tracing::info!(
                message_type = reply.message_type.map(|m| m.name()).unwrap_or("unknown"),
                transaction_id = %reply.transaction_id,
                status = if reply.fail_info.is_some() { "FAILURE" } else { "SUCCESS" },
                fail_info = reply.fail_info.map(|f| f.name()).unwrap_or(""),
                reason = reply.fail_text.unwrap_or(""),
                challenge_rejection = reply.challenge_rejection.unwrap_or(""),
                serial = reply.issued_serial.map(|s| s.to_hex()).unwrap_or_default(),
                "PKIOperation"
            );
            let outcome = (
                reply.message_type.map(|m| m.name()).unwrap_or("unknown"),
                if reply.fail_info.is_some() {
                    "FAILURE"
                } else {
                    "SUCCESS"
                },
                reply.fail_info.map(|f| f.name()).unwrap_or(""),
            );
            // Past the limit a refused challenge gets 429 instead of its CertRep.
            if let Some(wait) = over_limit {
                let mut r = response::text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many refused challenges; retry later",
                );
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(wait));
                return (r, Some(outcome));
            }
            (
                response::bytes(StatusCode::OK, "application/x-pki-message", reply.body),
                Some(outcome),
            )
        }
        Ok(Err(ServiceError::Malformed(e))) => {
            tracing::info!(error = %e, "PKIOperation refused");
            (response::text(StatusCode::BAD_REQUEST, e.to_string()), None)
        }
        Ok(Err(ServiceError::Store(e))) => {
            tracing::error!(error = %e, "store unavailable");
            // Clients retry after this; the store reconnects (or reopens) within seconds.
            (
                response::retry_later("store unavailable, retry later", STORE_RETRY_AFTER),
                None,
            )
        }
        Ok(Err(ServiceError::Ca(scepd_ca::CaError::KeyUnavailable))) => {
            tracing::error!("PKIOperation: a private key is unavailable (its token is gone?)");
            // A token that is back is reopened by the next operation: clients retry.
            (
                response::retry_later("a signing key is unavailable, retry later", STORE_RETRY_AFTER),
                None,
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "PKIOperation failed");
            (
                response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
                None,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "PKIOperation task failed");
            (
                response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
                None,
            )
        }
    }
}
