//! The wire format against real bytes: request messages captured from real clients
//! (`tests/vectors/`, see its README.md) with the CA and RA that received them. Every expected
//! value comes from the vector's `.expected` file, which OpenSSL wrote at capture time.

mod replies;
mod requests;

use der::Decode;
use scepd_ca::{Certificate, Identity, RsaKey};

use super::cipher::ContentCipher;
use super::digest::DigestAlg;
use super::envelope::CipherPolicy;

/// A captured request and what OpenSSL read in it.
pub struct Vector {
    pub name: &'static str,
    pub message: &'static [u8],
    expected: &'static str,
}

macro_rules! vector {
    ($name:literal) => {
        Vector {
            name: $name,
            message: include_bytes!(concat!("../../../tests/vectors/", $name, ".der")),
            expected: include_str!(concat!("../../../tests/vectors/", $name, ".expected")),
        }
    };
}

pub const SCEPCLIENT: Vector = vector!("scepclient");
pub const CERTMONGER: Vector = vector!("certmonger");
pub const SSCEP_DER: Vector = vector!("sscep-der");
pub const SSCEP_BER: Vector = vector!("sscep-ber");
pub const APPLE: Vector = vector!("apple");
pub const ALL: [Vector; 5] = [SCEPCLIENT, CERTMONGER, SSCEP_DER, SSCEP_BER, APPLE];

impl Vector {
    /// The value of `key` in the `.expected` file (`key=value` lines).
    pub fn expected(&self, key: &str) -> &'static str {
        self.expected
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or_else(|| panic!("{}.expected has no {key}", self.name))
    }

    pub fn expected_hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.expected(key)).unwrap_or_else(|_| panic!("{}: {key} is not hex", self.name))
    }

    /// transactionID as OpenSSL printed it: its string type and its text.
    pub fn expected_transaction_id(&self) -> (der::Tag, &'static [u8]) {
        let (kind, text) = self.expected("transaction_id").split_once(':').expect("TYPE:value");
        let tag = match kind {
            "PRINTABLESTRING" => der::Tag::PrintableString,
            "UTF8STRING" => der::Tag::Utf8String,
            "OCTET STRING" => der::Tag::OctetString,
            other => panic!("{}: transactionID of type {other}", self.name),
        };
        (tag, text.as_bytes())
    }

    /// The content cipher, by OpenSSL's name for it.
    pub fn expected_cipher(&self) -> ContentCipher {
        match self.expected("cipher") {
            "des-cbc" => ContentCipher::DesCbc,
            "des-ede3-cbc" => ContentCipher::DesEde3Cbc,
            "aes-128-cbc" => ContentCipher::Aes128Cbc,
            "aes-192-cbc" => ContentCipher::Aes192Cbc,
            "aes-256-cbc" => ContentCipher::Aes256Cbc,
            other => panic!("{}: cipher {other}", self.name),
        }
    }

    /// The digest, by OpenSSL's name for it.
    pub fn expected_digest(&self) -> DigestAlg {
        match self.expected("digest") {
            "sha1" => DigestAlg::Sha1,
            "sha256" => DigestAlg::Sha256,
            "sha384" => DigestAlg::Sha384,
            "sha512" => DigestAlg::Sha512,
            other => panic!("{}: digest {other}", self.name),
        }
    }
}

/// A certificate and key from PEM text.
pub fn identity(cert_pem: &str, key_pem: &str) -> Identity {
    let (_, der) = scepd_ca::pem::decode(cert_pem).expect("certificate PEM");
    let cert = Certificate::from_der(&der).expect("certificate");
    Identity {
        cert,
        der,
        key: Box::new(RsaKey::from_pem(key_pem).expect("test key")),
    }
}

/// The throwaway CA that received the vectors.
pub fn ca() -> Identity {
    identity(
        include_str!("../../../tests/vectors/ca.pem"),
        include_str!("../../../tests/vectors/ca.key"),
    )
}

/// Its RA, which every vector is encrypted to.
pub fn ra() -> Identity {
    identity(
        include_str!("../../../tests/vectors/ra.pem"),
        include_str!("../../../tests/vectors/ra.key"),
    )
}

/// The Apple-shaped request's throwaway signer: a 1024-bit key, which aws-lc-rs (and so
/// [`RsaKey`]) refuses to load, hence PEM rather than an [`Identity`].
pub const APPLE_SIGNER_CERT: &str = include_str!("../../../tests/vectors/apple-signer.pem");
pub const APPLE_SIGNER_KEY: &str = include_str!("../../../tests/vectors/apple-signer.key");

/// What scepd runs with `--allow-des` (micromdm's scepclient sends nothing else).
pub fn policy(allow_des: bool) -> CipherPolicy {
    CipherPolicy {
        allow_des,
        rejection_secret: [7; 32],
    }
}
