//! `/api/v1/admin-accounts`: what `scepd admin add|list|remove` call while the server runs
//! (admin token only, like the rest of the admin API).

use hyper::{Method, Response, StatusCode};

use crate::http::response::{self, Body};
use crate::service::console::AccountAdded;
use crate::service::{Origin, ScepService, ServiceError};
use crate::store::console::Role;

const PREFIX: &str = "/api/v1/admin-accounts";

/// Whether the accounts API serves `path`.
pub fn is_accounts_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/api/v1/admin-accounts/")
}

#[derive(serde::Deserialize)]
struct NewAccount {
    name: String,
    #[serde(default)]
    role: Option<String>,
}

/// One accounts request, on the blocking pool.
pub fn accounts_api(
    service: &ScepService,
    method: &Method,
    path: &str,
    body: &[u8],
    origin: &Origin,
) -> Result<Response<Body>, ServiceError> {
    let name = path.strip_prefix(PREFIX).and_then(|p| p.strip_prefix('/'));
    Ok(match (method, name) {
        (&Method::GET, None) => {
            let accounts: Vec<_> = service
                .console_accounts()?
                .iter()
                .map(|a| serde_json::json!({ "name": a.name, "role": a.role.as_str(), "created_at": scepd_ca::time::rfc3339(a.created_at) }))
                .collect();
            response::json(StatusCode::OK, &serde_json::Value::Array(accounts))
        }
        (&Method::POST, None) => {
            let params: NewAccount = match serde_json::from_slice(body) {
                Ok(p) => p,
                Err(e) => {
                    return Ok(response::json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("bad request body: {e}"),
                    ))
                }
            };
            let Some(role) = Role::from_name(params.role.as_deref().unwrap_or("operator")) else {
                return Ok(response::json_error(
                    StatusCode::BAD_REQUEST,
                    "role: viewer or operator",
                ));
            };
            match service.add_console_account(&params.name, role, origin)? {
                AccountAdded::Created { password } => response::json(
                    StatusCode::CREATED,
                    &serde_json::json!({ "name": params.name, "role": role.as_str(), "password": password }),
                ),
                AccountAdded::Exists => response::json_error(StatusCode::CONFLICT, "an account of that name exists"),
                AccountAdded::InvalidName => response::json_error(
                    StatusCode::BAD_REQUEST,
                    "name: 1-64 characters of [A-Za-z0-9._-], not `admin`",
                ),
            }
        }
        (&Method::DELETE, Some(name)) if !name.is_empty() && !name.contains('/') => {
            let name = String::from_utf8_lossy(&crate::scep::query::percent_decode(name)).into_owned();
            if service.remove_console_account(&name, origin)? {
                response::json(StatusCode::OK, &serde_json::json!({ "removed": name }))
            } else {
                response::json_error(StatusCode::NOT_FOUND, "no such account")
            }
        }
        _ => response::json_error(StatusCode::NOT_FOUND, "no such endpoint"),
    })
}
