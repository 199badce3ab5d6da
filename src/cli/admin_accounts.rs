//! `scepd admin add|list|remove`: web console accounts. Through the running server's admin API,
//! or, when no server answers, directly on the data directory's store (as `scepd backup`).

use clap::Subcommand;
use hyper::Method;
use serde_json::Value;

use super::{client, ClientArgs};
use crate::service::console::{account_added, add_account, AccountAdded};
use crate::service::Origin;
use crate::store::console::Role;
use crate::store::{AuditEvent, RedbStore, Store};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create a console account; its generated password is printed once, alone on the last line.
    Add {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
        /// `viewer` reads every page and changes nothing; `operator` also revokes, mints
        /// challenges and manages MDM credentials.
        #[arg(long, value_parser = ["viewer", "operator"], default_value = "operator")]
        role: String,
    },
    /// List the console accounts.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove a console account: its password stops working and its sessions end.
    Remove {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Who the audit trail names for a change made on the store directly (no request).
const LOCAL_ACTOR: &str = "admin";

pub fn admin(cmd: AdminCommand) -> CliResult {
    match cmd {
        AdminCommand::Add { name, client, role } => {
            let role = Role::from_name(&role).ok_or("--role: viewer or operator")?;
            let body = serde_json::json!({ "name": name, "role": role.as_str() });
            let password = match client::api(&client, Method::POST, "/api/v1/admin-accounts", Some(body)) {
                Ok(created) => text(&created, "password").to_string(),
                Err(e) if e.is::<client::Refused>() => return Err(e),
                Err(api_error) => {
                    let store = open_store(&client, &*api_error)?;
                    match add_account(&store, &name, role)? {
                        AccountAdded::Created { password } => {
                            store.append_audit(&[account_added(&local(), &name, role)])?;
                            store.flush()?;
                            password
                        }
                        AccountAdded::Exists => return Err(format!("an account named {name} exists").into()),
                        AccountAdded::InvalidName => {
                            return Err("name: 1-64 characters of [A-Za-z0-9._-], not `admin`".into())
                        }
                    }
                }
            };
            println!(
                "Console account {name} ({}) created. Its password is shown once, on the next line:",
                role.as_str()
            );
            println!("{password}");
        }
        AdminCommand::List { client, json } => {
            let list = match client::api(&client, Method::GET, "/api/v1/admin-accounts", None) {
                Ok(list) => list,
                Err(e) if e.is::<client::Refused>() => return Err(e),
                Err(api_error) => {
                    let store = open_store(&client, &*api_error)?;
                    let accounts = store.console().accounts()?;
                    Value::Array(
                        accounts
                            .iter()
                            .map(|a| serde_json::json!({ "name": a.name, "role": a.role.as_str(), "created_at": scepd_ca::time::rfc3339(a.created_at) }))
                            .collect(),
                    )
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for a in list.as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\tcreated {}",
                        text(a, "name"),
                        text(a, "role"),
                        text(a, "created_at")
                    );
                }
            }
        }
        AdminCommand::Remove { name, client } => {
            let path = format!("/api/v1/admin-accounts/{}", client::encode(&name));
            match client::api(&client, Method::DELETE, &path, None) {
                Ok(_) => {}
                Err(e) if e.is::<client::Refused>() => return Err(e),
                Err(api_error) => {
                    let store = open_store(&client, &*api_error)?;
                    if !store.console().remove_account(&name)? {
                        return Err(format!("no account named {name}").into());
                    }
                    store.append_audit(&[local().entry(AuditEvent::AccountRemoved, None, Some(name.clone()))])?;
                    store.flush()?;
                }
            }
            println!("Console account {name} removed");
        }
    }
    Ok(())
}

fn local() -> Origin {
    Origin {
        actor: LOCAL_ACTOR.into(),
        request_id: None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The data directory's embedded store, when no server answered.
fn open_store(client: &ClientArgs, api_error: &dyn std::error::Error) -> Result<RedbStore, Box<dyn std::error::Error>> {
    let dir = crate::datadir::DataDir::new(&client.data);
    if !dir.is_initialized() {
        return Err(crate::datadir::DataDirError::NotInitialized(client.data.clone()).into());
    }
    RedbStore::open(&dir.store_path())
        .map_err(|e| format!("the server did not answer ({api_error}) and the store cannot be opened ({e})").into())
}
