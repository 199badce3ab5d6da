//! `scepd ca rollover | install-cert --next | export --next | activate-next | list | remove`.
//!
//! The next CA's keys and certificates are made here, in the data directory (`DIR/cas/<issuer
//! id>/`), as `init` makes the first ones: they never travel through the API. The store's
//! record (which CA is next, when it becomes current) goes through the running server's admin
//! API; when no server runs, `scepd serve` records the new generation when it starts.

use std::path::PathBuf;

use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use scepd_ca::{CaParams, IssuerId, KeyBits};

use super::client;
use super::{CliResult, ClientArgs};
use crate::datadir::DataDir;

#[derive(Args)]
pub(super) struct RolloverArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Key size of the next CA (and RA); default: the current CA's.
    #[arg(long)]
    key_bits: Option<u32>,
    /// Subject of the next CA; default: the current CA's.
    #[arg(long)]
    ca_subject: Option<String>,
    #[arg(long, default_value_t = CaParams::DEFAULT_VALIDITY_DAYS)]
    validity_days: u32,
    /// Let the next CA act as its own RA (no separate RA certificate).
    #[arg(long)]
    no_ra: bool,
    /// Externally signed next CA: make its key, write its CSR to this file; install the signed
    /// certificate with `scepd ca install-cert --next`.
    #[arg(long)]
    ca_csr: Option<PathBuf>,
    /// Encrypt the new private keys with the passphrase in this file (or set SCEPD_KEY_PASSPHRASE).
    #[arg(long, env = "SCEPD_KEY_PASSPHRASE_FILE")]
    key_passphrase_file: Option<PathBuf>,
    /// PKCS#11 module, when the current CA key's URI names none.
    #[arg(long, env = "SCEPD_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// File holding the token's user PIN (or set SCEPD_PKCS11_PIN).
    #[arg(long, env = "SCEPD_PKCS11_PIN_FILE")]
    pkcs11_pin_file: Option<PathBuf>,
}

fn data_dir(args: &RolloverArgs) -> Result<DataDir, Box<dyn std::error::Error>> {
    Ok(DataDir::new(&args.client.data)
        .with_passphrase(crate::datadir::key_passphrase(args.key_passphrase_file.as_deref())?)
        .with_pkcs11_pin(crate::datadir::pkcs11_pin(args.pkcs11_pin_file.as_deref())?))
}

/// The current CA certificate's subject and key size.
fn current_ca(dir: &DataDir) -> Result<(String, u32), Box<dyn std::error::Error>> {
    let (der, _) = dir.load_certificates()?;
    let cert: scepd_ca::Certificate = der::Decode::from_der(&der)?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let rsa: pkcs1::RsaPublicKey<der::asn1::UintRef<'_>> = der::Decode::from_der(spki.subject_public_key.raw_bytes())?;
    let bits = rsa.modulus.as_bytes().len() as u32 * 8;
    Ok((cert.tbs_certificate().subject().to_string(), bits))
}

/// The generations as the running server lists them; none when no server answers.
fn listing(client: &ClientArgs) -> Result<Option<Vec<Value>>, Box<dyn std::error::Error>> {
    match client::api(client, Method::GET, "/api/v1/ca", None) {
        Ok(Value::Array(list)) => Ok(Some(list)),
        Ok(_) => Err("the server answered something else than a list".into()),
        Err(e) if client::is_refusal(e.as_ref()) => Err(e),
        Err(_) => Ok(None),
    }
}

fn role_of(list: &[Value], role: &str) -> Option<Value> {
    list.iter()
        .find(|g| g.get("role").and_then(Value::as_str) == Some(role))
        .cloned()
}

pub(super) fn rollover(args: RolloverArgs) -> CliResult {
    let dir = data_dir(&args)?;
    if let Some(list) = listing(&args.client)? {
        if let Some(next) = role_of(&list, "next") {
            return Err(format!(
                "a next CA is prepared already ({}): activate it with `scepd ca activate-next` first",
                next.get("issuer").and_then(Value::as_str).unwrap_or("?")
            )
            .into());
        }
    }
    let (subject, bits) = current_ca(&dir)?;
    let subject = args.ca_subject.clone().unwrap_or(subject);
    let bits = KeyBits::try_from(args.key_bits.unwrap_or(bits))?;
    let keys = dir.next_key_generator(args.pkcs11_module.as_deref())?;
    if let Some(out) = &args.ca_csr {
        let (id, csr) = dir.rollover_csr(&subject, bits, keys.as_ref())?;
        std::fs::write(out, scepd_ca::pem::encode("CERTIFICATE REQUEST", &csr))?;
        println!(
            "next CA key made ({id}); have {} signed, then run `scepd ca install-cert --next SIGNED.pem`",
            out.display()
        );
        return Ok(());
    }
    let params = CaParams {
        subject: scepd_ca::name::parse(&subject)?,
        key_bits: bits,
        validity_days: args.validity_days,
        with_ra: !args.no_ra,
    };
    let (id, authority) = dir.rollover_new(&params, keys.as_ref())?;
    println!("next CA: {}", authority.ca.subject());
    println!("next CA issuer id: {id}");
    println!(
        "next CA SHA-256 fingerprint: {}",
        hex::encode(authority.ca.fingerprint_sha256())
    );
    record(&args.client, &dir, &id, false)
}

/// Records generation `id` as the next CA through the running server, or leaves it for
/// `scepd serve` to record when it starts. A refusal removes the files just made, so that a
/// later start does not record them after all.
fn record(client: &ClientArgs, dir: &DataDir, id: &IssuerId, installed: bool) -> CliResult {
    let body = json!({ "issuer": id.to_hex(), "installed": installed });
    match client::api(client, Method::POST, "/api/v1/ca/next", Some(body)) {
        Ok(_) => {
            println!("recorded as the next CA: GetNextCACert announces it; `scepd ca activate-next` switches to it");
            Ok(())
        }
        Err(e) if client::is_refusal(e.as_ref()) => {
            let generation = dir.generation(id);
            let _ = std::fs::remove_dir_all(generation.root());
            Err(e)
        }
        Err(e) => {
            println!("no server answered ({e}); `scepd serve` records the next CA when it starts");
            Ok(())
        }
    }
}

pub(super) fn install_next(
    client: &ClientArgs,
    signed: &PathBuf,
    chain: Option<PathBuf>,
    no_ra: bool,
    pkcs11_module: Option<PathBuf>,
) -> CliResult {
    let dir = DataDir::new(&client.data)
        .with_passphrase(crate::datadir::key_passphrase(None)?)
        .with_pkcs11_pin(crate::datadir::pkcs11_pin(None)?);
    let chain = chain.as_ref().map(super::read).transpose()?;
    let keys = dir.next_key_generator(pkcs11_module.as_deref())?;
    let (id, authority, warnings) =
        dir.install_next_cert(&super::read(signed)?, chain.as_deref(), !no_ra, keys.as_ref())?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    println!("next CA installed: {} ({id})", authority.ca.subject());
    record(client, &dir, &id, true)
}

pub(super) fn export_next(client: &ClientArgs) -> CliResult {
    let list = listing(client)?.ok_or("no server answered: `scepd ca export --next` asks the running server")?;
    let next = role_of(&list, "next").ok_or("no next CA is prepared (run `scepd ca rollover`)")?;
    print!("{}", next.get("pem").and_then(Value::as_str).unwrap_or_default());
    Ok(())
}

pub(super) fn activate_next(client: &ClientArgs, at: Option<String>) -> CliResult {
    let body = match &at {
        Some(at) => json!({ "at": at }),
        None => json!({}),
    };
    let done = client::api(client, Method::POST, "/api/v1/ca/activate", Some(body))?;
    println!(
        "CA {} becomes the current CA at {}",
        done.get("issuer").and_then(Value::as_str).unwrap_or("?"),
        done.get("activate_at").and_then(Value::as_str).unwrap_or("?")
    );
    Ok(())
}

pub(super) fn remove(client: &ClientArgs, issuer: &str) -> CliResult {
    let issuer: IssuerId = issuer
        .parse()
        .map_err(|_| "ISSUER: 40 hex digits, as `scepd ca list` shows it")?;
    client::api(client, Method::DELETE, &format!("/api/v1/ca/{issuer}"), None)?;
    println!("CA {issuer} removed: its CRL is no longer signed; its files in the data directories may go");
    Ok(())
}

pub(super) fn list(client: &ClientArgs, json: bool) -> CliResult {
    let list = listing(client)?.ok_or("no server answered: `scepd ca list` asks the running server")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let s = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    };
    println!(
        "{:<8}  {:<40}  {:<20}  {:<20}  {:>7}  {:>7}  SUBJECT",
        "ROLE", "ISSUER", "NOT AFTER", "ACTIVE FROM", "CERTS", "ACTIVE"
    );
    for g in &list {
        println!(
            "{:<8}  {:<40}  {:<20}  {:<20}  {:>7}  {:>7}  {}",
            s(g, "role"),
            s(g, "issuer"),
            s(g, "not_after"),
            s(g, "activate_at"),
            s(g, "certificates"),
            s(g, "active_certificates"),
            s(g, "subject")
        );
    }
    Ok(())
}

/// The certificates a device profile carries: the current CA (and the chain above it), and the
/// next CA during the overlap, as the running server says; without a server, the original CA
/// alone (`DIR/ca.pem`).
pub(super) type ProfileCas = ((Vec<u8>, Vec<Vec<u8>>), Option<Vec<u8>>);

pub(super) fn profile_certificates(client: &ClientArgs) -> Result<ProfileCas, Box<dyn std::error::Error>> {
    let dir = DataDir::new(&client.data);
    let Some(list) = listing(client).ok().flatten() else {
        if !dir.generation_ids().is_empty() {
            eprintln!("note: no server answered: the profile names the original CA only (DIR/ca.pem)");
        }
        return Ok((dir.load_certificates()?, None));
    };
    let der_of = |g: &Value| -> Option<Vec<u8>> {
        scepd_ca::pem::certificates(g.get("pem")?.as_str()?)
            .ok()?
            .into_iter()
            .next()
    };
    let current = role_of(&list, "current").ok_or("the server lists no current CA")?;
    let certificates = match current.get("original").and_then(Value::as_bool) {
        Some(true) => dir.load_certificates()?,
        _ => {
            let ca = der_of(&current).ok_or("the server lists the current CA without its certificate")?;
            let chain = match current
                .get("issuer")
                .and_then(Value::as_str)
                .and_then(|i| i.parse().ok())
            {
                Some(id) => dir
                    .generation(&id)
                    .load_certificates()
                    .map(|(_, chain)| chain)
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            (ca, chain)
        }
    };
    Ok((certificates, role_of(&list, "next").as_ref().and_then(der_of)))
}

/// The next CA as a trust payload of its own, so that devices trust it before the switch.
pub(super) fn next_ca_payloads(prefix: &str, next: Option<&[u8]>) -> Vec<plist::Value> {
    next.map(|der| crate::profile::certificate_payloads(&format!("{prefix}.next"), der, &[]))
        .unwrap_or_default()
}
