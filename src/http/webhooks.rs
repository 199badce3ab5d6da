//! The admin API's webhook routes (bearer token, like the rest of `/api/v1`):
//!
//! - `GET /api/v1/webhooks`, `POST /api/v1/webhooks` (`{"url", "events", "description",
//!   "allow_http"}`; the answer holds the secret, the only time it is shown)
//! - `DELETE /api/v1/webhooks/{id}`, `POST /api/v1/webhooks/{id}/rotate`
//! - `GET /api/v1/webhook-deliveries[?status=failed|pending|delivered&limit=N]`
//! - `POST /api/v1/webhook-deliveries/{id}/retry`

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::response::{self, Body};
use crate::store::outbox::{Delivery, DeliveryId, DeliveryStatus, WebhookEndpoint, WebhookId};
use crate::store::AuditEvent;
use crate::webhook::{NewEndpoint, WebhookError, Webhooks};
use scepd_ca::time::rfc3339;

/// Whether `path` is one of these routes.
pub fn owns(path: &str) -> bool {
    path == "/api/v1/webhooks"
        || path.starts_with("/api/v1/webhooks/wh_")
        || path == "/api/v1/webhook-deliveries"
        || path.starts_with("/api/v1/webhook-deliveries/")
}

fn endpoint_json(e: &WebhookEndpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "description": e.description,
        "allow_http": e.allow_http,
        "created_at": rfc3339(e.created_at),
        // How many secrets sign now (2 during a rotation's overlap); never the secrets.
        "secrets": e.secrets.len(),
    })
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "endpoint": d.endpoint,
        "type": d.event.event_type().as_str(),
        "serial": d.event.cert().map(|c| c.serial),
        "occurred_at": rfc3339(d.occurred_at),
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at.map(rfc3339),
    })
}

/// `scheme://host[:port]` of an endpoint's URL, for the audit trail: every console role reads
/// it, and a receiver's path or query may hold a credential of its own.
fn site_of(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// One webhook request, on the blocking pool. Every change is recorded with `audit`.
pub fn route(
    webhooks: &Webhooks,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    audit: &dyn Fn(AuditEvent, String),
) -> Result<Response<Body>, WebhookError> {
    let bad_request = |message: &str| Ok(response::json_error(StatusCode::BAD_REQUEST, message));
    let not_found = |what: &str| Ok(response::json_error(StatusCode::NOT_FOUND, what));
    let id_between = |prefix: &str, suffix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .filter(|m| !m.contains('/'))
            .map(str::to_string)
    };
    match (method, path) {
        (&Method::GET, "/api/v1/webhooks") => {
            let list: Vec<Value> = webhooks.list()?.iter().map(endpoint_json).collect();
            Ok(response::json(StatusCode::OK, &Value::Array(list)))
        }
        (&Method::POST, "/api/v1/webhooks") => {
            let new: NewEndpoint = match serde_json::from_slice(body) {
                Ok(n) => n,
                Err(e) => return bad_request(&format!("bad request body: {e}")),
            };
            match webhooks.add(&new) {
                Ok((endpoint, secret)) => {
                    audit(
                        AuditEvent::WebhookAdded,
                        format!("{} {}", endpoint.id, site_of(&endpoint.url)),
                    );
                    let mut v = endpoint_json(&endpoint);
                    v["secret"] = Value::String(secret);
                    Ok(response::json(StatusCode::CREATED, &v))
                }
                Err(e @ (WebhookError::Target(_) | WebhookError::UnknownEvent(_) | WebhookError::BadDescription)) => {
                    bad_request(&e.to_string())
                }
                Err(e) => Err(e),
            }
        }
        (&Method::POST, _) if id_between("/api/v1/webhooks/", "/rotate").is_some() => {
            let Some(id) = id_between("/api/v1/webhooks/", "/rotate").and_then(|i| WebhookId::parse(&i)) else {
                return not_found("no such webhook");
            };
            match webhooks.rotate(&id) {
                Err(e @ WebhookError::Contended) => Ok(response::json_error(StatusCode::CONFLICT, &e.to_string())),
                Err(e) => Err(e),
                Ok(Some((secret, until))) => {
                    audit(AuditEvent::WebhookRotated, id.to_string());
                    Ok(response::json(
                        StatusCode::OK,
                        &json!({ "id": id, "secret": secret, "previous_valid_until": rfc3339(until) }),
                    ))
                }
                Ok(None) => not_found("no such webhook"),
            }
        }
        (&Method::DELETE, _) if id_between("/api/v1/webhooks/", "").is_some() => {
            let Some(id) = id_between("/api/v1/webhooks/", "").and_then(|i| WebhookId::parse(&i)) else {
                return not_found("no such webhook");
            };
            if webhooks.remove(&id)? {
                audit(AuditEvent::WebhookRemoved, id.to_string());
                Ok(response::json(StatusCode::OK, &json!({ "removed": id })))
            } else {
                not_found("no such webhook")
            }
        }
        (&Method::GET, "/api/v1/webhook-deliveries") => {
            let (mut status, mut limit) = (None, 1000usize);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some(("status", v)) => match DeliveryStatus::from_name(v) {
                        Some(s) => status = Some(s),
                        None => return bad_request("status: pending, delivered or failed"),
                    },
                    Some(("limit", v)) => match v.parse::<usize>() {
                        Ok(n) => limit = n.clamp(1, 100_000),
                        Err(_) => return bad_request("limit: a number"),
                    },
                    _ => return bad_request("parameters: status, limit"),
                }
            }
            let list: Vec<Value> = webhooks.deliveries(status, limit)?.iter().map(delivery_json).collect();
            Ok(response::json(StatusCode::OK, &Value::Array(list)))
        }
        (&Method::POST, _) if id_between("/api/v1/webhook-deliveries/", "/retry").is_some() => {
            let Some(id) = id_between("/api/v1/webhook-deliveries/", "/retry").and_then(|i| DeliveryId::parse(&i))
            else {
                return not_found("no such delivery");
            };
            if webhooks.retry(&id)? {
                audit(AuditEvent::WebhookRetried, id.to_string());
                Ok(response::json(StatusCode::OK, &json!({ "retrying": id })))
            } else {
                not_found("no such delivery")
            }
        }
        _ => not_found("no such endpoint"),
    }
}
