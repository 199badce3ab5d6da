//! The admin API (bearer token): what the `scepd cert ...` commands call.

use std::sync::Arc;

use std::net::IpAddr;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use scepd_ca::Serial;

use super::response::{self, Body};
use super::{auth, AppState};
use crate::api;
use crate::service::{MdmClientAdded, Origin, ScepService, ServiceError};
use crate::store::{RevokeOutcome, StoreError};

pub async fn handle(state: &AppState, req: Request<Incoming>, peer: IpAddr, request_id: u64) -> Response<Body> {
    // The right token is always accepted; past the limit a wrong one gets 429.
    let attempt = state.auth_failures.arrive(peer, "admin");
    if !auth::is_admin(state, req.headers()) {
        auth::record_auth_failure(state, peer, "admin", request_id).await;
        if let Some(wait) = attempt.failed() {
            let mut r = response::json_error(StatusCode::TOO_MANY_REQUESTS, "too many failed attempts; retry later");
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(wait));
            return r;
        }
        return auth::unauthorized("Bearer");
    }
    drop(attempt);
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return response::json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let service = Arc::clone(&state.service);
    let origin = Origin::new(ADMIN_ACTOR, request_id);
    let result = tokio::task::spawn_blocking(move || route(&service, &method, &path, &query, &body, &origin)).await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(ServiceError::Store(StoreError::Unsupported(message)))) => {
            response::json_error(StatusCode::CONFLICT, &message)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin request failed");
            response::json_error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(_) => response::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// Who the admin token speaks for, on the audit trail.
const ADMIN_ACTOR: &str = "admin";

const BAD_SERIAL: &str = "serial must be 32 hex digits (colons allowed)";

/// One admin request, on the blocking pool: parse, call the service, shape the answer.
fn route(
    service: &ScepService,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    origin: &Origin,
) -> Result<Response<Body>, ServiceError> {
    let bad_request = |message: &str| Ok(response::json_error(StatusCode::BAD_REQUEST, message));
    if super::webhooks::owns(path) {
        let Some(webhooks) = service.webhooks() else {
            return Ok(response::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "webhooks are not running",
            ));
        };
        return super::webhooks::route(webhooks, method, path, query, body, &|event, detail| {
            service.audit_blocking(origin.entry(event, None, Some(detail)))
        })
        .or_else(|e| match e {
            crate::webhook::WebhookError::Store(e) => Err(ServiceError::Store(e)),
            other => {
                tracing::error!(error = %other, "webhook request failed");
                Ok(response::json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "webhook request failed",
                ))
            }
        });
    }
    match (method, path) {
        (&Method::GET, "/api/v1/certificates") => match api::cert_query(query) {
            Ok((filter, None)) => Ok(response::json(
                StatusCode::OK,
                &api::cert_list_json(&service.certificates(&filter)?),
            )),
            Ok((filter, Some(within))) => Ok(response::json(
                StatusCode::OK,
                &api::cert_list_json(&service.expiring_certificates(&filter, within)?),
            )),
            Err(message) => bad_request(&message),
        },
        (&Method::GET, p) if middle(p, "/api/v1/certificates/", "").is_some() => {
            let Ok(serial) = middle(p, "/api/v1/certificates/", "")
                .unwrap_or_default()
                .parse::<Serial>()
            else {
                return bad_request(BAD_SERIAL);
            };
            Ok(match service.certificate(&serial)? {
                Some((record, der)) => response::json(StatusCode::OK, &api::cert_json(&record, Some(&der))),
                None => response::json_error(StatusCode::NOT_FOUND, "no such certificate"),
            })
        }
        (&Method::POST, p) if middle(p, "/api/v1/certificates/", "/revoke").is_some() => {
            let Ok(serial) = middle(p, "/api/v1/certificates/", "/revoke")
                .unwrap_or_default()
                .parse::<Serial>()
            else {
                return bad_request(BAD_SERIAL);
            };
            let reason = match api::revocation_reason(body) {
                Ok(r) => r,
                Err(message) => return bad_request(&message),
            };
            Ok(match service.revoke(&serial, reason, origin)? {
                RevokeOutcome::Revoked(r) | RevokeOutcome::AlreadyRevoked(r) => {
                    response::json(StatusCode::OK, &api::cert_json(&r, None))
                }
                RevokeOutcome::NotFound => response::json_error(StatusCode::NOT_FOUND, "no such certificate"),
            })
        }
        (&Method::POST, p) if middle(p, "/api/v1/devices/", "/revoke").is_some() => {
            let encoded = middle(p, "/api/v1/devices/", "/revoke").unwrap_or_default();
            let device = String::from_utf8_lossy(&crate::scep::query::percent_decode(encoded)).into_owned();
            let reason = match api::revocation_reason(body) {
                Ok(r) => r,
                Err(message) => return bad_request(&message),
            };
            let revoked = service.revoke_device(&device, reason, origin)?;
            Ok(response::json(
                StatusCode::OK,
                &serde_json::json!({ "device_id": device, "revoked": revoked }),
            ))
        }
        (&Method::GET, "/api/v1/mdm-clients") => {
            let clients: Vec<_> = service.mdm_clients()?.iter().map(api::mdm_client_json).collect();
            Ok(response::json(StatusCode::OK, &serde_json::Value::Array(clients)))
        }
        (&Method::POST, "/api/v1/mdm-clients") => {
            let params: api::NewMdmClient = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => return bad_request(&format!("bad request body: {e}")),
            };
            Ok(
                match service.add_mdm_client(&params.name, params.challenge_ttl_seconds, origin)? {
                    MdmClientAdded::Created { password } => response::json(
                        StatusCode::CREATED,
                        &serde_json::json!({ "name": params.name, "password": password }),
                    ),
                    MdmClientAdded::Exists => response::json_error(
                        StatusCode::CONFLICT,
                        "an MDM client of that name exists (rotate it instead)",
                    ),
                    MdmClientAdded::InvalidName => {
                        response::json_error(StatusCode::BAD_REQUEST, "name: 1-64 characters of [A-Za-z0-9._-]")
                    }
                },
            )
        }
        (&Method::DELETE, p) if middle(p, "/api/v1/mdm-clients/", "").is_some() => {
            let name = middle(p, "/api/v1/mdm-clients/", "").unwrap_or_default();
            Ok(if service.remove_mdm_client(name, origin)? {
                response::json(StatusCode::OK, &serde_json::json!({ "removed": name }))
            } else {
                response::json_error(StatusCode::NOT_FOUND, "no such MDM client")
            })
        }
        (&Method::POST, p) if middle(p, "/api/v1/mdm-clients/", "/rotate").is_some() => {
            let name = middle(p, "/api/v1/mdm-clients/", "/rotate").unwrap_or_default();
            Ok(match service.rotate_mdm_client(name, origin)? {
                Some(password) => response::json(
                    StatusCode::OK,
                    &serde_json::json!({ "name": name, "password": password }),
                ),
                None => response::json_error(StatusCode::NOT_FOUND, "no such MDM client"),
            })
        }
        (&Method::POST, "/api/v1/backup") => Ok(response::json(
            StatusCode::OK,
            &serde_json::json!({ "file": service.backup()? }),
        )),
        (&Method::GET, "/api/v1/audit") => {
            let (mut after, mut limit) = (0u64, 1000usize);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("after", v)) => after = v.parse().unwrap_or(0),
                    Some(("limit", v)) => limit = v.parse().unwrap_or(1000).clamp(1, 10_000),
                    _ => return bad_request("parameters: after, limit"),
                }
            }
            let entries = service.audit_entries(after, limit)?;
            Ok(response::json(
                StatusCode::OK,
                &serde_json::to_value(entries).unwrap_or_default(),
            ))
        }
        (&Method::GET, "/api/v1/info") => Ok(response::json(
            StatusCode::OK,
            &serde_json::json!({
                "scep_url": format!("{}/scep", service.public_url()),
                "public_url": service.public_url(),
                "ca_sha256": hex::encode(service.authority().ca.fingerprint_sha256()),
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )),
        (_, p) if p == "/api/v1/ca" || p.starts_with("/api/v1/ca/") => {
            super::ca_admin::route(service, method, p, body, origin)
        }
        (&Method::GET, "/api/v1/stats") => Ok(response::json(
            StatusCode::OK,
            &serde_json::json!({ "challenges_stored": service.challenges_stored()? }),
        )),
        (m, p) if super::console::is_accounts_path(p) => super::console::accounts_api(service, m, p, body, origin),
        _ => Ok(response::json_error(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

/// The non-empty segment between `prefix` and `suffix` of `path`.
fn middle<'a>(path: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|m| !m.is_empty() && !m.contains('/'))
}
