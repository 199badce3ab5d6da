//! The admin API (bearer token): what the `scepd cert ...` commands call.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use super::response::{self, Body};
use super::{sha256, AppState};
use crate::api;

fn authorized(state: &AppState, req: &Request<Incoming>) -> bool {
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| sha256(t.trim().as_bytes()));
    presented.is_some_and(|p| bool::from(p.ct_eq(&state.admin_token_sha256)))
}

pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    if !authorized(state, &req) {
        let mut r = response::json_error(StatusCode::UNAUTHORIZED, "admin token required");
        r.headers_mut().insert("www-authenticate", hyper::header::HeaderValue::from_static("Bearer realm=\"scepd\""));
        return r;
    }
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let service = Arc::clone(&state.service);
    let result = tokio::task::spawn_blocking(move || -> Result<Response<Body>, crate::store::StoreError> {
        let store = service.store();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/api/v1/certificates") => {
                let filter = match api::cert_filter(&query) {
                    Ok(f) => f,
                    Err(msg) => return Ok(response::json_error(StatusCode::BAD_REQUEST, &msg)),
                };
                let records = store.certificates(&filter)?;
                Ok(response::json(StatusCode::OK, &api::cert_list_json(&records)))
            }
            (&Method::GET, p) if p.starts_with("/api/v1/certificates/") => {
                let Some(serial) = api::parse_serial(&p["/api/v1/certificates/".len()..]) else {
                    return Ok(response::json_error(StatusCode::BAD_REQUEST, "serial must be 32 hex digits"));
                };
                Ok(match store.certificate(&serial)? {
                    Some((record, der)) => response::json(StatusCode::OK, &api::cert_json(&record, Some(&der))),
                    None => response::json_error(StatusCode::NOT_FOUND, "no such certificate"),
                })
            }
            _ => Ok(response::json_error(StatusCode::NOT_FOUND, "no such endpoint")),
        }
    })
    .await;
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store unavailable");
            response::json_error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
        Err(_) => response::json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}
