//! Configuration: flags > `SCEPD_*` environment variables > TOML file > defaults.
//!
//! Every key of the TOML file has a flag and an environment variable of the same name
//! (`min_key_bits` ↔ `--min-key-bits` ↔ `SCEPD_MIN_KEY_BITS`). clap merges flags and the
//! environment; this module lays the file and the defaults under them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

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
    /// HTTP listen address.
    #[arg(long, env = "SCEPD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Public base URL clients reach this server at (CRL distribution points are built from it).
    #[arg(long, env = "SCEPD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Accept this static challenge password.
    #[arg(long, env = "SCEPD_STATIC_CHALLENGE", hide_env_values = true)]
    pub static_challenge: Option<String>,
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
}

/// The effective configuration.
#[derive(Clone, Serialize)]
pub struct Config {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub public_url: String,
    #[serde(serialize_with = "redact")]
    pub static_challenge: Option<String>,
    pub allow_des: bool,
    pub insecure_no_challenge: bool,
    pub min_key_bits: usize,
    pub cert_validity_days: u32,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_body_bytes: usize,
    pub challenge_ttl: u64,
    pub challenge_max_ttl: u64,
    pub challenge_sweep_interval: u64,
    pub auth_failures_per_minute: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&toml::to_string(self).unwrap_or_default())
    }
}

fn redact<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA: &str = "./scepd-data";
/// 2 MiB, like the other SCEP servers.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

fn read_file(path: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
}

impl Config {
    pub fn resolve(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(p) => read_file(p)?,
            None => ServeArgs::default(),
        };
        let listen = args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!("public_url {public_url:?} must start with http:// or https://")));
        }
        let min_key_bits = args.min_key_bits.or(file.min_key_bits).unwrap_or(2048);
        if !(1024..=8192).contains(&min_key_bits) {
            return Err(ConfigError::Invalid("min_key_bits must be between 1024 and 8192".into()));
        }
        let cert_validity_days = args.cert_validity_days.or(file.cert_validity_days).unwrap_or(365);
        if cert_validity_days == 0 {
            return Err(ConfigError::Invalid("cert_validity_days must be at least 1".into()));
        }
        let challenge_max_ttl = args.challenge_max_ttl.or(file.challenge_max_ttl).unwrap_or(86_400);
        let challenge_ttl = args.challenge_ttl.or(file.challenge_ttl).unwrap_or(3_600);
        if challenge_ttl == 0 || challenge_ttl > challenge_max_ttl {
            return Err(ConfigError::Invalid("challenge_ttl must be between 1 and challenge_max_ttl".into()));
        }
        Ok(Config {
            challenge_ttl,
            challenge_max_ttl,
            challenge_sweep_interval: args.challenge_sweep_interval.or(file.challenge_sweep_interval).unwrap_or(60).max(1),
            auth_failures_per_minute: args.auth_failures_per_minute.or(file.auth_failures_per_minute).unwrap_or(10),
            data: args.data.clone().or(file.data).unwrap_or_else(|| DEFAULT_DATA.into()),
            listen,
            public_url,
            static_challenge: args.static_challenge.clone().or(file.static_challenge),
            allow_des: args.allow_des.or(file.allow_des).unwrap_or(false),
            insecure_no_challenge: args.insecure_no_challenge.or(file.insecure_no_challenge).unwrap_or(false),
            min_key_bits,
            cert_validity_days,
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            log_level: args.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".into()),
            max_body_bytes: args.max_body_bytes.or(file.max_body_bytes).unwrap_or(DEFAULT_MAX_BODY_BYTES),
        })
    }

    pub fn crl_url(&self) -> String {
        format!("{}/crl", self.public_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scepd.toml");
        std::fs::write(&path, "min_key_bits = 1024\ncert_validity_days = 30\nstatic_challenge = \"abc\"\n").unwrap();
        let args = ServeArgs { config: Some(path), cert_validity_days: Some(7), ..Default::default() };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.min_key_bits, 1024);
        assert_eq!(c.cert_validity_days, 7);
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.crl_url(), "http://127.0.0.1:8080/crl");
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scepd.toml");
        std::fs::write(&path, "min_key_bitz = 1024\n").unwrap();
        assert!(Config::resolve(&ServeArgs { config: Some(path), ..Default::default() }).is_err());
    }
}
