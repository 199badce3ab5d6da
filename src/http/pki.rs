//! Relying-party endpoints: the CRL, OCSP and the CA certificate.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, ETAG, EXPIRES, IF_NONE_MATCH, LAST_MODIFIED};
use hyper::{Method, Request, Response, StatusCode};

use super::response::{self, Body};
use super::AppState;

/// An OCSP request is a few hundred bytes.
const MAX_OCSP_REQUEST: usize = 16 * 1024;

/// RFC 7231 IMF-fixdate.
fn http_date(unix: u64) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_default()
}

fn header(v: String) -> HeaderValue {
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A CRL's DER as a response body, without a copy.
struct CrlDer(Arc<crate::store::StoredCrl>);

impl AsRef<[u8]> for CrlDer {
    fn as_ref(&self) -> &[u8] {
        &self.0.der
    }
}

/// `GET /crl` and `/crl/<name>.crl`: DER (`application/pkix-crl`), or PEM with
/// `Accept: application/x-pem-file` or `?format=pem`. Caching headers follow nextUpdate.
///
/// `/crl/<issuer id>.crl` is the CRL of that CA generation (a rollover's: the URL its
/// certificates name); `/crl` and any other name are the original CA's, which is what every
/// certificate issued before CA rollovers existed names.
pub async fn crl(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let service = Arc::clone(&state.service);
    let issuer = req
        .uri()
        .path()
        .strip_prefix("/crl/")
        .and_then(|name| name.strip_suffix(".crl"))
        .and_then(|id| id.parse::<scepd_ca::IssuerId>().ok());
    let found = tokio::task::spawn_blocking(move || {
        let set = service.ca_set();
        match issuer.and_then(|id| set.by_issuer(&id).cloned()) {
            Some(generation) => service.crl_of(&generation),
            None => service.crl().map(Some),
        }
    });
    let snapshot = match found.await {
        Ok(Ok(Some(s))) => s,
        Ok(Ok(None)) => return response::text(StatusCode::SERVICE_UNAVAILABLE, "CRL unavailable, retry later"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "CRL unavailable");
            return response::text(StatusCode::SERVICE_UNAVAILABLE, "CRL unavailable, retry later");
        }
        Err(_) => return response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let wants_pem = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "format=pem"))
        || req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/x-pem-file"));
    let etag = format!("\"crl-{}{}\"", snapshot.number, if wants_pem { "-pem" } else { "" });
    let now = scepd_ca::time::unix_now();
    let mut resp = if req.headers().get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        let mut r = response::bytes(StatusCode::NOT_MODIFIED, "application/pkix-crl", Bytes::new());
        r.headers_mut().remove(hyper::header::CONTENT_TYPE);
        r
    } else if wants_pem {
        response::bytes(
            StatusCode::OK,
            "application/x-pem-file",
            scepd_ca::pem::encode("X509 CRL", &snapshot.der),
        )
    } else {
        // The body shares the CRL held in memory: Okta and every other relying party poll it, and
        // at 100,000 entries each copy would be 5 MB.
        response::bytes(
            StatusCode::OK,
            "application/pkix-crl",
            Bytes::from_owner(CrlDer(Arc::clone(&snapshot))),
        )
    };
    let h = resp.headers_mut();
    h.insert(ETAG, header(etag));
    h.insert(LAST_MODIFIED, header(http_date(snapshot.this_update)));
    h.insert(EXPIRES, header(http_date(snapshot.next_update)));
    // Caches may keep it until nextUpdate, but no later.
    h.insert(
        CACHE_CONTROL,
        header(format!(
            "public, max-age={}, must-revalidate",
            snapshot.next_update.saturating_sub(now)
        )),
    );
    resp
}

/// `POST /ocsp` (body: the DER request) and `GET /ocsp/{base64 of the request}` (RFC 6960 A.1).
pub async fn ocsp(state: &AppState, req: Request<Incoming>) -> Response<Body> {
    let request: Vec<u8> = if req.method() == Method::POST {
        match Limited::new(req.into_body(), MAX_OCSP_REQUEST).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return response::text(StatusCode::PAYLOAD_TOO_LARGE, "OCSP request too large"),
        }
    } else {
        let encoded = req.uri().path().trim_start_matches("/ocsp").trim_start_matches('/');
        let decoded = crate::scep::query::percent_decode(encoded);
        match crate::scep::query::decode_message(&decoded) {
            Ok(der) => der,
            Err(_) => return response::text(StatusCode::BAD_REQUEST, "bad base64 OCSP request"),
        }
    };
    // A response to the same nonce-less request since the last revocation: no signature.
    let service = Arc::clone(&state.service);
    let (request, cached) = match tokio::task::spawn_blocking(move || {
        let cached = service.ocsp_cached(&request);
        (request, cached)
    })
    .await
    {
        Ok(r) => r,
        Err(_) => return response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    if let Some(der) = cached {
        return response::bytes(StatusCode::OK, "application/ocsp-response", der);
    }
    // Each response costs an RSA signature: OCSP has its own share of the private-key work, so
    // a flood of it never takes enrollment's permits or queue.
    let Some(_permit) = state.ocsp_signing.acquire().await else {
        return response::bytes(
            StatusCode::OK,
            "application/ocsp-response",
            scepd_ca::ocsp::error_response(scepd_ca::ocsp::ResponseStatus::TryLater),
        );
    };
    let service = Arc::clone(&state.service);
    match tokio::task::spawn_blocking(move || service.ocsp(&request)).await {
        Ok(der) => response::bytes(StatusCode::OK, "application/ocsp-response", der),
        Err(_) => response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// `GET /ca.crt`: the original CA certificate, DER (the caIssuers URL of its certificates);
/// `GET /ca/<issuer id>.crt`: that CA generation's (the caIssuers URL of a rollover's).
pub fn ca_cert(state: &AppState, path: &str) -> Response<Body> {
    let set = state.service.ca_set();
    let generation = match path.strip_prefix("/ca/").and_then(|p| p.strip_suffix(".crt")) {
        None => Some(&set.generations[0]),
        Some(id) => id.parse().ok().and_then(|id| set.by_issuer(&id)),
    };
    match generation {
        Some(g) => response::bytes(StatusCode::OK, "application/pkix-cert", g.ca_der.clone()),
        None => response::text(StatusCode::NOT_FOUND, "no such CA"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates() {
        assert_eq!(super::http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
