//! What a requester makes: PKCS#10 requests (the CA's own, for a delegated setup; a SCEP
//! client's, for tests and the load benchmark) and the self-signed certificate a SCEP client
//! signs its first request with.

use der::asn1::{PrintableString, Utf8StringRef};
use der::Encode;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::attributes::ChallengePassword;
use x509_cert::request::RequestBuilder;
use x509_cert::Certificate;

use crate::authority::{build, spki_of};
use crate::error::CaError;
use crate::extensions::FixedProfile;
use crate::private_key::PrivateKey;
use crate::serial::Serial;
use crate::signer::sign_tbs;
use crate::time;

/// A CSR for a CA key, for an external root to sign (two-step delegated CA setup).
pub fn ca_csr(subject: &Name, key: &dyn PrivateKey) -> Result<Vec<u8>, CaError> {
    let mut builder = RequestBuilder::new(subject.clone())?;
    builder.add_extension(&BasicConstraints {
        ca: true,
        path_len_constraint: Some(0),
    })?;
    builder.add_extension(&KeyUsage(
        KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
    ))?;
    Ok(sign_tbs(builder, key)?.to_der()?)
}

/// A client CSR, as a SCEP client makes it: subject, optional challengePassword and
/// optional extra requested extensions (a subjectAltName, say).
pub fn client_csr(
    subject: &Name,
    key: &dyn PrivateKey,
    challenge: Option<&str>,
    extensions: &[Extension],
) -> Result<Vec<u8>, CaError> {
    let mut builder = RequestBuilder::new(subject.clone())?;
    if let Some(challenge) = challenge {
        let value = match PrintableString::new(challenge) {
            Ok(p) => DirectoryString::PrintableString(p),
            Err(_) => DirectoryString::Utf8String(Utf8StringRef::new(challenge)?.as_str().to_string()),
        };
        builder.add_attribute(&ChallengePassword(value))?;
    }
    for ext in extensions {
        builder.add_extension(ext.clone())?;
    }
    Ok(sign_tbs(builder, key)?.to_der()?)
}

/// The throwaway self-signed certificate a SCEP client signs its PKCSReq with.
pub fn self_signed(subject: &Name, key: &dyn PrivateKey) -> Result<Certificate, CaError> {
    let now = time::unix_now();
    build(
        FixedProfile {
            issuer: subject.clone(),
            subject: subject.clone(),
            extensions: Vec::new(),
        },
        Serial::fresh(),
        now.saturating_sub(3600),
        now + 86_400,
        spki_of(key)?,
        key,
    )
}
