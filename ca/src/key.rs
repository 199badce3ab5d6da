//! RSA private keys, held by aws-lc-rs for signing and decryption.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::{KeyPair, RsaEncoding, RsaKeyPair, RSA_PKCS1_SHA256};

use zeroize::Zeroizing;

use crate::error::CaError;
use crate::pem;
use crate::private_key::{KeyCustody, PrivateKey, SignatureHash};

/// RSA modulus sizes scepd generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyBits {
    /// RSA-2048 (Okta's minimum).
    Rsa2048,
    /// RSA-3072.
    Rsa3072,
    /// RSA-4096.
    Rsa4096,
}

impl KeyBits {
    /// The modulus size in bits.
    pub const fn bits(self) -> u32 {
        match self {
            KeyBits::Rsa2048 => 2048,
            KeyBits::Rsa3072 => 3072,
            KeyBits::Rsa4096 => 4096,
        }
    }
}

impl TryFrom<u32> for KeyBits {
    type Error = CaError;
    fn try_from(bits: u32) -> Result<Self, CaError> {
        match bits {
            2048 => Ok(KeyBits::Rsa2048),
            3072 => Ok(KeyBits::Rsa3072),
            4096 => Ok(KeyBits::Rsa4096),
            other => Err(CaError::KeySize(other)),
        }
    }
}

/// An RSA private key usable both for PKCS#1 v1.5 signatures (certificates, CertReps, CRLs)
/// and for PKCS#1 v1.5 decryption (the content-encryption key of a SCEP request).
pub struct RsaKey {
    signing: RsaKeyPair,
    decrypting: Pkcs1PrivateDecryptingKey,
    /// Cleared when the key is dropped (aws-lc frees and clears its own copies).
    pkcs8: Zeroizing<Vec<u8>>,
    rng: SystemRandom,
}

impl std::fmt::Debug for RsaKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaKey({} bits)", self.bits())
    }
}

impl RsaKey {
    /// A new key pair of `bits`.
    pub fn generate(bits: KeyBits) -> Result<Self, CaError> {
        let size = match bits {
            KeyBits::Rsa2048 => KeySize::Rsa2048,
            KeyBits::Rsa3072 => KeySize::Rsa3072,
            KeyBits::Rsa4096 => KeySize::Rsa4096,
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| CaError::KeyGeneration)?;
        let pkcs8 = pair.as_der().map_err(|_| CaError::KeyGeneration)?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// A key from its PKCS#8 DER.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CaError> {
        let signing = RsaKeyPair::from_pkcs8(der).map_err(|e| CaError::KeyRejected(e.to_string()))?;
        let decrypting = PrivateDecryptingKey::from_pkcs8(der)
            .map_err(|e| CaError::KeyRejected(e.to_string()))
            .and_then(|k| {
                Pkcs1PrivateDecryptingKey::new(k).map_err(|_| CaError::KeyRejected("RSA decryption".into()))
            })?;
        Ok(RsaKey {
            signing,
            decrypting,
            pkcs8: Zeroizing::new(der.to_vec()),
            rng: SystemRandom::new(),
        })
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
    pub fn from_pem(text: &str) -> Result<Self, CaError> {
        Self::from_pem_with_passphrase(text, None)
    }

    /// Reads a PEM private key, also passphrase-encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`,
    /// PBES2) when `passphrase` is given.
    pub fn from_pem_with_passphrase(text: &str, passphrase: Option<&[u8]>) -> Result<Self, CaError> {
        let (label, der) = pem::decode(text)?;
        match label.as_str() {
            "ENCRYPTED PRIVATE KEY" if passphrase.is_some() => {
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| CaError::KeyRejected(e.to_string()))?;
                let plain = info
                    .decrypt(passphrase.unwrap_or_default())
                    .map_err(|_| CaError::KeyRejected("wrong passphrase, or not an encrypted PKCS#8 key".into()))?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(&der).map_err(|e| CaError::KeyRejected(e.to_string()))?;
                let pkcs8 = pair.as_der().map_err(|_| CaError::KeyRejected("PKCS#1".into()))?;
                Self::from_pkcs8_der(pkcs8.as_ref())
            }
            "ENCRYPTED PRIVATE KEY" => Err(CaError::KeyRejected(
                "the key is encrypted: give its passphrase (--key-passphrase-file or SCEPD_KEY_PASSPHRASE)".into(),
            )),
            other => Err(CaError::Pem(format!("expected a private key, found {other:?}"))),
        }
    }

    /// PKCS#8 PEM, the on-disk form.
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode("PRIVATE KEY", &self.pkcs8)
    }

    /// Passphrase-encrypted PKCS#8 PEM (PBES2: scrypt and AES-256-CBC).
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &[u8]) -> Result<String, CaError> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(self.pkcs8.as_slice())
            .map_err(|e| CaError::KeyRejected(e.to_string()))?;
        let encrypted = info
            .encrypt(passphrase)
            .map_err(|e| CaError::KeyRejected(e.to_string()))?;
        Ok(pem::encode("ENCRYPTED PRIVATE KEY", encrypted.as_bytes()))
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.signing.public_modulus_len() * 8
    }

    /// SubjectPublicKeyInfo, DER.
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        // The PKCS#1 RSAPublicKey inside an rsaEncryption SPKI.
        spki_from_pkcs1(self.signing.public_key().as_ref())
    }

    /// PKCS#1 v1.5 signature with SHA-256: everything scepd itself signs.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.sign_with(&RSA_PKCS1_SHA256, message)
    }

    /// A signature with any aws-lc-rs RSA encoding (SCEP clients may use SHA-1/384/512).
    pub fn sign_with(&self, encoding: &'static dyn RsaEncoding, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let mut sig = vec![0u8; self.signing.public_modulus_len()];
        self.signing
            .sign(encoding, &self.rng, message, &mut sig)
            .map_err(|_| CaError::Signing)?;
        Ok(sig)
    }

    /// PKCS#1 v1.5 decryption. Returns `None` on any failure; callers must not reveal which
    /// failure it was (see the implicit rejection in scepd's envelope decryption).
    pub fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.decrypting.min_output_size()];
        let plain = self.decrypting.decrypt(ciphertext, &mut out).ok()?;
        Some(plain.to_vec())
    }
}

impl PrivateKey for RsaKey {
    fn bits(&self) -> usize {
        RsaKey::bits(self)
    }

    fn public_key_spki_der(&self) -> Vec<u8> {
        RsaKey::public_key_spki_der(self)
    }

    fn sign(&self, hash: SignatureHash, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let encoding: &'static dyn RsaEncoding = match hash {
            SignatureHash::Sha256 => &RSA_PKCS1_SHA256,
            SignatureHash::Sha384 => &aws_lc_rs::signature::RSA_PKCS1_SHA384,
            SignatureHash::Sha512 => &aws_lc_rs::signature::RSA_PKCS1_SHA512,
        };
        self.sign_with(encoding, message)
    }

    fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        RsaKey::decrypt_pkcs1(self, ciphertext)
    }

    fn custody(&self) -> KeyCustody<'_> {
        KeyCustody::Software(self)
    }
}

/// An rsaEncryption SubjectPublicKeyInfo (DER) from a modulus and public exponent, both
/// unsigned big-endian (as a PKCS#11 token gives them).
pub fn rsa_spki_der(modulus: &[u8], public_exponent: &[u8]) -> Result<Vec<u8>, CaError> {
    use der::Encode;
    let public = pkcs1::RsaPublicKey {
        modulus: der::asn1::UintRef::new(modulus)?,
        public_exponent: der::asn1::UintRef::new(public_exponent)?,
    };
    Ok(spki_from_pkcs1(&public.to_der()?))
}

/// Wraps a PKCS#1 RSAPublicKey in an rsaEncryption SubjectPublicKeyInfo.
fn spki_from_pkcs1(pkcs1: &[u8]) -> Vec<u8> {
    use der::asn1::BitString;
    use der::Encode;
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(pkcs1).expect("bit string of whole bytes"),
    };
    spki.to_der().expect("SPKI encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_and_pkcs1_import() {
        let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
        assert_eq!(key.bits(), 2048);
        let again = RsaKey::from_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public_key_spki_der(), key.public_key_spki_der());
        assert!(format!("{key:?}").contains("2048"));
    }

    #[test]
    fn passphrase_round_trip() {
        let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
        let pem = key.to_encrypted_pkcs8_pem(b"correct horse").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let again = RsaKey::from_pem_with_passphrase(&pem, Some(b"correct horse")).unwrap();
        assert_eq!(again.public_key_spki_der(), key.public_key_spki_der());
        assert!(RsaKey::from_pem_with_passphrase(&pem, Some(b"wrong")).is_err());
        assert!(RsaKey::from_pem(&pem).is_err());
    }

    #[test]
    fn decrypt_failure_is_none() {
        let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
        assert!(key.decrypt_pkcs1(&[1u8; 256]).is_none());
        assert!(key.decrypt_pkcs1(&[1u8; 3]).is_none());
    }
}
