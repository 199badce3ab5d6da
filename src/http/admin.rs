//! The admin API (bearer token): what the `scepd cert ...` commands call.

use std::sync::Arc;

use std::net::IpAddr;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::response::{self, Body};
use super::{auth, AppState};
use crate::api;
use crate::store::RevokeOutcome;

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
    let result = tokio::task::spawn_blocking(move || -> Result<Response<Body>, crate::store::StoreError> {
        let store = service.store();
        match (&method, path.as_str()) {
            (&Method::GET, "/api/v1/certificates") => {
                let filter = match api::cert_filter(&query) {
                    Ok(f) => f,
                    Err(msg) => return Ok(response::json_error(StatusCode::BAD_REQUEST, &msg)),
                };
                let records = store.certificates(&filter)?;
                Ok(response::json(StatusCode::OK, &api::cert_list_json(&records)))
            }
            (&Method::GET, p) if middle(p, "/api/v1/certificates/", "").is_some() => {
                let Some(serial) = api::parse_serial(middle(p, "/api/v1/certificates/", "").unwrap_or_default()) else {
                    return Ok(response::json_error(
                        StatusCode::BAD_REQUEST,
                        "serial must be 32 hex digits",
                    ));
                };
                Ok(match store.certificate(&serial)? {
                    Some((record, der)) => response::json(StatusCode::OK, &api::cert_json(&record, Some(&der))),
                    None => response::json_error(StatusCode::NOT_FOUND, "no such certificate"),
                })
            }
            (&Method::POST, p) if middle(p, "/api/v1/certificates/", "/revoke").is_some() => {
                let text = middle(p, "/api/v1/certificates/", "/revoke").unwrap_or_default();
                let Some(serial) = api::parse_serial(text) else {
                    return Ok(response::json_error(
                        StatusCode::BAD_REQUEST,
                        "serial must be 32 hex digits",
                    ));
                };
                let reason = match api::revocation_reason(&body) {
                    Ok(r) => r,
                    Err(msg) => return Ok(response::json_error(StatusCode::BAD_REQUEST, &msg)),
                };
                Ok(match service.revoke(&serial, reason).map_err(api::store_error)? {
                    RevokeOutcome::Revoked(r) => {
                        audit(
                            &service,
                            "certificate.revoked",
                            Some(r.serial.clone()),
                            reason.as_str(),
                            request_id,
                        );
                        response::json(StatusCode::OK, &api::cert_json(&r, None))
                    }
                    RevokeOutcome::AlreadyRevoked(r) => response::json(StatusCode::OK, &api::cert_json(&r, None)),
                    RevokeOutcome::NotFound => response::json_error(StatusCode::NOT_FOUND, "no such certificate"),
                })
            }
            (&Method::POST, p) if middle(p, "/api/v1/devices/", "/revoke").is_some() => {
                let encoded = middle(p, "/api/v1/devices/", "/revoke").unwrap_or_default();
                let device = String::from_utf8_lossy(&crate::scep::query::percent_decode(encoded)).into_owned();
                let reason = match api::revocation_reason(&body) {
                    Ok(r) => r,
                    Err(msg) => return Ok(response::json_error(StatusCode::BAD_REQUEST, &msg)),
                };
                let revoked = service.revoke_device(&device, reason).map_err(api::store_error)?;
                for serial in &revoked {
                    audit(
                        &service,
                        "certificate.revoked",
                        Some(serial.clone()),
                        reason.as_str(),
                        request_id,
                    );
                }
                Ok(response::json(
                    StatusCode::OK,
                    &serde_json::json!({ "device_id": device, "revoked": revoked }),
                ))
            }
            (&Method::GET, "/api/v1/mdm-clients") => {
                let clients: Vec<_> = store.mdm_clients()?.iter().map(api::mdm_client_json).collect();
                Ok(response::json(StatusCode::OK, &serde_json::Value::Array(clients)))
            }
            (&Method::POST, "/api/v1/mdm-clients") => {
                let params: api::NewMdmClient = match serde_json::from_slice(&body) {
                    Ok(p) => p,
                    Err(e) => {
                        return Ok(response::json_error(
                            StatusCode::BAD_REQUEST,
                            &format!("bad request body: {e}"),
                        ))
                    }
                };
                if !api::valid_mdm_name(&params.name) {
                    return Ok(response::json_error(
                        StatusCode::BAD_REQUEST,
                        "name: 1-64 characters of [A-Za-z0-9._-]",
                    ));
                }
                if store.mdm_client(&params.name)?.is_some() {
                    return Ok(response::json_error(
                        StatusCode::CONFLICT,
                        "an MDM client of that name exists (rotate it instead)",
                    ));
                }
                let password = service.set_mdm_password(&params.name, params.challenge_ttl_seconds)?;
                tracing::info!(name = %params.name, "MDM client added");
                audit(&service, "mdm.added", None, &params.name, request_id);
                Ok(response::json(
                    StatusCode::CREATED,
                    &serde_json::json!({ "name": params.name, "password": password }),
                ))
            }
            (&Method::DELETE, p) if middle(p, "/api/v1/mdm-clients/", "").is_some() => {
                let name = middle(p, "/api/v1/mdm-clients/", "").unwrap_or_default();
                Ok(if service.remove_mdm_client(name)? {
                    tracing::info!(%name, "MDM client removed");
                    audit(&service, "mdm.removed", None, name, request_id);
                    response::json(StatusCode::OK, &serde_json::json!({ "removed": name }))
                } else {
                    response::json_error(StatusCode::NOT_FOUND, "no such MDM client")
                })
            }
            (&Method::POST, p) if middle(p, "/api/v1/mdm-clients/", "/rotate").is_some() => {
                let name = middle(p, "/api/v1/mdm-clients/", "/rotate").unwrap_or_default();
                let Some(existing) = store.mdm_client(name)? else {
                    return Ok(response::json_error(StatusCode::NOT_FOUND, "no such MDM client"));
                };
                let password = service.set_mdm_password(name, existing.challenge_ttl_seconds)?;
                tracing::info!(%name, "MDM client password rotated");
                audit(&service, "mdm.rotated", None, name, request_id);
                Ok(response::json(
                    StatusCode::OK,
                    &serde_json::json!({ "name": name, "password": password }),
                ))
            }
            (&Method::POST, "/api/v1/backup") => {
                // A consistent copy of the store, written beside it for the local CLI to collect.
                let name = format!("backup-{}-{}.redb", scepd_ca::time::unix_now(), std::process::id());
                let path = service.data_dir().join(&name);
                service.sync_challenges();
                store.backup_to(&path)?;
                Ok(response::json(StatusCode::OK, &serde_json::json!({ "file": name })))
            }
            (&Method::GET, "/api/v1/audit") => {
                let (mut after, mut limit) = (0u64, 1000usize);
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("after", v)) => after = v.parse().unwrap_or(0),
                        Some(("limit", v)) => limit = v.parse().unwrap_or(1000).clamp(1, 10_000),
                        _ => {
                            return Ok(response::json_error(
                                StatusCode::BAD_REQUEST,
                                "parameters: after, limit",
                            ))
                        }
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
            (&Method::GET, "/api/v1/stats") => {
                // Count the challenges minted so far, including those still queued for the store.
                service.sync_challenges();
                Ok(response::json(
                    StatusCode::OK,
                    &serde_json::json!({ "challenges_stored": store.challenge_count()? }),
                ))
            }
            _ => Ok(response::json_error(StatusCode::NOT_FOUND, "no such endpoint")),
        }
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(crate::store::StoreError::Unsupported(message))) => response::json_error(StatusCode::CONFLICT, &message),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store unavailable");
            response::json_error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(_) => response::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// The non-empty segment between `prefix` and `suffix` of `path`.
fn middle<'a>(path: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|m| !m.is_empty() && !m.contains('/'))
}

/// An admin action on the audit trail (from the blocking pool).
fn audit(service: &crate::service::ScepService, event: &str, serial: Option<String>, detail: &str, request_id: u64) {
    service.audit_blocking(crate::store::AuditEntry {
        event: event.into(),
        actor: "admin".into(),
        request_id: Some(request_id),
        serial,
        detail: Some(detail.into()),
        ..Default::default()
    });
}
