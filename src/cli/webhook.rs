//! `scepd webhook ...`: endpoints and deliveries, through the running server's admin API.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::client::{s, AdminClient};
use super::ClientArgs;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Add an endpoint; its signing secret (`whsec_…`) is printed once, alone on the last line.
    Add {
        url: String,
        #[command(flatten)]
        client: ClientArgs,
        /// Event types to send, comma-separated (default: all): certificate.issued,
        /// certificate.superseded, certificate.revoked, certificate.expiring, ca.expiring,
        /// challenge.rejected.
        #[arg(long)]
        events: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Allow http:// to a host that is not loopback (the body and signature travel in clear).
        #[arg(long)]
        allow_http: bool,
    },
    /// List the endpoints (never their secrets).
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint; its pending deliveries are dead-lettered.
    Remove {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A new signing secret (printed once, alone on the last line); the old one keeps signing
    /// for `webhook_rotation_overlap` (both signatures are sent meanwhile).
    Rotate {
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Deliveries, newest first.
    Deliveries {
        #[command(flatten)]
        client: ClientArgs,
        /// Only the dead-lettered ones.
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send a delivery again now (a dead-lettered one, usually), with its webhook-id.
    Retry {
        delivery_id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

pub fn run(cmd: WebhookCommand) -> CliResult {
    match cmd {
        WebhookCommand::Add {
            url,
            client,
            events,
            description,
            allow_http,
        } => {
            let events: Vec<&str> = events.as_deref().map_or(Vec::new(), |e| e.split(',').collect());
            let body = json!({ "url": url, "events": events, "description": description, "allow_http": allow_http });
            let (_, added) = AdminClient::new(&client)?.call(Method::POST, "/api/v1/webhooks", Some(body))?;
            println!(
                "Webhook {} added. Its signing secret is shown once, on the next line:",
                s(&added, "id")
            );
            println!("{}", s(&added, "secret"));
        }
        WebhookCommand::List { client, json } => {
            let (_, list) = AdminClient::new(&client)?.get("/api/v1/webhooks")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for e in list.as_array().into_iter().flatten() {
                    println!("{}\t{}\t{}", s(e, "id"), s(e, "url"), events_text(e));
                }
            }
        }
        WebhookCommand::Remove { id, client } => {
            AdminClient::new(&client)?.call(
                Method::DELETE,
                &format!("/api/v1/webhooks/{}", path_segment(&id)?),
                None,
            )?;
            println!("webhook {id} removed");
        }
        WebhookCommand::Rotate { id, client } => {
            let path = format!("/api/v1/webhooks/{}/rotate", path_segment(&id)?);
            let (_, rotated) = AdminClient::new(&client)?.call(Method::POST, &path, None)?;
            println!(
                "New signing secret for webhook {id} (the previous one signs too until {}), shown once, on the next line:",
                s(&rotated, "previous_valid_until")
            );
            println!("{}", s(&rotated, "secret"));
        }
        WebhookCommand::Deliveries {
            client,
            failed,
            json,
            limit,
        } => {
            let status = if failed { "&status=failed" } else { "" };
            let (_, list) =
                AdminClient::new(&client)?.get(&format!("/api/v1/webhook-deliveries?limit={limit}{status}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:<23}  {:<22}  {:<9}  {:>8}  LAST ERROR",
                    "DELIVERY", "TYPE", "STATUS", "ATTEMPTS"
                );
                for d in list.as_array().into_iter().flatten() {
                    println!(
                        "{:<23}  {:<22}  {:<9}  {:>8}  {}",
                        s(d, "id"),
                        s(d, "type"),
                        s(d, "status"),
                        d["attempts"],
                        s(d, "last_error")
                    );
                }
            }
        }
        WebhookCommand::Retry { delivery_id, client } => {
            let path = format!("/api/v1/webhook-deliveries/{}/retry", path_segment(&delivery_id)?);
            AdminClient::new(&client)?.call(Method::POST, &path, None)?;
            println!("delivery {delivery_id} will be sent again");
        }
    }
    Ok(())
}

fn events_text(e: &Value) -> String {
    let events: Vec<&str> = e["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if events.is_empty() {
        "all events".into()
    } else {
        events.join(",")
    }
}

/// An id as a path segment: only what ids are made of.
fn path_segment(id: &str) -> Result<&str, String> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(id)
    } else {
        Err(format!("{id:?} is not a webhook or delivery id"))
    }
}
