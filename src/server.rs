//! `scepd serve`: load (or create) the data directory, open the store, listen.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::challenge::ChallengePolicy;
use crate::config::{Config, LogFormat};
use crate::datadir::DataDir;
use crate::http::{self, AppState};
use crate::scep::envelope::CipherPolicy;
use crate::service::{Policy, ScepService};
use crate::store::RedbStore;

pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let dir = DataDir::new(&config.data);
    if !dir.is_initialized() {
        tracing::info!(data = %config.data.display(), "data directory is empty: creating a new CA");
        dir.init_new(&crate::cli::default_ca_params())?;
    }
    let authority = dir.load()?;
    let store = Arc::new(RedbStore::open(&dir.store_path())?);
    let policy = Policy {
        challenge: ChallengePolicy::new(config.static_challenge.as_deref(), config.insecure_no_challenge),
        cipher: CipherPolicy { allow_des: config.allow_des },
        min_key_bits: config.min_key_bits,
        cert_validity_days: config.cert_validity_days,
        crl_url: Some(config.crl_url()),
    };
    if config.insecure_no_challenge {
        tracing::warn!("INSECURE: --insecure-no-challenge is set: any client can get a certificate. Lab use only.");
    }
    if config.static_challenge.is_none() && !config.insecure_no_challenge {
        tracing::warn!("no challenge configured: every PKCSReq will be refused (set --static-challenge)");
    }
    let fingerprint = hex::encode(authority.ca.fingerprint_sha256());
    let ca_subject = authority.ca.subject().to_string();
    let service = Arc::new(ScepService::new(authority, store, policy)?);
    let state = Arc::new(AppState::new(service, &dir.admin_token()?, config.max_body_bytes));

    let listener = TcpListener::bind(config.listen).await?;
    let local = listener.local_addr()?;
    dir.write_secret("admin.url", http::local_url(local).as_bytes())?;
    tracing::info!(
        scep_url = %format!("{}/scep", config.public_url),
        listen = %local,
        ca_subject = %ca_subject,
        ca_sha256 = %fingerprint,
        "scepd listening"
    );
    http::serve(listener, state, shutdown_signal()).await;
    tracing::info!("scepd stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
