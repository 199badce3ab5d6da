//! Digest and RSA signature algorithms accepted in requests.
//!
//! Verification uses aws-lc-rs: it is several times faster than the `rsa` crate and still
//! verifies the 1024-bit keys that Apple devices make with their default SCEP Keysize.

use aws_lc_rs::signature::{self, RsaParameters, UnparsedPublicKey};
use const_oid::ObjectIdentifier;

use super::oids;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        Some(match *oid {
            oids::SHA1 => DigestAlg::Sha1,
            oids::SHA256 => DigestAlg::Sha256,
            oids::SHA384 => DigestAlg::Sha384,
            oids::SHA512 => DigestAlg::Sha512,
            _ => return None,
        })
    }

    /// The digest named by a `shaNWithRSAEncryption` signature algorithm.
    pub fn from_rsa_signature_oid(oid: &ObjectIdentifier) -> Option<DigestAlg> {
        Some(match *oid {
            oids::SHA1_WITH_RSA => DigestAlg::Sha1,
            oids::SHA256_WITH_RSA => DigestAlg::Sha256,
            oids::SHA384_WITH_RSA => DigestAlg::Sha384,
            oids::SHA512_WITH_RSA => DigestAlg::Sha512,
            _ => return None,
        })
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            DigestAlg::Sha1 => oids::SHA1,
            DigestAlg::Sha256 => oids::SHA256,
            DigestAlg::Sha384 => oids::SHA384,
            DigestAlg::Sha512 => oids::SHA512,
        }
    }

    /// The `shaNWithRSAEncryption` OID for this digest.
    pub fn rsa_signature_oid(self) -> ObjectIdentifier {
        match self {
            DigestAlg::Sha1 => oids::SHA1_WITH_RSA,
            DigestAlg::Sha256 => oids::SHA256_WITH_RSA,
            DigestAlg::Sha384 => oids::SHA384_WITH_RSA,
            DigestAlg::Sha512 => oids::SHA512_WITH_RSA,
        }
    }

    /// PKCS#1 v1.5 signing with this digest. scepd does not sign with SHA-1 (it never needs
    /// to: SHA-1 requests come from clients, and are tested with micromdm's scepclient).
    pub fn signature_hash(self) -> Option<scepd_ca::SignatureHash> {
        match self {
            DigestAlg::Sha1 => None,
            DigestAlg::Sha256 => Some(scepd_ca::SignatureHash::Sha256),
            DigestAlg::Sha384 => Some(scepd_ca::SignatureHash::Sha384),
            DigestAlg::Sha512 => Some(scepd_ca::SignatureHash::Sha512),
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            DigestAlg::Sha1 => &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            DigestAlg::Sha256 => &aws_lc_rs::digest::SHA256,
            DigestAlg::Sha384 => &aws_lc_rs::digest::SHA384,
            DigestAlg::Sha512 => &aws_lc_rs::digest::SHA512,
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }

    fn rsa_parameters(self) -> &'static RsaParameters {
        match self {
            DigestAlg::Sha1 => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            DigestAlg::Sha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            // aws-lc-rs has no 1024-bit SHA-384 variant; no client pairs the two.
            DigestAlg::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            DigestAlg::Sha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        }
    }

    /// Verifies a PKCS#1 v1.5 signature over `message`. `rsa_public_key` is the PKCS#1
    /// RSAPublicKey (the bytes of an rsaEncryption SubjectPublicKeyInfo's BIT STRING).
    pub fn verify_rsa(self, rsa_public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.rsa_parameters(), rsa_public_key)
            .verify(message, signature)
            .is_ok()
    }
}
