//! The HTTP client that delivers webhooks: one POST, bounded in every direction.
//!
//! The host is resolved here and every address checked ([`Target::check`]) before connecting,
//! and the connection goes to the address checked (no second resolution a DNS rebinding could
//! change). Connect and response timeouts; redirects are not followed (a 3xx is a failure);
//! at most [`MAX_RESPONSE_BYTES`] of the response body are read. TLS through rustls with the
//! system's roots, or a configured CA file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::target::{Target, TargetError};

/// What is read of a receiver's answer: enough for an error message, nothing more.
pub const MAX_RESPONSE_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("timed out ({0})")]
    Timeout(&'static str),
    /// The receiver answered, but not with 2xx.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

impl DeliveryError {
    /// The receiver's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Addresses of a receiver tried per attempt, at most.
pub const MAX_ADDRESSES_TRIED: usize = 3;

/// The settings of the delivery client.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    /// For the response's head, and again for its body.
    pub response_timeout: Duration,
}

pub struct DeliveryClient {
    tls: tokio_rustls::TlsConnector,
    settings: ClientSettings,
}

/// A delivery-client configuration error (the CA file).
#[derive(Debug, thiserror::Error)]
#[error("webhook CA file {path}: {why}")]
pub struct TlsConfigError {
    path: String,
    why: String,
}

impl DeliveryClient {
    /// Trusts the system's roots, or only the certificates of `ca_file` when given.
    pub fn new(settings: ClientSettings, ca_file: Option<&Path>) -> Result<DeliveryClient, TlsConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        let certs: Vec<CertificateDer<'static>> = match ca_file {
            None => rustls_native_certs::load_native_certs().certs,
            Some(path) => CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| TlsConfigError {
                    path: path.display().to_string(),
                    why: e.to_string(),
                })?,
        };
        roots.add_parsable_certificates(certs);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError {
                path: String::new(),
                why: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(DeliveryClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            settings,
        })
    }

    /// The addresses of `target` that it may be sent to (all, or an error naming a refused one).
    /// Every one is checked, though at most [`MAX_ADDRESSES_TRIED`] are tried.
    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, DeliveryError> {
        let addrs: Vec<SocketAddr> = match target.host.parse() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::time::timeout(
                self.settings.connect_timeout,
                tokio::net::lookup_host((target.host.as_str(), target.port)),
            )
            .await
            .map_err(|_| DeliveryError::Timeout("DNS"))?
            .map_err(|e| TargetError::Resolve {
                host: target.host.clone(),
                why: e.to_string(),
            })?
            .collect(),
        };
        // One refused address refuses the name: a receiver's name has no business pointing at
        // a metadata service, and picking among its addresses would hide that.
        for addr in &addrs {
            target.check(addr.ip())?;
        }
        if addrs.is_empty() {
            return Err(TargetError::Resolve {
                host: target.host.clone(),
                why: "no address".into(),
            }
            .into());
        }
        Ok(addrs)
    }

    /// POSTs `body` with `headers`; Ok(status) for a 2xx answer.
    pub async fn post(&self, target: &Target, headers: &[(&str, String)], body: Bytes) -> Result<u16, DeliveryError> {
        let addrs = self.resolve(target).await?;
        let mut last = DeliveryError::Connect("no address".into());
        // A few of its addresses at most: a receiver's owner controls its DNS, and trying many
        // one after the other could outlast the delivery's lease (another node would send too).
        for addr in addrs.into_iter().take(MAX_ADDRESSES_TRIED) {
            match tokio::time::timeout(self.settings.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => return self.send(target, tcp, headers, body).await,
                Ok(Err(e)) => last = DeliveryError::Connect(format!("{addr}: {e}")),
                Err(_) => last = DeliveryError::Timeout("connect"),
            }
        }
        Err(last)
    }

    async fn send(
        &self,
        target: &Target,
        tcp: TcpStream,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, DeliveryError> {
        if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| DeliveryError::Tls(e.to_string()))?;
            let tls = tokio::time::timeout(self.settings.connect_timeout, self.tls.connect(name, tcp))
                .await
                .map_err(|_| DeliveryError::Timeout("TLS handshake"))?
                .map_err(|e| DeliveryError::Tls(e.to_string()))?;
            self.exchange(target, TokioIo::new(tls), headers, body).await
        } else {
            self.exchange(target, TokioIo::new(tcp), headers, body).await
        }
    }

    async fn exchange<IO>(
        &self,
        target: &Target,
        io: IO,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<u16, DeliveryError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io)
            .await
            .map_err(|e| DeliveryError::Http(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let host = if (target.https && target.port == 443) || (!target.https && target.port == 80) {
            host_header(&target.host)
        } else {
            format!("{}:{}", host_header(&target.host), target.port)
        };
        let mut request = hyper::Request::post(target.path_and_query.as_str())
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, concat!("scepd/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| DeliveryError::Http(e.to_string()))?;
        let timeout = self.settings.response_timeout;
        let result = async {
            let response = tokio::time::timeout(timeout, sender.send_request(request))
                .await
                .map_err(|_| DeliveryError::Timeout("response"))?
                .map_err(|e| DeliveryError::Http(e.to_string()))?;
            let status = response.status().as_u16();
            // Read at most the cap, then stop: a receiver cannot make scepd hold a large body.
            let mut body = response.into_body();
            let mut text = Vec::new();
            let read = async {
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    if let Some(data) = frame.data_ref() {
                        text.extend_from_slice(&data[..data.len().min(MAX_RESPONSE_BYTES - text.len())]);
                        if text.len() >= MAX_RESPONSE_BYTES {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(timeout, read).await;
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                Err(DeliveryError::Status {
                    status,
                    body: String::from_utf8_lossy(&text).chars().take(200).collect(),
                })
            }
        }
        .await;
        driver.abort();
        result
    }
}

fn host_header(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
