//! Authentication of the MDM and admin endpoints: HTTP Basic with an MDM credential, or the
//! admin bearer token. Failures are counted per source address.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Response, StatusCode};
use subtle::ConstantTimeEq;

use super::response::{self, Body};
use super::{sha256, AppState};
use crate::store::MdmClient;

/// Who a request is.
#[derive(Debug)]
pub enum Caller {
    Admin,
    Mdm(MdmClient),
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    crate::api::basic_credentials(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    bearer(headers).is_some_and(|t| bool::from(sha256(t.as_bytes()).ct_eq(&state.admin_token_sha256)))
}

/// Counts, logs and audits a failed authentication.
pub async fn record_auth_failure(state: &AppState, peer: IpAddr, endpoint: &'static str, request_id: u64) {
    state.auth_failures.record_failure(peer);
    tracing::warn!(endpoint, client = %peer, "authentication failed");
    state
        .service
        .authentication_failed(&crate::service::Origin::new(peer.to_string(), request_id), endpoint)
        .await;
}

/// What to answer an unauthenticated request.
pub fn unauthorized(scheme: &'static str) -> Response<Body> {
    let mut r = response::text(StatusCode::UNAUTHORIZED, "authentication required");
    let challenge = if scheme == "Basic" {
        "Basic realm=\"scepd\""
    } else {
        "Bearer realm=\"scepd\""
    };
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

fn too_many(retry_after: u64) -> Response<Body> {
    let mut r = response::text(StatusCode::TOO_MANY_REQUESTS, "too many failed attempts; retry later");
    r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after));
    r
}

/// Authenticates a request that may come from an MDM client (Basic) or, if `admin_allowed`, an
/// operator (Bearer). The error is the response to send.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: IpAddr,
    endpoint: &'static str,
    admin_allowed: bool,
    request_id: u64,
) -> Result<Caller, Response<Body>> {
    if let Some(wait) = state.auth_failures.retry_after(peer) {
        return Err(too_many(wait));
    }
    if admin_allowed && is_admin(state, headers) {
        return Ok(Caller::Admin);
    }
    if let Some((name, password)) = basic(headers) {
        if let Some(client) = state.service.cached_mdm(&name, &password) {
            return Ok(Caller::Mdm(client));
        }
        let service = Arc::clone(&state.service);
        let found = tokio::task::spawn_blocking(move || service.authenticate_mdm(&name, &password)).await;
        match found {
            Ok(Ok(Some(client))) => return Ok(Caller::Mdm(client)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store unavailable");
                return Err(response::text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"));
            }
            Err(_) => return Err(response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
        }
    }
    record_auth_failure(state, peer, endpoint, request_id).await;
    Err(unauthorized("Basic"))
}
