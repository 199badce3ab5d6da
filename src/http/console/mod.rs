//! The web console at `/ui/`: server-rendered pages over the same service methods as the admin
//! API, on the same listeners (and, with `admin_tls_only`, only over TLS or from loopback).
//!
//! Security, in one place: every answer carries a strict Content-Security-Policy (no script,
//! no inline style), `frame-ancestors 'none'`, `Referrer-Policy: no-referrer`, `nosniff` and
//! `Cache-Control: no-store`. A session is a random id in an `HttpOnly; SameSite=Strict` cookie
//! (`Secure` under TLS) whose SHA-256 is in the store, so any node serves it; every POST carries
//! the session's CSRF token (403 without it); a viewer's POST that would change something is
//! refused (403) whatever the page showed. Sign-in failures count against the admin API's
//! per-address limiter and are audited; the right credential is always accepted.

mod api;
mod detail;
mod form;
mod pages;
mod views;

use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

use super::response::{self, Body};
use super::{sha256, AppState};
use crate::service::console::{csrf_token, random_token, TOKEN_ACTOR};
use crate::service::{Origin, ScepService, ServiceError};
use crate::store::console::Role;
pub use api::{accounts_api, is_accounts_path};
pub use pages::ConsoleState;

const SESSION_COOKIE: &str = "scepd_session";
/// Double-submit token of the sign-in form (there is no session yet to bind it to).
const LOGIN_COOKIE: &str = "scepd_login";
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";
/// Largest form body the console reads.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Whether the console serves `path`.
pub fn is_console_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// Who is signed in, for one request.
pub struct Ctx {
    pub actor: String,
    pub role: Role,
    pub csrf: String,
    pub request_id: u64,
}

impl Ctx {
    pub fn origin(&self) -> Origin {
        Origin::new(self.actor.clone(), self.request_id)
    }

    pub fn nav(&self) -> views::Nav {
        views::Nav {
            actor: self.actor.clone(),
            role: self.role.as_str(),
            csrf: self.csrf.clone(),
            may_change: self.role.may_change(),
        }
    }
}

pub async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    client: IpAddr,
    secure: bool,
    request_id: u64,
) -> Response<Body> {
    let css = req.uri().path() == "/ui/console.css";
    let mut resp = route(state, req, client, secure, request_id).await;
    let headers = resp.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Every page but the stylesheet shows data (or a sign-in form): never cached.
    let cache = if css { "no-cache" } else { "no-store" };
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

async fn route(state: &AppState, req: Request<Incoming>, client: IpAddr, secure: bool, id: u64) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    match (&method, path.as_str()) {
        (&Method::GET, "/ui") => return redirect("/ui/"),
        (&Method::GET, "/ui/console.css") => {
            return response::bytes(
                StatusCode::OK,
                "text/css; charset=utf-8",
                include_str!("../../../templates/console/console.css"),
            )
        }
        (&Method::GET, "/ui/login") => return login_page(StatusCode::OK, None, secure),
        (&Method::POST, "/ui/login") => return sign_in(state, req, client, secure, id).await,
        _ => {}
    }
    let cookies = cookie_header(&req);
    let session_id = form::cookie(&cookies, SESSION_COOKIE).unwrap_or("").to_string();
    let session = if session_id.is_empty() {
        Ok(None)
    } else {
        let sid = session_id.clone();
        blocking(state, move |s| s.console_session(&sid)).await
    };
    let session = match session {
        Ok(Some(s)) => s,
        Ok(None) if method == Method::GET => return redirect("/ui/login"),
        Ok(None) => return response::text(StatusCode::FORBIDDEN, "not signed in"),
        Err(r) => return r,
    };
    let ctx = Ctx {
        actor: session.actor,
        role: session.role,
        csrf: csrf_token(&session_id),
        request_id: id,
    };
    match method {
        Method::GET => pages::get(state, ctx, &path, req.uri().query().unwrap_or("")).await,
        Method::POST => {
            let pairs = match read_form(req).await {
                Ok(p) => p,
                Err(r) => return r,
            };
            if !same(form::get(&pairs, "csrf"), &ctx.csrf) {
                return response::text(StatusCode::FORBIDDEN, "missing or wrong CSRF token");
            }
            if path == "/ui/logout" {
                let origin = ctx.origin();
                if let Err(r) = blocking(state, move |s| s.end_console_session(&session_id, &origin)).await {
                    return r;
                }
                let mut r = redirect("/ui/login");
                set_cookie(
                    &mut r,
                    &format!("{SESSION_COOKIE}=; Path=/ui/; Max-Age=0; HttpOnly; SameSite=Strict"),
                );
                return r;
            }
            if !ctx.role.may_change() {
                return response::text(StatusCode::FORBIDDEN, "viewers cannot change anything");
            }
            pages::post(state, ctx, &path, pairs).await
        }
        _ => response::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// Constant-time comparison of a submitted token with the expected one.
fn same(submitted: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(submitted.as_bytes().ct_eq(expected.as_bytes()))
}

async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Body>> {
    match Limited::new(req.into_body(), MAX_FORM_BYTES).collect().await {
        Ok(b) => Ok(form::parse(&String::from_utf8_lossy(&b.to_bytes()))),
        Err(_) => Err(response::text(StatusCode::PAYLOAD_TOO_LARGE, "form too large")),
    }
}

/// Runs a store-touching call on the blocking pool; a failure is answered 503.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&ScepService) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Response<Body>> {
    let service = Arc::clone(&state.service);
    match tokio::task::spawn_blocking(move || call(&service)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console request failed");
            Err(response::retry_later("store unavailable", 1))
        }
        Err(_) => Err(response::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

pub fn redirect(to: &'static str) -> Response<Body> {
    let mut r = response::text(StatusCode::SEE_OTHER, "see other");
    r.headers_mut().insert(LOCATION, HeaderValue::from_static(to));
    r
}

fn set_cookie(r: &mut Response<Body>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

fn cookie_attributes(secure: bool, path: &str) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("Path={path}; HttpOnly; SameSite=Strict{secure}")
}

fn login_page(status: StatusCode, message: Option<String>, secure: bool) -> Response<Body> {
    let token = random_token();
    let mut r = pages::render(
        status,
        &views::Login {
            login_csrf: token.clone(),
            message,
        },
    );
    set_cookie(
        &mut r,
        &format!("{LOGIN_COOKIE}={token}; {}", cookie_attributes(secure, "/ui/login")),
    );
    r
}

/// Password checks in flight, at most (see `sign_in`).
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// The request's `Cookie` header, or nothing.
fn cookie_header(req: &Request<Incoming>) -> String {
    req.headers()
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `POST /ui/login`: an account name and password, or no name and the admin token.
async fn sign_in(state: &AppState, req: Request<Incoming>, client: IpAddr, secure: bool, id: u64) -> Response<Body> {
    let cookies = cookie_header(&req);
    let pairs = match read_form(req).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let expected = form::cookie(&cookies, LOGIN_COOKIE).unwrap_or("");
    if !same(form::get(&pairs, "login_csrf"), expected) {
        return response::text(StatusCode::FORBIDDEN, "missing or wrong sign-in form token");
    }
    let name = form::get(&pairs, "name").to_string();
    let password = form::get(&pairs, "password").to_string();
    // Failures are counted per address: the token's with the admin API's ("admin"), every
    // account's together ("console"), so trying many names gains nothing over trying one.
    let limited_as = if name.is_empty() { TOKEN_ACTOR } else { "console" };
    let attempt = state.auth_failures.arrive(client, limited_as);
    let signed_in = if name.is_empty() {
        bool::from(sha256(password.as_bytes()).ct_eq(&state.admin_token_sha256))
            .then_some((TOKEN_ACTOR.to_string(), Role::Operator))
    } else {
        // Argon2 costs about 19 MiB and tens of milliseconds of a core per check: a flood of
        // sign-ins must not take the memory or the blocking pool the enrollments need. Beyond
        // a few at once, the answer is "retry later" without hashing (a legitimate operator
        // retries; nothing counts against the account).
        let Ok(_permit) = PASSWORD_CHECKS.try_acquire() else {
            return response::retry_later("too many sign-ins at once", 1);
        };
        let n = name.clone();
        match blocking(state, move |s| s.check_console_password(&n, &password)).await {
            Ok(role) => role.map(|r| (name.clone(), r)),
            Err(r) => return r,
        }
    };
    let Some((actor, role)) = signed_in else {
        tracing::warn!(client = %client, "console sign-in failed");
        state
            .service
            .authentication_failed(&Origin::new(client.to_string(), id), "console")
            .await;
        return match attempt.failed() {
            Some(wait) => {
                let mut r = login_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    Some("Too many failed attempts from this address; retry later.".into()),
                    secure,
                );
                r.headers_mut()
                    .insert(hyper::header::RETRY_AFTER, HeaderValue::from(wait));
                r
            }
            None => login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong name, password or token.".into()),
                secure,
            ),
        };
    };
    drop(attempt);
    let origin = Origin::new(actor.clone(), id);
    let session = match blocking(state, move |s| s.start_console_session(&actor, role, &origin)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut r = redirect("/ui/");
    set_cookie(
        &mut r,
        &format!("{SESSION_COOKIE}={session}; {}", cookie_attributes(secure, "/ui/")),
    );
    set_cookie(
        &mut r,
        &format!("{LOGIN_COOKIE}=; Max-Age=0; {}", cookie_attributes(secure, "/ui/login")),
    );
    r
}
