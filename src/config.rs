//! Configuration: flags > `SCEPD_*` environment variables > TOML file > defaults.
//!
//! Every key of the TOML file has a flag and an environment variable of the same name
//! (`min_key_bits` ↔ `--min-key-bits` ↔ `SCEPD_MIN_KEY_BITS`). clap merges flags and the
//! environment; this module lays the file and the defaults under them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::service::san::{self, SanPolicy, SanType};
use crate::service::{DeviceIdField, UnboundReenrollment};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `scepd serve` flags, and (the same keys) the TOML file. Each is optional so that the
/// environment, the file and the defaults can fill it.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SCEPD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory (CA, keys, store); initialized on first start when empty or missing.
    #[arg(long, env = "SCEPD_DATA")]
    pub data: Option<PathBuf>,
    /// The store: `postgres://USER@HOST/DB` for a store shared by several nodes (PostgreSQL,
    /// CockroachDB); by default the embedded one in the data directory.
    #[arg(long = "store", env = "SCEPD_STORE", hide_env_values = true)]
    pub store_url: Option<String>,
    /// Connections each node keeps to a PostgreSQL store (default 16).
    #[arg(long, env = "SCEPD_STORE_POOL_SIZE")]
    pub store_pool_size: Option<u32>,
    /// HTTP listen address.
    #[arg(long, env = "SCEPD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HTTPS listen address (needs --tls-cert and --tls-key; re-read on SIGHUP).
    #[arg(long, env = "SCEPD_TLS_LISTEN", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain of the HTTPS listener.
    #[arg(long, env = "SCEPD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the HTTPS listener.
    #[arg(long, env = "SCEPD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve the admin and challenge APIs only over HTTPS (plain HTTP from loopback still works,
    /// for the local CLI).
    #[arg(long, env = "SCEPD_ADMIN_TLS_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub admin_tls_only: Option<bool>,
    /// A separate listener serving only /metrics.
    #[arg(long, env = "SCEPD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Public base URL clients reach this server at (CRL distribution points are built from it).
    #[arg(long, env = "SCEPD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Accept this static challenge password (visible to other local users in the process's
    /// command line: prefer --static-challenge-file or the config file).
    #[arg(
        long,
        env = "SCEPD_STATIC_CHALLENGE",
        hide_env_values = true,
        conflicts_with = "static_challenge_file"
    )]
    pub static_challenge: Option<String>,
    /// Accept the static challenge password held in this file (its first line).
    #[arg(long, env = "SCEPD_STATIC_CHALLENGE_FILE")]
    pub static_challenge_file: Option<PathBuf>,
    /// Also accept single-DES requests (RFC 8894 forbids DES; micromdm's scepclient needs it).
    #[arg(long, env = "SCEPD_ALLOW_DES", num_args = 0..=1, default_missing_value = "true")]
    pub allow_des: Option<bool>,
    /// LAB ONLY: accept PKCSReq without a challenge.
    #[arg(long, env = "SCEPD_INSECURE_NO_CHALLENGE", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_no_challenge: Option<bool>,
    /// Minimum client RSA key size in bits.
    #[arg(long, env = "SCEPD_MIN_KEY_BITS")]
    pub min_key_bits: Option<usize>,
    /// Validity of issued certificates in days (capped at the CA's notAfter).
    #[arg(long, env = "SCEPD_CERT_VALIDITY_DAYS")]
    pub cert_validity_days: Option<u32>,
    /// Log format.
    #[arg(long, env = "SCEPD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level or tracing filter (RUST_LOG syntax).
    #[arg(long, env = "SCEPD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// File holding the passphrase of the CA/RA keys (or set SCEPD_KEY_PASSPHRASE).
    #[arg(long, env = "SCEPD_KEY_PASSPHRASE_FILE")]
    pub key_passphrase_file: Option<PathBuf>,
    /// File holding the user PIN of the PKCS#11 token the data directory's key URIs name (or
    /// set SCEPD_PKCS11_PIN).
    #[arg(long, env = "SCEPD_PKCS11_PIN_FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
    /// Maximum request body in bytes.
    #[arg(long, env = "SCEPD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Default lifetime of a one-time challenge, in seconds.
    #[arg(long, env = "SCEPD_CHALLENGE_TTL")]
    pub challenge_ttl: Option<u64>,
    /// Longest lifetime a challenge may be given (per MDM client or per request), in seconds.
    #[arg(long, env = "SCEPD_CHALLENGE_MAX_TTL")]
    pub challenge_max_ttl: Option<u64>,
    /// How often expired challenges are swept from the store, in seconds.
    #[arg(long, env = "SCEPD_CHALLENGE_SWEEP_INTERVAL")]
    pub challenge_sweep_interval: Option<u64>,
    /// Failed authentications (MDM or admin) allowed per source address per minute.
    #[arg(long, env = "SCEPD_AUTH_FAILURES_PER_MINUTE")]
    pub auth_failures_per_minute: Option<u32>,
    /// Refused challenges allowed per source address per minute on the SCEP endpoint; past it
    /// PKIOperation answers 429 (brute-force guard; an office behind one NAT shares the budget).
    #[arg(long, env = "SCEPD_CHALLENGE_FAILURES_PER_MINUTE")]
    pub challenge_failures_per_minute: Option<u32>,
    /// Open connections at most (more wait in the kernel's accept queue).
    #[arg(long, env = "SCEPD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections per source address at most (IPv6 per /64; trusted proxies are exempt);
    /// never more than half of max_connections, so one source cannot shut out the health checks.
    #[arg(long, env = "SCEPD_MAX_CONNECTIONS_PER_SOURCE")]
    pub max_connections_per_source: Option<usize>,
    /// A proxy (address or CIDR) whose `Forwarded` / `X-Forwarded-For` header gives the client
    /// address; repeat for several. Nobody else's forwarding headers are believed.
    #[arg(long = "trusted-proxy", env = "SCEPD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// PKIOperations waiting for a core at most; past it 503 with Retry-After.
    #[arg(long, env = "SCEPD_MAX_QUEUED_OPERATIONS")]
    pub max_queued_operations: Option<usize>,
    /// Longest a request may take, in seconds (then 503).
    #[arg(long, env = "SCEPD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Which CSR field names the device when no challenge binding does.
    #[arg(long, env = "SCEPD_DEVICE_ID_FIELD", value_enum)]
    pub device_id_field: Option<DeviceIdField>,
    /// What an unbound request (static, NDES, Jamf or unbound API challenge) does to a device
    /// that already has valid certificates: keep-both (default), allow (supersede, never
    /// revoke) or refuse.
    #[arg(long, env = "SCEPD_UNBOUND_REENROLLMENT", value_enum)]
    pub unbound_reenrollment: Option<UnboundReenrollment>,
    /// subjectAltName types issued (others are dropped): dns, email, uri, ip, other_name.
    #[arg(long = "san-type", env = "SCEPD_SAN_TYPES", value_enum, value_delimiter = ',')]
    pub san_types: Option<Vec<SanType>>,
    /// `TYPE:GLOB` (e.g. `dns:*.devices.example.com`): a type with patterns keeps only the
    /// names matching one. Repeat for several.
    #[arg(long = "san-pattern", env = "SCEPD_SAN_PATTERNS", value_delimiter = ',')]
    pub san_patterns: Option<Vec<String>>,
    /// Keep at most this many valid (active or superseded, unexpired) certificates per device;
    /// older ones are revoked (superseded). Formerly `--max-active-per-device`, still accepted.
    #[arg(long, env = "SCEPD_MAX_VALID_PER_DEVICE", alias = "max-active-per-device")]
    #[serde(alias = "max_active_per_device")]
    pub max_valid_per_device: Option<u32>,
    /// Revoke superseded certificates this long after their successor was issued (e.g. `24h`).
    #[arg(long, env = "SCEPD_REVOKE_SUPERSEDED_AFTER")]
    pub revoke_superseded_after: Option<String>,
    /// RenewalReq is accepted in the last PERCENT of the old certificate's lifetime (100 = any time).
    #[arg(long, env = "SCEPD_RENEWAL_WINDOW")]
    pub renewal_window: Option<u8>,
    /// Accept a RenewalReq that keeps the old key.
    #[arg(long, env = "SCEPD_ALLOW_KEY_REUSE", num_args = 0..=1, default_missing_value = "true")]
    pub allow_key_reuse: Option<bool>,
    /// Add the Okta Device Access extension (1.3.6.1.4.1.51150.13.1 = 1) to issued certificates.
    #[arg(long, env = "SCEPD_OKTA_DEVICE_ACCESS", num_args = 0..=1, default_missing_value = "true")]
    pub okta_device_access: Option<bool>,
    /// How long a CRL is valid (nextUpdate − thisUpdate), e.g. `24h`.
    #[arg(long, env = "SCEPD_CRL_NEXT_UPDATE")]
    pub crl_next_update: Option<String>,
    /// How long a revoked certificate stays on the CRL after it expires, e.g. `0s`, `30d`.
    #[arg(long, env = "SCEPD_CRL_KEEP_EXPIRED")]
    pub crl_keep_expired: Option<String>,
    /// How far before the moment of issue a certificate's notBefore is set, for devices whose
    /// clocks run slow, e.g. `5m` (at most `1d`).
    #[arg(long, env = "SCEPD_NOT_BEFORE_BACKDATE")]
    pub not_before_backdate: Option<String>,
    /// First retry delay of a failed webhook delivery (doubling, with jitter, up to 1h), e.g. `5s`.
    #[arg(long, env = "SCEPD_WEBHOOK_RETRY_INITIAL")]
    pub webhook_retry_initial: Option<String>,
    /// How long a failed webhook delivery is retried before it is dead-lettered, e.g. `24h`.
    #[arg(long, env = "SCEPD_WEBHOOK_RETRY_FOR")]
    pub webhook_retry_for: Option<String>,
    /// How long a webhook's rotated-out secret keeps signing (both signatures are sent), e.g. `24h`.
    #[arg(long, env = "SCEPD_WEBHOOK_ROTATION_OVERLAP")]
    pub webhook_rotation_overlap: Option<String>,
    /// How long before notAfter an active certificate gets its `certificate.expiring` webhook
    /// event (once), e.g. `30d`.
    #[arg(long, env = "SCEPD_WEBHOOK_EXPIRING_LEAD")]
    pub webhook_expiring_lead: Option<String>,
    /// Each node sends at most one `challenge.rejected` webhook summary per this period, e.g. `60s`.
    #[arg(long, env = "SCEPD_WEBHOOK_REJECTION_SUMMARY_INTERVAL")]
    pub webhook_rejection_summary_interval: Option<String>,
    /// Trust only the CA certificates of this PEM file for https:// webhook receivers (default:
    /// the system's roots).
    #[arg(long, env = "SCEPD_WEBHOOK_CA_FILE")]
    pub webhook_ca_file: Option<PathBuf>,
}

/// `90`, `90s`, `15m`, `24h`, `30d` → seconds.
pub fn parse_duration(text: &str) -> Result<u64, ConfigError> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("bad duration {text:?} (use e.g. 90s, 15m, 24h, 30d)")))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(ConfigError::Invalid(format!(
                "bad duration unit in {text:?} (s, m, h or d)"
            )))
        }
    };
    Ok(n * factor)
}

/// The effective configuration.
#[derive(Clone, Serialize)]
pub struct Config {
    pub data: PathBuf,
    /// None: the embedded store in the data directory.
    #[serde(rename = "store_url", serialize_with = "location")]
    pub store: Option<crate::store::StoreLocation>,
    pub store_pool_size: u32,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub admin_tls_only: bool,
    /// When not set, `http://` + the address actually bound.
    pub public_url: Option<String>,
    /// From `static_challenge` or the first line of `static_challenge_file`.
    #[serde(serialize_with = "redact")]
    pub static_challenge: Option<String>,
    pub allow_des: bool,
    pub insecure_no_challenge: bool,
    pub min_key_bits: usize,
    pub cert_validity_days: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: usize,
    pub key_passphrase_file: Option<PathBuf>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub challenge_ttl: u64,
    pub challenge_max_ttl: u64,
    pub challenge_sweep_interval: u64,
    pub auth_failures_per_minute: u32,
    pub challenge_failures_per_minute: u32,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub trusted_proxies: Vec<String>,
    pub max_queued_operations: usize,
    pub request_timeout: u64,
    pub device_id_field: DeviceIdField,
    pub unbound_reenrollment: UnboundReenrollment,
    pub san_types: Vec<SanType>,
    pub san_patterns: Vec<String>,
    pub max_valid_per_device: Option<u32>,
    #[serde(serialize_with = "optional_seconds")]
    pub revoke_superseded_after: Option<u64>,
    pub renewal_window: u8,
    pub allow_key_reuse: bool,
    pub okta_device_access: bool,
    #[serde(serialize_with = "seconds")]
    pub crl_next_update: u64,
    #[serde(serialize_with = "seconds")]
    pub crl_keep_expired: u64,
    #[serde(serialize_with = "seconds")]
    pub not_before_backdate: u64,
    #[serde(flatten)]
    pub webhook: crate::webhook::WebhookSettings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&toml::to_string(self).unwrap_or_default())
    }
}

/// Durations print as the file takes them: `"86400s"`.
fn seconds<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v}s"))
}

fn optional_seconds<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => seconds(v, s),
        None => s.serialize_none(),
    }
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A store location without its password.
fn location<S: serde::Serializer>(v: &Option<crate::store::StoreLocation>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(location) => s.serialize_str(&location.to_string()),
        None => s.serialize_none(),
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA: &str = "./scepd-data";
/// Open connections one source may hold by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 256;

/// 2 MiB, like the other SCEP servers.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

impl Config {
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => ServeArgs::default(),
        };
        let webhook = webhook_settings(args, &file)?;
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .map(|u| u.trim_end_matches('/').to_string());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "public_url {url:?} must start with http:// or https://"
                )));
            }
        }
        let min_key_bits = args.min_key_bits.or(file.min_key_bits).unwrap_or(2048);
        if !(1024..=8192).contains(&min_key_bits) {
            return Err(ConfigError::Invalid(
                "min_key_bits must be between 1024 and 8192".into(),
            ));
        }
        let cert_validity_days = args.cert_validity_days.or(file.cert_validity_days).unwrap_or(365);
        if cert_validity_days == 0 {
            return Err(ConfigError::Invalid("cert_validity_days must be at least 1".into()));
        }
        let challenge_max_ttl = args.challenge_max_ttl.or(file.challenge_max_ttl).unwrap_or(86_400);
        let challenge_ttl = args.challenge_ttl.or(file.challenge_ttl).unwrap_or(3_600);
        if challenge_ttl == 0 || challenge_ttl > challenge_max_ttl {
            return Err(ConfigError::Invalid(
                "challenge_ttl must be between 1 and challenge_max_ttl".into(),
            ));
        }
        let tls_listen = args.tls_listen.or(file.tls_listen);
        let tls_cert = args.tls_cert.clone().or(file.tls_cert);
        let tls_key = args.tls_key.clone().or(file.tls_key);
        if tls_listen.is_some() && (tls_cert.is_none() || tls_key.is_none()) {
            return Err(ConfigError::Invalid("tls_listen needs tls_cert and tls_key".into()));
        }
        let admin_tls_only = args.admin_tls_only.or(file.admin_tls_only).unwrap_or(false);
        if admin_tls_only && tls_listen.is_none() {
            return Err(ConfigError::Invalid("admin_tls_only needs tls_listen".into()));
        }
        let renewal_window = args.renewal_window.or(file.renewal_window).unwrap_or(33);
        if !(1..=100).contains(&renewal_window) {
            return Err(ConfigError::Invalid("renewal_window is a percentage, 1 to 100".into()));
        }
        if args.max_valid_per_device.or(file.max_valid_per_device) == Some(0) {
            return Err(ConfigError::Invalid("max_valid_per_device must be at least 1".into()));
        }
        let crl_next_update = parse_duration(
            args.crl_next_update
                .as_deref()
                .or(file.crl_next_update.as_deref())
                .unwrap_or("24h"),
        )?;
        if crl_next_update == 0 {
            return Err(ConfigError::Invalid("crl_next_update must be at least a second".into()));
        }
        let static_challenge = match (
            args.static_challenge.clone().or(file.static_challenge),
            args.static_challenge_file
                .as_deref()
                .or(file.static_challenge_file.as_deref()),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "give static_challenge or static_challenge_file, not both".into(),
                ))
            }
            (Some(value), None) => Some(value),
            (None, Some(path)) => Some(read_static_challenge(path)?),
            (None, None) => None,
        };
        let max_connections = args.max_connections.or(file.max_connections).unwrap_or(4096).max(1);
        let max_connections_per_source = args
            .max_connections_per_source
            .or(file.max_connections_per_source)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_SOURCE)
            .clamp(1, (max_connections / 2).max(1));
        let trusted_proxies = args
            .trusted_proxies
            .clone()
            .or(file.trusted_proxies)
            .unwrap_or_default();
        for proxy in &trusted_proxies {
            crate::http::AddressRange::parse(proxy).map_err(ConfigError::Invalid)?;
        }
        let san_patterns = args.san_patterns.clone().or(file.san_patterns).unwrap_or_default();
        for pattern in &san_patterns {
            san::parse_pattern(pattern).map_err(ConfigError::Invalid)?;
        }
        // Five minutes: the clock skew Kerberos tolerates by default, ample for a device whose
        // NTP has not run yet, and nothing against a certificate lifetime of months.
        let not_before_backdate = parse_duration(
            args.not_before_backdate
                .as_deref()
                .or(file.not_before_backdate.as_deref())
                .unwrap_or("5m"),
        )?;
        if not_before_backdate > 86_400 {
            return Err(ConfigError::Invalid("not_before_backdate must be at most 1d".into()));
        }
        let store = args
            .store_url
            .as_deref()
            .or(file.store_url.as_deref())
            .map(crate::store::StoreLocation::parse)
            .transpose()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let store_pool_size = args
            .store_pool_size
            .or(file.store_pool_size)
            .unwrap_or(crate::store::DEFAULT_POOL_SIZE);
        if !(1..=1000).contains(&store_pool_size) {
            return Err(ConfigError::Invalid(
                "store_pool_size must be between 1 and 1000".into(),
            ));
        }
        Ok(Config {
            webhook,
            store,
            store_pool_size,
            device_id_field: args.device_id_field.or(file.device_id_field).unwrap_or_default(),
            unbound_reenrollment: args
                .unbound_reenrollment
                .or(file.unbound_reenrollment)
                .unwrap_or_default(),
            san_types: args
                .san_types
                .clone()
                .or(file.san_types)
                .unwrap_or_else(|| san::DEFAULT_SAN_TYPES.to_vec()),
            san_patterns,
            max_valid_per_device: args.max_valid_per_device.or(file.max_valid_per_device),
            revoke_superseded_after: args
                .revoke_superseded_after
                .as_deref()
                .or(file.revoke_superseded_after.as_deref())
                .map(parse_duration)
                .transpose()?,
            renewal_window,
            allow_key_reuse: args.allow_key_reuse.or(file.allow_key_reuse).unwrap_or(false),
            okta_device_access: args.okta_device_access.or(file.okta_device_access).unwrap_or(false),
            crl_next_update,
            crl_keep_expired: parse_duration(
                args.crl_keep_expired
                    .as_deref()
                    .or(file.crl_keep_expired.as_deref())
                    .unwrap_or("0s"),
            )?,
            not_before_backdate,
            challenge_ttl,
            challenge_max_ttl,
            challenge_sweep_interval: args
                .challenge_sweep_interval
                .or(file.challenge_sweep_interval)
                .unwrap_or(60)
                .max(1),
            auth_failures_per_minute: args
                .auth_failures_per_minute
                .or(file.auth_failures_per_minute)
                .unwrap_or(10),
            challenge_failures_per_minute: args
                .challenge_failures_per_minute
                .or(file.challenge_failures_per_minute)
                .unwrap_or(30),
            max_connections,
            max_connections_per_source,
            trusted_proxies,
            max_queued_operations: args
                .max_queued_operations
                .or(file.max_queued_operations)
                .unwrap_or(256)
                .max(1),
            request_timeout: args.request_timeout.or(file.request_timeout).unwrap_or(60).max(1),
            metrics_listen: args.metrics_listen.or(file.metrics_listen),
            tls_listen,
            tls_cert,
            tls_key,
            admin_tls_only,
            data: args.data.clone().or(file.data).unwrap_or_else(|| DEFAULT_DATA.into()),
            listen,
            public_url,
            static_challenge,
            allow_des: args.allow_des.or(file.allow_des).unwrap_or(false),
            insecure_no_challenge: args
                .insecure_no_challenge
                .or(file.insecure_no_challenge)
                .unwrap_or(false),
            min_key_bits,
            cert_validity_days,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log_level: args
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            key_passphrase_file: args.key_passphrase_file.clone().or(file.key_passphrase_file),
            pkcs11_pin_file: args.pkcs11_pin_file.clone().or(file.pkcs11_pin_file),
        })
    }
}

/// The `webhook_*` keys.
fn webhook_settings(args: &ServeArgs, file: &ServeArgs) -> Result<crate::webhook::WebhookSettings, ConfigError> {
    let defaults = crate::webhook::WebhookSettings::default();
    let duration = |arg: &Option<String>, file: &Option<String>, default: u64| {
        arg.as_deref().or(file.as_deref()).map_or(Ok(default), parse_duration)
    };
    Ok(crate::webhook::WebhookSettings {
        retry_initial: duration(
            &args.webhook_retry_initial,
            &file.webhook_retry_initial,
            defaults.retry_initial,
        )?
        .max(1),
        retry_for: duration(&args.webhook_retry_for, &file.webhook_retry_for, defaults.retry_for)?,
        rotation_overlap: duration(
            &args.webhook_rotation_overlap,
            &file.webhook_rotation_overlap,
            defaults.rotation_overlap,
        )?,
        expiring_lead: duration(
            &args.webhook_expiring_lead,
            &file.webhook_expiring_lead,
            defaults.expiring_lead,
        )?,
        rejection_summary_interval: duration(
            &args.webhook_rejection_summary_interval,
            &file.webhook_rejection_summary_interval,
            defaults.rejection_summary_interval,
        )?
        .max(1),
        ca_file: args.webhook_ca_file.clone().or(file.webhook_ca_file.clone()),
        ..defaults
    })
}

impl Config {
    /// The SAN policy the service applies.
    pub fn san_policy(&self) -> SanPolicy {
        SanPolicy {
            types: self.san_types.clone(),
            patterns: self
                .san_patterns
                .iter()
                .filter_map(|p| san::parse_pattern(p).ok())
                .collect(),
        }
    }
}

/// The static challenge from a file: its first line (a trailing newline is not part of it).
fn read_static_challenge(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    let value = text.lines().next().unwrap_or_default().to_string();
    if value.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{}: the static challenge is empty",
            path.display()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scepd.toml");
        std::fs::write(
            &path,
            "min_key_bits = 1024\ncert_validity_days = 30\nstatic_challenge = \"abc\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            cert_validity_days: Some(7),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.min_key_bits, 1024);
        assert_eq!(c.cert_validity_days, 7);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("30d").unwrap(), 2_592_000);
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scepd.toml");
        std::fs::write(&path, "min_key_bitz = 1024\n").unwrap();
        assert!(Config::resolve(&ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .is_err());
    }
}
