//! Where private keys are kept besides this process: PKCS#11 tokens, named by RFC 7512 URIs.
//! The CA core sees every key as a `scepd_ca::PrivateKey`, wherever it is.

pub mod imported;
pub mod metered;
pub mod pkcs11;
pub mod uri;
