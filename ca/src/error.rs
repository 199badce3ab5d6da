use thiserror::Error;

/// Everything that can go wrong inside the CA core.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("key generation failed")]
    /// The RNG or aws-lc failed to make a key pair.
    KeyGeneration,
    #[error("private key rejected: {0}")]
    /// A private key that aws-lc does not accept.
    KeyRejected(String),
    #[error("the private key is unavailable")]
    /// The key's holder (a token) failed, whatever was asked of it.
    KeyUnavailable,
    #[error("signing failed")]
    /// A signature could not be made.
    Signing,
    #[error("unsupported key size {0} (use 2048, 3072 or 4096)")]
    /// An RSA key size scepd does not make.
    KeySize(u32),
    #[error("invalid distinguished name {0:?}: {1}")]
    /// A distinguished name that does not parse: the text and why.
    Name(String, String),
    #[error("PEM: {0}")]
    /// PEM that does not decode.
    Pem(String),
    #[error("encoding: {0}")]
    /// DER encoding or decoding failed.
    Der(#[from] der::Error),
    #[error("certificate builder: {0}")]
    /// x509-cert's builder refused the certificate.
    Builder(String),
    #[error("the certificate does not match the private key")]
    /// A certificate and a private key that are not a pair.
    KeyMismatch,
    #[error("the certificate is not a CA certificate (basicConstraints CA:true missing)")]
    /// A CA certificate without basicConstraints CA:true.
    NotCa,
    #[error("the certificate's keyUsage lacks keyCertSign")]
    /// A CA certificate that may not sign certificates.
    NoKeyCertSign,
    #[error("the certificate is not an RSA certificate")]
    /// A certificate whose key is not RSA.
    NotRsa,
    #[error("the CA certificate has expired")]
    /// A CA certificate past its notAfter.
    Expired,
}

impl From<x509_cert::builder::Error> for CaError {
    fn from(e: x509_cert::builder::Error) -> Self {
        CaError::Builder(e.to_string())
    }
}
