//! CLI commands that talk to the running server's admin API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{CertCommand, ChallengeCommand, ClientArgs, DeviceCommand, MdmCommand};
use crate::datadir::DataDir;

type CliResult = Result<(), Box<dyn std::error::Error>>;

pub(super) struct AdminClient {
    base: String,
    token: String,
}

impl AdminClient {
    pub(super) fn new(args: &ClientArgs) -> Result<AdminClient, Box<dyn std::error::Error>> {
        let dir = DataDir::new(&args.data);
        let base = match &args.server {
            Some(s) => s.clone(),
            None => std::fs::read_to_string(dir.path("admin.url")).map_err(|e| {
                format!(
                    "{}: {e} (is `scepd serve --data {}` running? or pass --server)",
                    dir.path("admin.url").display(),
                    args.data.display()
                )
            })?,
        };
        let token = match &args.token_file {
            Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
            None => dir.admin_token()?,
        };
        Ok(AdminClient {
            base: base.trim().trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
        })
    }

    pub(super) fn get(&self, path: &str) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        self.call(Method::GET, path, None)
    }

    pub(super) fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), Box<dyn std::error::Error>> {
        let url = format!("{}{path}", self.base);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async {
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let req = Request::builder()
                .method(method)
                .uri(&url)
                .header("authorization", format!("Bearer {}", self.token))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(payload)))?;
            let resp = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            let value: Option<Value> = serde_json::from_slice(&body).ok();
            if !status.is_success() {
                let msg = value
                    .as_ref()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
                return Err(Refused {
                    url,
                    status,
                    message: msg,
                }
                .into());
            }
            let value = value.ok_or_else(|| format!("{url}: the server did not answer JSON"))?;
            Ok((status, value))
        })
    }
}

/// The server answered, with an error status (as opposed to not answering at all).
#[derive(Debug, thiserror::Error)]
#[error("{url}: {status}: {message}")]
pub(super) struct Refused {
    url: String,
    status: StatusCode,
    message: String,
}

pub(super) fn cert(cmd: CertCommand) -> CliResult {
    match cmd {
        CertCommand::List {
            client,
            json,
            device,
            status,
            expiring_within,
        } => {
            let mut query = Vec::new();
            if let Some(w) = expiring_within {
                query.push(format!("expiring_within={}", encode(&w)));
            }
            if let Some(d) = device {
                query.push(format!("device={}", encode(&d)));
            }
            if let Some(s) = status {
                query.push(format!("status={}", encode(&s)));
            }
            let path = if query.is_empty() {
                "/api/v1/certificates".to_string()
            } else {
                format!("/api/v1/certificates?{}", query.join("&"))
            };
            let (_, list) = AdminClient::new(&client)?.get(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<32}  {:<10}  {:<20}  SUBJECT", "SERIAL", "STATUS", "NOT AFTER");
                for c in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<32}  {:<10}  {:<20}  {}",
                        s(c, "serial"),
                        s(c, "status"),
                        s(c, "not_after"),
                        s(c, "subject")
                    );
                }
            }
            Ok(())
        }
        CertCommand::Revoke { serial, client, reason } => {
            let reason = checked_reason(&reason)?;
            let path = format!("/api/v1/certificates/{}/revoke", serial.to_hex());
            let (_, cert) =
                AdminClient::new(&client)?.call(Method::POST, &path, Some(serde_json::json!({ "reason": reason })))?;
            println!("{} revoked ({})", s(&cert, "serial"), s(&cert, "revocation_reason"));
            Ok(())
        }
        CertCommand::Show { serial, client, json } => {
            let (_, cert) = AdminClient::new(&client)?.get(&format!("/api/v1/certificates/{}", serial.to_hex()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&cert)?);
            } else {
                println!(
                    "serial: {}\nsubject: {}\nstatus: {}\nnot before: {}\nnot after: {}",
                    s(&cert, "serial"),
                    s(&cert, "subject"),
                    s(&cert, "status"),
                    s(&cert, "not_before"),
                    s(&cert, "not_after")
                );
                print!("{}", s(&cert, "pem"));
            }
            Ok(())
        }
    }
}

pub(super) fn mdm(cmd: MdmCommand) -> CliResult {
    match cmd {
        MdmCommand::Add { name, client, ttl } => {
            let body = serde_json::json!({ "name": name, "challenge_ttl_seconds": ttl });
            let (_, created) = AdminClient::new(&client)?.call(Method::POST, "/api/v1/mdm-clients", Some(body))?;
            println!("MDM client {name} created. Its password is shown once, on the next line:");
            println!("{}", s(&created, "password"));
        }
        MdmCommand::List { client, json } => {
            let (_, list) = AdminClient::new(&client)?.get("/api/v1/mdm-clients")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for c in list.as_array().into_iter().flatten() {
                    println!("{}\tcreated {}", s(c, "name"), s(c, "created_at"));
                }
            }
        }
        MdmCommand::Remove { name, client } => {
            AdminClient::new(&client)?.call(Method::DELETE, &format!("/api/v1/mdm-clients/{}", encode(&name)), None)?;
            println!("MDM client {name} removed");
        }
        MdmCommand::Rotate { name, client } => {
            let path = format!("/api/v1/mdm-clients/{}/rotate", encode(&name));
            let (_, rotated) = AdminClient::new(&client)?.call(Method::POST, &path, None)?;
            println!("New password for MDM client {name}, shown once, on the next line:");
            println!("{}", s(&rotated, "password"));
        }
    }
    Ok(())
}

pub(super) fn challenge(cmd: ChallengeCommand) -> CliResult {
    match cmd {
        ChallengeCommand::New {
            client,
            device,
            ttl,
            subject_cn,
            san,
        } => {
            let body =
                serde_json::json!({ "device_id": device, "ttl_seconds": ttl, "subject_cn": subject_cn, "san": san });
            println!("{}", mint(&client, body)?);
        }
    }
    Ok(())
}

/// Asks the running server for a store snapshot; returns its file name in the data directory.
pub(super) fn backup_store(client: &ClientArgs) -> Result<String, Box<dyn std::error::Error>> {
    let (_, answer) = AdminClient::new(client)?.call(Method::POST, "/api/v1/backup", None)?;
    Ok(s(&answer, "file").to_string())
}

/// The running server's public SCEP URL.
pub(super) fn server_scep_url(client: &ClientArgs) -> Result<String, Box<dyn std::error::Error>> {
    let (_, info) = AdminClient::new(client)?.get("/api/v1/info")?;
    Ok(s(&info, "scep_url").to_string())
}

/// Prints the audit trail as JSON lines, page by page.
pub(super) fn audit_export(client: &ClientArgs, mut after: u64) -> CliResult {
    let admin = AdminClient::new(client)?;
    loop {
        let (_, page) = admin.get(&format!("/api/v1/audit?after={after}&limit=1000"))?;
        let entries = page.as_array().cloned().unwrap_or_default();
        for e in &entries {
            println!("{e}");
            after = after.max(e["seq"].as_u64().unwrap_or(after));
        }
        if entries.len() < 1000 {
            return Ok(());
        }
    }
}

/// Mints a one-time challenge through the running server's admin API.
pub(super) fn mint(client: &ClientArgs, body: Value) -> Result<String, Box<dyn std::error::Error>> {
    let (_, minted) = AdminClient::new(client)?.call(Method::POST, "/api/v1/challenges", Some(body))?;
    Ok(s(&minted, "challenge").to_string())
}

fn checked_reason(reason: &str) -> Result<&'static str, String> {
    scepd_ca::Reason::from_name(reason).map(|r| r.as_str()).ok_or_else(|| {
        format!(
            "unknown reason {reason:?}; one of: {}",
            scepd_ca::Reason::names().collect::<Vec<_>>().join(", ")
        )
    })
}

pub(super) fn device(cmd: DeviceCommand) -> CliResult {
    match cmd {
        DeviceCommand::Revoke {
            device_id,
            client,
            reason,
        } => {
            let reason = checked_reason(&reason)?;
            let path = format!("/api/v1/devices/{}/revoke", encode(&device_id));
            let (_, result) =
                AdminClient::new(&client)?.call(Method::POST, &path, Some(serde_json::json!({ "reason": reason })))?;
            for serial in result["revoked"].as_array().into_iter().flatten() {
                println!("{} revoked ({reason})", serial.as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

pub(super) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Percent-encodes a query value.
pub(super) fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One admin API call with the data directory's token, for commands defined elsewhere
/// (`scepd ca …`, `scepd admin …`): the JSON answer, or
/// [`Refused`] when the server said no, or another error when no server answered.
pub(super) fn api(
    client: &ClientArgs,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(AdminClient::new(client)?.call(method, path, body)?.1)
}

/// Whether `error` is the server's refusal (rather than no server answering).
pub(super) fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    error.is::<Refused>()
}
