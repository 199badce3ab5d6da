//! `scepd-ca`: the certificate authority core of scepd.
//!
//! Keys, issuance policy turned into X.509, serial numbers, and (later) CRL and OCSP building.
//! This crate is pure: no async, no files, no HTTP. Callers hand it bytes and get bytes back.
//!
//! Private-key operations go through aws-lc-rs ([`RsaKey`]): it is several times faster than the
//! pure-Rust `rsa` crate for RSA-2048 signing and decryption, which dominate the cost of an enrollment.

mod authority;
pub mod crl;
mod error;
mod extensions;
mod issuer;
mod key;
pub mod name;
pub mod ocsp;
pub mod pem;
mod private_key;
mod reason;
pub mod request;
mod serial;
mod signer;
pub mod time;

pub use authority::{check_ca_certificate, Authority, CaParams, Identity, ImportWarning, LeafRequest};
pub use error::CaError;
pub use extensions::{Okta, OKTA_DEVICE_ACCESS_OID};
pub use issuer::{IssuerId, IssuerIdError};
pub use key::{rsa_spki_der, KeyBits, RsaKey};
pub use private_key::{KeyCustody, KeyGenerator, KeyRole, PrivateKey, SignatureHash, SoftwareKeys};
pub use reason::Reason;
pub use serial::{Serial, SerialError};
pub use signer::sign_tbs;

/// Re-exported so that callers name the same types this crate builds with.
pub use x509_cert::Certificate;
