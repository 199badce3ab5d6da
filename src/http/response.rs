//! Response helpers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub type Body = Full<Bytes>;

pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    bytes(status, "text/plain; charset=utf-8", body)
}

/// 503 with Retry-After: a condition that passes by itself (a busy signer, a failing store).
pub fn retry_later(body: impl Into<String>, seconds: u32) -> Response<Body> {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(seconds));
    r
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = bytes(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}
