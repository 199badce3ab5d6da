//! `scepd serve`: load (or create) the data directory, open the store, listen.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::challenge::ChallengePolicy;
use crate::config::{Config, LogFormat};
use crate::datadir::DataDir;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::scep::envelope::CipherPolicy;
use crate::service::{ChallengeTtl, Lifecycle, Policy, ScepService};

pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.fmt_fields(escaped_fields()).init(),
    }
}

/// Text-log fields with every control character escaped: a request's fields (a transactionID,
/// a Jamf payloadIdentifier, a path) must not start a line of their own or drive the
/// terminal. String fields print quoted, as the default formatter prints them; the JSON format
/// escapes by itself.
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = escape_controls(&format!("{value:?}"));
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with each control character written as its Rust escape (`\n`, `\u{1b}`).
fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Opens the configured store and checks it belongs to this CA (blocking calls: a PostgreSQL
/// client runs its own small runtime, which cannot start on a runtime thread).
async fn open_store(
    config: &Config,
    dir: &DataDir,
    authority: &scepd_ca::Authority,
) -> Result<Arc<dyn crate::store::Store>, Box<dyn std::error::Error>> {
    let location = config
        .store
        .clone()
        .unwrap_or_else(|| crate::store::StoreLocation::Redb(dir.store_path()));
    if location.is_shared() {
        tracing::info!(store = %location, "opening the shared store");
    }
    let (ca_der, challenge_key, admin_token) = (authority.ca.der.clone(), dir.challenge_key()?, dir.admin_token()?);
    let pool_size = config.store_pool_size;
    tokio::task::spawn_blocking(move || -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
        let store = location.open(pool_size)?;
        crate::identity::bind(store.as_ref(), &ca_der, &challenge_key, &admin_token)?;
        Ok(store)
    })
    .await?
    .map_err(|e| e as Box<dyn std::error::Error>)
}

pub async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let dir = DataDir::new(&config.data)
        .with_passphrase(crate::datadir::key_passphrase(config.key_passphrase_file.as_deref())?)
        .with_pkcs11_pin(crate::datadir::pkcs11_pin(config.pkcs11_pin_file.as_deref())?);
    if !dir.is_initialized() {
        tracing::info!(data = %config.data.display(), "data directory is empty: creating a new CA");
        dir.init_new(&scepd_ca::CaParams::default(), false, &scepd_ca::SoftwareKeys)?;
    }
    dir.check_owner()?;
    let authority = dir.load()?;
    let listener = TcpListener::bind(config.listen).await?;
    let local = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| http::local_url(local));
    let store = open_store(&config, &dir, &authority).await?;
    let policy = Policy {
        challenge: ChallengePolicy::new(
            config.static_challenge.as_deref(),
            config.insecure_no_challenge,
            dir.challenge_key()?,
        ),
        cipher: CipherPolicy {
            allow_des: config.allow_des,
            rejection_secret: dir.challenge_key()?.derive("implicit rejection"),
        },
        min_key_bits: config.min_key_bits,
        cert_validity_days: config.cert_validity_days,
        not_before_backdate_seconds: config.not_before_backdate,
        crl_url: Some(format!("{public_url}/crl")),
        data_dir: config.data.clone(),
        public_url: public_url.clone(),
        challenge_ttl: ChallengeTtl {
            default_seconds: config.challenge_ttl,
            max_seconds: config.challenge_max_ttl,
        },
        lifecycle: Lifecycle {
            device_id_field: config.device_id_field,
            max_valid_per_device: config.max_valid_per_device,
            revoke_superseded_after: config.revoke_superseded_after,
            renewal_window_percent: config.renewal_window,
            allow_key_reuse: config.allow_key_reuse,
            okta_device_access: config.okta_device_access,
            crl_next_update_seconds: config.crl_next_update,
            crl_keep_expired_seconds: config.crl_keep_expired,
            ocsp_url: Some(format!("{public_url}/ocsp")),
            ca_issuers_url: Some(format!("{public_url}/ca.crt")),
            unbound_reenrollment: config.unbound_reenrollment,
        },
        san: config.san_policy(),
    };
    if config.insecure_no_challenge {
        tracing::warn!("INSECURE: --insecure-no-challenge is set: any client can get a certificate. Lab use only.");
    }
    let fingerprint = hex::encode(authority.ca.fingerprint_sha256());
    let ca_subject = authority.ca.subject().to_string();
    let metrics = Arc::new(Metrics::new());
    let authority = crate::keys::metered::meter(authority, &metrics);
    let service = Arc::new(ScepService::new(authority, store, policy, metrics.clone())?);
    start_ca_generations(&config, &dir, &service, &metrics).await?;
    // Webhook secrets are sealed under a key derived from challenge.key: every node has it.
    crate::webhook::start(
        &service,
        &dir.challenge_key()?.derive("webhook secrets"),
        config.webhook.clone(),
    )?;
    let limits = http::Limits {
        max_body_bytes: config.max_body_bytes,
        auth_failures_per_minute: config.auth_failures_per_minute,
        challenge_failures_per_minute: config.challenge_failures_per_minute,
        max_connections: config.max_connections,
        max_connections_per_source: config.max_connections_per_source,
        max_queued_operations: config.max_queued_operations,
        request_timeout: std::time::Duration::from_secs(config.request_timeout),
    };
    let state = Arc::new(AppState::new(
        service.clone(),
        &dir.admin_token()?,
        limits,
        config.admin_tls_only,
        http::TrustedProxies::parse(&config.trusted_proxies)?,
    ));
    tokio::spawn(maintenance(
        service.clone(),
        std::time::Duration::from_secs(config.challenge_sweep_interval),
    ));

    dir.write_secret("admin.url", http::local_url(local).as_bytes())?;
    dir.record_public_url(&public_url)?;
    tracing::info!(
        scep_url = %format!("{public_url}/scep"),
        listen = %local,
        ca_subject = %ca_subject,
        ca_sha256 = %fingerprint,
        "scepd listening"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(addr) = config.metrics_listen {
        let metrics_listener = TcpListener::bind(addr).await?;
        tracing::info!(listen = %metrics_listener.local_addr()?, "metrics listener");
        let (state, mut stop) = (state.clone(), stop_rx.clone());
        tokio::spawn(http::serve(
            metrics_listener,
            state,
            http::Routes::MetricsOnly,
            http::Transport::Plain,
            async move {
                let _ = stop.changed().await;
            },
        ));
    }
    let mut tls_server = None;
    if let (Some(addr), Some(cert), Some(key)) = (config.tls_listen, &config.tls_cert, &config.tls_key) {
        let reloadable = Arc::new(http::tls::ReloadableCert::new(cert, key)?);
        let acceptor = tokio_rustls::TlsAcceptor::from(reloadable.server_config()?);
        let tls_listener = TcpListener::bind(addr).await?;
        let tls_local = tls_listener.local_addr()?;
        dir.write_secret("tls.url", format!("https://{tls_local}").as_bytes())?;
        tracing::info!(listen = %tls_local, "HTTPS listener");
        tokio::spawn(reload_on_sighup(Arc::clone(&reloadable)));
        let (state, mut stop) = (state.clone(), stop_rx.clone());
        tls_server = Some(tokio::spawn(http::serve(
            tls_listener,
            state,
            http::Routes::All,
            http::Transport::Tls(acceptor),
            async move {
                let _ = stop.changed().await;
            },
        )));
    }
    let mut stop = stop_rx.clone();
    let main = tokio::spawn(http::serve(
        listener,
        state,
        http::Routes::All,
        http::Transport::Plain,
        async move {
            let _ = stop.changed().await;
        },
    ));
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let _ = main.await;
    if let Some(tls) = tls_server {
        let _ = tls.await;
    }
    // Make minted challenges durable before exiting.
    let flushed = tokio::task::spawn_blocking(move || {
        service.sync_challenges();
        service.store().flush()
    })
    .await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::error!("final store flush failed");
    }
    tracing::info!("scepd stopped");
    Ok(())
}

const GAUGE_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

/// How often a node reads the CA generations from the store: the longest a node takes to see
/// another node's `ca rollover` or an immediate `ca activate-next` (one scheduled with `--at`
/// further ahead switches every node at that second).
const CA_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Teaches the service to load CA generations from this data directory, records those that
/// `scepd ca rollover` made while no server ran, and reads the generations from the store.
async fn start_ca_generations(
    config: &Config,
    dir: &DataDir,
    service: &Arc<ScepService>,
    metrics: &Arc<Metrics>,
) -> Result<(), Box<dyn std::error::Error>> {
    let keys = DataDir::new(&config.data)
        .with_passphrase(crate::datadir::key_passphrase(config.key_passphrase_file.as_deref())?)
        .with_pkcs11_pin(crate::datadir::pkcs11_pin(config.pkcs11_pin_file.as_deref())?);
    let metrics = Arc::clone(metrics);
    service.set_generation_loader(Box::new(move |issuer| {
        let authority = keys.generation(issuer).load().map_err(|e| e.to_string())?;
        if scepd_ca::IssuerId::of(&authority.ca.cert) != *issuer {
            return Err(format!(
                "{}/{issuer}/ca.pem is another CA",
                crate::datadir::GENERATIONS_DIR
            ));
        }
        Ok(crate::keys::metered::meter(authority, &metrics))
    }));
    let local = dir.generation_ids();
    let service = Arc::clone(service);
    tokio::task::spawn_blocking(move || {
        service.refresh_cas()?;
        service.register_local_generations(&local)?;
        service.refresh_cas()
    })
    .await??;
    Ok(())
}

/// Background upkeep: makes minted challenges durable (they are committed without their own
/// fsync) and sweeps expired challenges so the store stays bounded.
async fn maintenance(service: Arc<ScepService>, sweep_every: std::time::Duration) {
    let mut flush = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut sweep = tokio::time::interval(sweep_every);
    // The certificate gauges scan every record (a million take about a second): not often.
    let mut gauges = tokio::time::interval(GAUGE_REFRESH);
    let mut cas = tokio::time::interval(CA_REFRESH);
    loop {
        let sweeping = tokio::select! {
            _ = flush.tick() => false,
            _ = sweep.tick() => true,
            _ = cas.tick() => {
                let service = service.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || service.refresh_cas()).await {
                    tracing::error!(error = %e, "reading the CA generations failed");
                }
                continue;
            }
            _ = gauges.tick() => {
                let service = service.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || service.refresh_gauges()).await {
                    tracing::error!(error = %e, "metrics refresh failed");
                }
                continue;
            }
        };
        let service = service.clone();
        let result = tokio::task::spawn_blocking(move || {
            let store = service.store();
            if sweeping {
                let revoked = service.revoke_due_superseded();
                if let Ok(serials) = &revoked {
                    if !serials.is_empty() {
                        tracing::info!(count = serials.len(), "superseded certificates revoked");
                    }
                }
                // Keeps the CRL from ever going past nextUpdate, even with no traffic.
                if let Err(e) = service.refresh_crls() {
                    tracing::error!(error = %e, "CRL refresh failed");
                }
                service.refresh_light_gauges();
                store.sweep_challenges(scepd_ca::time::steady_unix_now()).map(Some)
            } else {
                store.flush().map(|()| None)
            }
        })
        .await;
        match result {
            Ok(Ok(Some(n))) if n > 0 => tracing::info!(swept = n, "expired challenges swept"),
            Ok(Err(e)) => tracing::error!(error = %e, "store maintenance failed"),
            _ => {}
        }
    }
}

/// SIGHUP re-reads the HTTPS certificate and key.
async fn reload_on_sighup(cert: Arc<http::tls::ReloadableCert>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match cert.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
