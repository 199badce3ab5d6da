//! The HTTPS listener's certificate: loaded from PEM files, swapped on SIGHUP without dropping
//! connections (handshakes after the swap get the new certificate; open connections keep going).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{0}: {1}")]
    Pem(PathBuf, String),
    #[error("{0}: no certificate")]
    NoCertificate(PathBuf),
    #[error("TLS key/certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate in use, replaceable at run time.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e: rustls_pki_types::pem::Error| TlsError::Pem(p.clone(), e.to_string())
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(pem_err(cert_path))?
        .collect::<Result<_, _>>()
        .map_err(pem_err(cert_path))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(pem_err(key_path))?;
    Ok(Arc::new(CertifiedKey::from_der(certs, key, &provider())?))
}

impl ReloadableCert {
    pub fn new(cert_path: &Path, key_path: &Path) -> Result<ReloadableCert, TlsError> {
        let current = RwLock::new(load(cert_path, key_path)?);
        Ok(ReloadableCert {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            current,
        })
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.cert_path, &self.key_path)?;
        *self.current.write().expect("certificate lock") = fresh;
        Ok(())
    }

    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("certificate lock")))
    }
}
