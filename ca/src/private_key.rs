//! The private-key operations the CA needs, whoever holds the key: aws-lc-rs in this process
//! ([`RsaKey`]) or a PKCS#11 token (scepd's `keys::pkcs11`, outside this I/O-free crate).

use crate::error::CaError;
use crate::key::{KeyBits, RsaKey};

/// The hash of a PKCS#1 v1.5 signature. SHA-1 is not offered: scepd never signs with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureHash {
    /// SHA-256: everything scepd signs on its own account.
    Sha256,
    /// SHA-384, when a SCEP client asked for it.
    Sha384,
    /// SHA-512, when a SCEP client asked for it.
    Sha512,
}

/// How a key is kept, which decides what the data directory records about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyCustody<'a> {
    /// In this process: the key itself is saved (PKCS#8, optionally passphrase-encrypted).
    Software(&'a RsaKey),
    /// Elsewhere (an HSM): only this reference is saved, e.g. an RFC 7512 PKCS#11 URI.
    Reference(String),
}

/// An RSA private key: PKCS#1 v1.5 signatures and PKCS#1 v1.5 decryption.
pub trait PrivateKey: Send + Sync + std::fmt::Debug {
    /// The modulus size in bits.
    fn bits(&self) -> usize;
    /// SubjectPublicKeyInfo, DER.
    fn public_key_spki_der(&self) -> Vec<u8>;
    /// A PKCS#1 v1.5 signature over `message` (hashed by the implementation).
    fn sign(&self, hash: SignatureHash, message: &[u8]) -> Result<Vec<u8>, CaError>;
    /// PKCS#1 v1.5 decryption. `None` on any failure, whatever its cause (bad padding, a token
    /// that refuses): callers must not reveal which failure it was (implicit rejection).
    fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>>;
    /// PKCS#1 v1.5 decryption that tells a key that failed (`Err`: a token gone) from a
    /// ciphertext it refused (`Ok(None)`, which the caller still answers by implicit rejection).
    /// A key that cannot fail on its own keeps this default.
    fn try_decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        Ok(self.decrypt_pkcs1(ciphertext))
    }
    /// How the key is kept.
    fn custody(&self) -> KeyCustody<'_>;

    /// A PKCS#1 v1.5 signature with SHA-256.
    fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.sign(SignatureHash::Sha256, message)
    }
}

/// What a new key is for; a token names its keys after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// The issuing CA.
    Ca,
    /// The RA that decrypts requests and signs CertReps.
    Ra,
    /// The delegated OCSP signer.
    Ocsp,
}

impl KeyRole {
    /// A short name: `ca`, `ra`, `ocsp` (file names, labels, metric values).
    pub const fn name(self) -> &'static str {
        match self {
            KeyRole::Ca => "ca",
            KeyRole::Ra => "ra",
            KeyRole::Ocsp => "ocsp",
        }
    }
}

/// Makes new key pairs: in this process ([`SoftwareKeys`]) or in a token.
pub trait KeyGenerator {
    /// A new key pair of `bits` for `role`.
    fn generate(&self, role: KeyRole, bits: KeyBits) -> Result<Box<dyn PrivateKey>, CaError>;
}

/// Keys made by aws-lc-rs in this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoftwareKeys;

impl KeyGenerator for SoftwareKeys {
    fn generate(&self, _role: KeyRole, bits: KeyBits) -> Result<Box<dyn PrivateKey>, CaError> {
        Ok(Box::new(RsaKey::generate(bits)?))
    }
}

/// A boxed key is a key (so `&identity.key` works wherever a `&dyn PrivateKey` is wanted).
impl<K: PrivateKey + ?Sized> PrivateKey for Box<K> {
    fn bits(&self) -> usize {
        (**self).bits()
    }
    fn public_key_spki_der(&self) -> Vec<u8> {
        (**self).public_key_spki_der()
    }
    fn sign(&self, hash: SignatureHash, message: &[u8]) -> Result<Vec<u8>, CaError> {
        (**self).sign(hash, message)
    }
    fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        (**self).decrypt_pkcs1(ciphertext)
    }
    fn try_decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        (**self).try_decrypt_pkcs1(ciphertext)
    }
    fn custody(&self) -> KeyCustody<'_> {
        (**self).custody()
    }
}
