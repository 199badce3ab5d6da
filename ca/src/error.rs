use thiserror::Error;

/// Everything that can go wrong inside the CA core.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("key generation failed")]
    KeyGeneration,
    #[error("private key rejected: {0}")]
    KeyRejected(String),
    #[error("signing failed")]
    Signing,
    #[error("unsupported key size {0} (use 2048, 3072 or 4096)")]
    KeySize(u32),
    #[error("invalid distinguished name {0:?}: {1}")]
    Name(String, String),
    #[error("PEM: {0}")]
    Pem(String),
    #[error("encoding: {0}")]
    Der(#[from] der::Error),
    #[error("certificate builder: {0}")]
    Builder(String),
    #[error("the certificate does not match the private key")]
    KeyMismatch,
    #[error("the certificate is not a CA certificate (basicConstraints CA:true missing)")]
    NotCa,
    #[error("the certificate's keyUsage lacks keyCertSign")]
    NoKeyCertSign,
    #[error("the certificate is not an RSA certificate")]
    NotRsa,
    #[error("the CA certificate has expired")]
    Expired,
}

impl From<x509_cert::builder::Error> for CaError {
    fn from(e: x509_cert::builder::Error) -> Self {
        CaError::Builder(e.to_string())
    }
}
