//! TLS to PostgreSQL, with libpq's `sslmode` meanings (rustls; tokio-postgres itself knows only
//! disable/prefer/require and rejects the other URL parameters, so they are taken out here):
//!
//! - `disable`: plain TCP.
//! - `prefer` (the default) and `require`: encrypted (`prefer` falls back to plain TCP when the
//!   server has no TLS), the server certificate not checked — as libpq does, and logged as a
//!   warning for `require`; with `sslrootcert`, `require` checks the chain as `verify-ca`.
//! - `verify-ca`: the chain must lead to `sslrootcert`.
//! - `verify-full`: and the certificate must name the host.
//!
//! `sslrootcert` is a PEM file, or `system` for the operating system's roots.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::super::StoreError;

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    Nothing,
    Chain,
    ChainAndHost,
}

/// The TLS part of a store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// What tokio-postgres is told: `disable`, `prefer` or `require`.
    pub mode: &'static str,
    pub verify: Verify,
    pub root_cert: Option<String>,
}

fn invalid(message: String) -> StoreError {
    StoreError::Config(format!("store URL: {message}"))
}

/// Splits `url` into the URL tokio-postgres takes and the TLS settings.
pub fn split_url(url: &str) -> Result<(String, TlsSettings), StoreError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let (mut sslmode, mut root_cert) = ("prefer".to_string(), None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => sslmode = value.to_string(),
            Some(("sslrootcert", value)) => root_cert = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let (mode, verify) = match (sslmode.as_str(), &root_cert) {
        ("disable", _) => ("disable", Verify::Nothing),
        ("prefer", None) => ("prefer", Verify::Nothing),
        ("require", None) => ("require", Verify::Nothing),
        ("prefer" | "require" | "verify-ca", Some(_)) => ("require", Verify::Chain),
        ("verify-full", Some(_)) => ("require", Verify::ChainAndHost),
        ("verify-ca" | "verify-full", None) => {
            return Err(invalid(format!(
                "sslmode={sslmode} needs sslrootcert=FILE (or sslrootcert=system)"
            )))
        }
        (other, _) => {
            return Err(invalid(format!(
                "sslmode={other:?}: expected disable, prefer, require, verify-ca or verify-full"
            )))
        }
    };
    kept.push(match mode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((
        format!("{base}?{}", kept.join("&")),
        TlsSettings {
            mode,
            verify,
            root_cert,
        },
    ))
}

/// `%2F` and the like in a URL parameter (a file path).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for these settings.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("TLS: {e}")))?;
    let chain = match (&settings.root_cert, settings.verify) {
        (Some(roots), Verify::Chain | Verify::ChainAndHost) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(root_store(roots)?), Arc::clone(&provider))
                .build()
                .map_err(|e| StoreError::Config(format!("sslrootcert: {e}")))?,
        ),
        _ => {
            if settings.mode == "require" {
                tracing::warn!("sslmode=require without sslrootcert: the connection to PostgreSQL is encrypted but the server is not authenticated");
            }
            None
        }
    };
    let verifier = ServerCheck {
        chain,
        check_host: settings.verify == Verify::ChainAndHost,
        provider,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn root_store(source: &str) -> Result<rustls::RootCertStore, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = if source == "system" {
        rustls_native_certs::load_native_certs().certs
    } else {
        let path = PathBuf::from(source);
        CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .map_err(|e| StoreError::Config(format!("sslrootcert {}: {e}", path.display())))?
    };
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(StoreError::Config(format!("sslrootcert {source}: no certificate")));
    }
    Ok(roots)
}

/// What is checked of the server's certificate: nothing (libpq's `prefer` and `require`
/// without a root), its chain (`verify-ca`), or its chain and host name (`verify-full`). The
/// handshake's own signatures are always checked.
#[derive(Debug)]
struct ServerCheck {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_host: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_follow_libpq() {
        let (url, tls) =
            split_url("postgres://u@h/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(url, "postgres://u@h/db?application_name=x&sslmode=require");
        assert_eq!(
            (tls.verify, tls.root_cert.as_deref()),
            (Verify::ChainAndHost, Some("/etc/ca.pem"))
        );
        assert_eq!(split_url("postgres://u@h/db").unwrap().1.verify, Verify::Nothing);
        assert_eq!(
            split_url("postgres://u@h/db").unwrap().0,
            "postgres://u@h/db?sslmode=prefer"
        );
        assert_eq!(
            split_url("postgres://u@h/db?sslmode=require&sslrootcert=system")
                .unwrap()
                .1
                .verify,
            Verify::Chain
        );
        assert!(split_url("postgres://u@h/db?sslmode=verify-ca").is_err());
        assert!(split_url("postgres://u@h/db?sslmode=allow").is_err());
    }
}
