//! Drives x509-cert's builders (certificates, CSRs, CRLs) with an aws-lc-rs key.
//!
//! The builders split signing into `finalize` (the to-be-signed bytes) and `assemble`, so the
//! signature itself is made by [`PrivateKey::sign_sha256`] rather than through the `signature` traits.

use der::asn1::BitString;
use spki::{AlgorithmIdentifier, EncodePublicKey, SignatureAlgorithmIdentifier};
use x509_cert::builder::Builder;

use crate::error::CaError;
use crate::private_key::PrivateKey;

/// The public half handed to the builders; they only read it back as SPKI DER.
#[derive(Clone)]
pub(crate) struct SpkiDer(Vec<u8>);

impl EncodePublicKey for SpkiDer {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        Ok(der::Document::try_from(self.0.as_slice())?)
    }
}

/// Identifies a signer to the builders: its public key and sha256WithRSAEncryption.
pub(crate) struct BuilderSigner(SpkiDer);

impl signature::Keypair for BuilderSigner {
    type VerifyingKey = SpkiDer;
    fn verifying_key(&self) -> SpkiDer {
        self.0.clone()
    }
}

impl SignatureAlgorithmIdentifier for BuilderSigner {
    type Params = der::asn1::Null;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<der::asn1::Null> = AlgorithmIdentifier {
        oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(der::asn1::Null),
    };
}

/// Finalizes `builder`, signs the to-be-signed bytes with `key` (RSA PKCS#1 v1.5, SHA-256) and
/// assembles the result.
pub fn sign_tbs<B: Builder>(mut builder: B, key: &dyn PrivateKey) -> Result<B::Output, CaError> {
    let signer = BuilderSigner(SpkiDer(key.public_key_spki_der()));
    let tbs = builder.finalize(&signer)?;
    let signature = key.sign_sha256(&tbs)?;
    Ok(builder.assemble(BitString::from_bytes(&signature)?, &signer)?)
}
