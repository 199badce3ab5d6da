//! Authentication of the MDM and admin endpoints: HTTP Basic with an MDM credential, or the
//! admin bearer token. Failures are counted per source address and credential name (see
//! [`super::ratelimit`]): a valid credential is always accepted.

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
    crate::api::authorization_credentials(headers.get(AUTHORIZATION)?.to_str().ok()?, "Bearer")
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    crate::api::basic_credentials(headers.get(AUTHORIZATION)?.to_str().ok()?)
}

pub fn is_admin(state: &AppState, headers: &HeaderMap) -> bool {
    bearer(headers).is_some_and(|t| bool::from(sha256(t.as_bytes()).ct_eq(&state.admin_token_sha256)))
}

/// Logs and audits a failed authentication.
pub async fn record_auth_failure(state: &AppState, peer: IpAddr, endpoint: &'static str, request_id: u64) {
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

pub fn too_many(retry_after: u64) -> Response<Body> {
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
    let credentials = basic(headers);
    // The name the attempt is counted under: the MDM client tried, or the admin token.
    let name = match &credentials {
        Some((name, _)) => format!("mdm:{name}"),
        None => "admin".to_string(),
    };
    let attempt = state.auth_failures.arrive(peer, &name);
    if admin_allowed && is_admin(state, headers) {
        return Ok(Caller::Admin);
    }
    if let Some((name, password)) = credentials {
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
    match attempt.failed() {
        Some(wait) => Err(too_many(wait)),
        None => Err(unauthorized("Basic")),
    }
}
