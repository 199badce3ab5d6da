//! The admin API of CA rollover: what `scepd ca list`, `ca rollover`, `ca install-cert --next`,
//! `ca export --next` and `ca activate-next` call.
//!
//! `GET /api/v1/ca`: every CA generation; `POST /api/v1/ca/next` `{"issuer", "installed"}`:
//! record the generation `ca rollover` wrote into the data directory as the next CA;
//! `POST /api/v1/ca/activate` `{"at": RFC 3339}` (optional; default now): schedule the switch.

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::response::{self, Body};
use crate::service::rollover::CaListing;
use crate::service::{Origin, ScepService, ServiceError};
use crate::store::AuditEvent;

pub fn route(
    service: &ScepService,
    method: &Method,
    path: &str,
    body: &[u8],
    origin: &Origin,
) -> Result<Response<Body>, ServiceError> {
    let request: Value = match body.iter().all(u8::is_ascii_whitespace) {
        true => Value::Null,
        false => match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(response::json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("bad request body: {e}"),
                ))
            }
        },
    };
    match (method, path) {
        (&Method::GET, "/api/v1/ca") => {
            let list: Vec<Value> = service.ca_listing()?.iter().map(|l| listing_json(service, l)).collect();
            Ok(response::json(StatusCode::OK, &Value::Array(list)))
        }
        (&Method::POST, "/api/v1/ca/next") => {
            let Some(issuer) = request
                .get("issuer")
                .and_then(Value::as_str)
                .and_then(|i| i.parse().ok())
            else {
                return Ok(response::json_error(StatusCode::BAD_REQUEST, "issuer: 40 hex digits"));
            };
            let event = match request.get("installed").and_then(Value::as_bool) {
                Some(true) => AuditEvent::CaInstalled,
                _ => AuditEvent::CaRollover,
            };
            Ok(match service.register_next_ca(&issuer, event, origin)? {
                Ok(()) => response::json(StatusCode::CREATED, &json!({ "issuer": issuer })),
                Err(why) => response::json_error(StatusCode::CONFLICT, &why),
            })
        }
        (&Method::POST, "/api/v1/ca/activate") => {
            let at = match request.get("at").and_then(Value::as_str) {
                None => scepd_ca::time::unix_now(),
                Some(text) => match parse_rfc3339(text) {
                    Some(at) => at,
                    None => {
                        return Ok(response::json_error(
                            StatusCode::BAD_REQUEST,
                            "at: an RFC 3339 time such as 2027-01-31T09:00:00Z",
                        ))
                    }
                },
            };
            Ok(match service.activate_next_ca(at, origin)? {
                Ok(record) => response::json(
                    StatusCode::OK,
                    &json!({ "issuer": record.issuer, "activate_at": scepd_ca::time::rfc3339(at) }),
                ),
                Err(why) => response::json_error(StatusCode::CONFLICT, &why),
            })
        }
        (&Method::DELETE, _) => {
            let Some(issuer) = path.strip_prefix("/api/v1/ca/").and_then(|i| i.parse().ok()) else {
                return Ok(response::json_error(StatusCode::NOT_FOUND, "no such CA"));
            };
            Ok(match service.remove_retired_ca(&issuer, origin)? {
                Ok(()) => response::json(StatusCode::OK, &json!({ "removed": issuer })),
                Err(why) => response::json_error(StatusCode::CONFLICT, &why),
            })
        }
        _ => Ok(response::json_error(StatusCode::NOT_FOUND, "no such endpoint")),
    }
}

fn listing_json(service: &ScepService, l: &CaListing) -> Value {
    let rfc = scepd_ca::time::rfc3339;
    let pem = l
        .issuer
        .parse()
        .ok()
        .and_then(|id| service.ca_certificate_of(&id))
        .map(|der| scepd_ca::pem::encode("CERTIFICATE", &der));
    json!({
        "role": l.role,
        "issuer": l.issuer,
        "subject": l.subject,
        "not_before": rfc(l.not_before),
        "not_after": rfc(l.not_after),
        "activate_at": l.activate_at.map(rfc),
        "original": l.original,
        "loaded": l.loaded,
        "certificates": l.certificates,
        "active_certificates": l.active_certificates,
        "last_certificate_not_after": l.last_certificate_not_after.map(rfc),
        "crl_url": l.crl_url,
        "pem": pem,
    })
}

/// An RFC 3339 time as Unix seconds (none before 1970).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}
