//! The endpoints MDMs fetch one-time challenges from, each in a format an MDM already speaks.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Request, Response, StatusCode};
use std::net::IpAddr;

use super::auth::{authenticate, Caller};
use super::response::{self, Body};
use super::AppState;
use crate::api;
use crate::service::{MintRequest, Minted};

/// Bodies of the challenge endpoints are small JSON documents.
const MAX_JSON_BODY: usize = 64 * 1024;

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    match Limited::new(req.into_body(), MAX_JSON_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(response::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
    }
}

fn no_store(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn mint(state: &AppState, request: MintRequest, request_id: u64) -> Result<Minted, Response<Body>> {
    if let Err(msg) = request.check() {
        return Err(response::text(StatusCode::BAD_REQUEST, msg));
    }
    let endpoint = request.endpoint;
    let minted_by = request.minted_by.clone();
    let payload_identifier = request.payload_identifier.clone().unwrap_or_default();
    match state
        .service
        .mint_challenge(MintRequest {
            request_id: Some(request_id),
            ..request
        })
        .await
    {
        Ok(minted) => {
            tracing::info!(endpoint, %minted_by, %payload_identifier, ttl_seconds = minted.ttl_seconds, "challenge minted");
            Ok(minted)
        }
        Err(e) => {
            tracing::error!(error = %e, "store unavailable");
            Err(response::text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable"))
        }
    }
}

fn from_caller(caller: &Caller, endpoint: &'static str) -> MintRequest {
    match caller {
        Caller::Admin => MintRequest {
            minted_by: "admin".into(),
            endpoint,
            ..Default::default()
        },
        Caller::Mdm(client) => MintRequest {
            minted_by: client.name.clone(),
            endpoint,
            client_ttl_seconds: client.challenge_ttl_seconds,
            ..Default::default()
        },
    }
}

/// `GET /certsrv/mscep_admin/`: the page Microsoft NDES serves, as Jamf Pro's "Dynamic-Microsoft
/// CA" challenge type and Fleet's NDES/Okta proxy scrape it. Fleet's parser is the regex
/// `(?i)The enrollment challenge password is: <B> (?P<password>\S*)`: one space each side.
pub async fn ndes_page(state: &AppState, req: Request<Incoming>, peer: IpAddr, request_id: u64) -> Response<Body> {
    let caller = match authenticate(state, req.headers(), peer, "ndes", false, request_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let minted = match mint(state, from_caller(&caller, "ndes"), request_id).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let minutes = minted.ttl_seconds.div_ceil(60);
    let html = format!(
        "<HTML><Head><Meta HTTP-Equiv=\"Content-Type\" Content=\"text/html; charset=UTF-8\">\r\n\
         <Title>Network Device Enrollment Service</Title></Head>\r\n\
         <Body BgColor=#FFFFFF><Font ID=locPageFont Face=\"Arial\">\r\n\
         <P ID=locPageTitle><Font Size=+1><B>Network Device Enrollment Service</B></Font></P>\r\n\
         <P> The enrollment challenge password is: <B> {} </B> <P> This password can be used only once and \
         will expire within {minutes} minutes. <P> Each enrollment requires a new challenge password.\r\n\
         </Font></Body></HTML>\r\n",
        minted.challenge
    );
    no_store(response::bytes(StatusCode::OK, "text/html; charset=utf-8", html))
}

/// `POST /api/v1/webhooks/jamf/scep-challenge`: Jamf Pro's SCEPChallenge webhook; the reply
/// body is the bare challenge.
pub async fn jamf_webhook(state: &AppState, req: Request<Incoming>, peer: IpAddr, request_id: u64) -> Response<Body> {
    let caller = match authenticate(state, req.headers(), peer, "jamf", false, request_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let payload_identifier = match api::jamf_scep_challenge(&body) {
        Ok(p) => p,
        Err(msg) => return response::text(StatusCode::BAD_REQUEST, msg),
    };
    let request = MintRequest {
        payload_identifier,
        ..from_caller(&caller, "jamf")
    };
    match mint(state, request, request_id).await {
        Ok(m) => no_store(response::bytes(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            m.challenge,
        )),
        Err(r) => r,
    }
}

/// `POST /api/v1/challenges`: `{"device_id", "subject_cn", "san", "ttl_seconds"}` (all optional)
/// → 201 `{"challenge", "expires_at"}`. An MDM client's Basic credentials or the admin token.
pub async fn challenge_api(state: &AppState, req: Request<Incoming>, peer: IpAddr, request_id: u64) -> Response<Body> {
    let caller = match authenticate(state, req.headers(), peer, "api", true, request_id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let endpoint = if matches!(caller, Caller::Admin) { "cli" } else { "api" };
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let params = match api::challenge_params(&body) {
        Ok(p) => p,
        Err(msg) => return response::json_error(StatusCode::BAD_REQUEST, &msg),
    };
    let request = MintRequest {
        device_id: params.device_id,
        subject_cn: params.subject_cn,
        san: params.san,
        ttl_seconds: params.ttl_seconds,
        okta_device_access: params.okta_device_access,
        ..from_caller(&caller, endpoint)
    };
    match mint(state, request, request_id).await {
        Ok(m) => response::json(
            StatusCode::CREATED,
            &serde_json::json!({ "challenge": m.challenge, "expires_at": scepd_ca::time::rfc3339(m.expires_at), "ttl_seconds": m.ttl_seconds }),
        ),
        Err(r) => r,
    }
}
