//! The enveloped layer: opening a request's EnvelopedData with the RA (or CA) key, and
//! sealing a reply's content to the requester's signer certificate.

use cms::enveloped_data::{RecipientIdentifier, RecipientInfo, RecipientInfos};
use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use rsa::pkcs8::DecodePublicKey;
use scepd_ca::Identity;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::asn1::{EncryptedContentInfoOut, EnvelopedDataOut, KeyTransRecipientOut};
use super::cipher::ContentCipher;
use super::request::SignerCert;
use super::{ber, oids, FailInfo, Rejection};

/// One text for every failure after the key-transport step — RSA padding, wrong key length,
/// content padding, unparsable content — so the answer is no padding oracle.
pub const UNDECRYPTABLE: Rejection = Rejection::new(FailInfo::BadMessageCheck, "cannot decrypt the request");

/// Cipher policy for incoming envelopes.
#[derive(Clone, Copy)]
pub struct CipherPolicy {
    /// Accept single DES (off by default; RFC 8894 forbids it).
    pub allow_des: bool,
    /// Secret of the implicit rejection: the key used when the content-encryption key does not
    /// unwrap is HMAC(secret, encrypted key), so replaying a request gives the same answer
    /// whether its RSA block was valid or not.
    pub rejection_secret: [u8; 32],
}

impl std::fmt::Debug for CipherPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CipherPolicy")
            .field("allow_des", &self.allow_des)
            .finish_non_exhaustive()
    }
}

/// The implicit-rejection key for an encrypted key: HMAC-SHA256(secret, encrypted key), as long
/// as the cipher needs (at most 32 bytes).
fn rejection_key(secret: &[u8; 32], encrypted_key: &[u8], len: usize) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, encrypted_key).as_ref()[..len].to_vec()
}

/// The decrypted content of a request and the cipher it came with (the reply uses the same).
#[derive(Debug)]
pub struct Opened {
    pub content: Vec<u8>,
    pub cipher: ContentCipher,
}

fn addressed_to(rid: &RecipientIdentifier, id: &Identity) -> bool {
    let tbs = id.cert.tbs_certificate();
    match rid {
        RecipientIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == *tbs.issuer() && ias.serial_number == *tbs.serial_number()
        }
        RecipientIdentifier::SubjectKeyIdentifier(ski) => tbs
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, own)| own == *ski),
    }
}

/// Opens the EnvelopedData in `econtent` with whichever of `identities` it is addressed to
/// (the RA normally; some clients encrypt to the CA, whose key we hold as well).
pub fn open(econtent: &[u8], identities: &[&Identity], policy: CipherPolicy) -> Result<Opened, Rejection> {
    open_noting_key_failure(econtent, identities, policy, &mut None)
}

/// [`open`], but a key that failed by itself (a token gone) is `Err`, to be answered "retry
/// later" rather than FAILURE. Only the key's own failures are told apart, never the
/// ciphertext's: those still take the implicit-rejection path.
pub fn open_checked(
    econtent: &[u8],
    identities: &[&Identity],
    policy: CipherPolicy,
) -> Result<Result<Opened, Rejection>, scepd_ca::CaError> {
    let mut key_failure = None;
    let opened = open_noting_key_failure(econtent, identities, policy, &mut key_failure);
    match key_failure {
        Some(e) => Err(e),
        None => Ok(opened),
    }
}

fn open_noting_key_failure(
    econtent: &[u8],
    identities: &[&Identity],
    policy: CipherPolicy,
    key_failure: &mut Option<scepd_ca::CaError>,
) -> Result<Opened, Rejection> {
    let der = ber::normalize(econtent).map_err(|_| UNDECRYPTABLE)?;
    let ci = cms::content_info::ContentInfo::from_der(&der).map_err(|_| UNDECRYPTABLE)?;
    if ci.content_type != oids::ENVELOPED_DATA {
        return Err(Rejection::new(
            FailInfo::BadRequest,
            "pkiMessage content is not EnvelopedData",
        ));
    }
    let parts = EnvelopedParts::read(&ci.content.to_der().map_err(|_| UNDECRYPTABLE)?)?;

    let cipher = ContentCipher::from_oid(&parts.content_enc_alg.oid).ok_or(Rejection::new(
        FailInfo::BadAlg,
        "unsupported content encryption algorithm",
    ))?;
    if cipher == ContentCipher::DesCbc && !policy.allow_des {
        return Err(Rejection::new(FailInfo::BadAlg, "single DES is not allowed"));
    }
    let iv = parts
        .content_enc_alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .map(|o| o.as_bytes().to_vec())
        .filter(|iv| iv.len() == cipher.iv_len())
        .ok_or(Rejection::new(FailInfo::BadAlg, "missing or malformed IV"))?;
    let ciphertext = parts.encrypted_content.as_slice();

    // The first of `identities` (the caller's order of preference: the current RA first) that a
    // RecipientInfo is addressed to, not the first RecipientInfo: micromdm's scepclient encrypts
    // the content key to every certificate of GetCACert, the RA and the CA, and the SET OF puts
    // those in the order of their encodings, which their serials decide.
    let ktris: Vec<_> = parts
        .recipient_infos
        .0
        .iter()
        .filter_map(|ri| match ri {
            RecipientInfo::Ktri(k) => Some(k),
            _ => None,
        })
        .collect();
    let (ktri, identity) = identities
        .iter()
        .find_map(|id| ktris.iter().find(|k| addressed_to(&k.rid, id)).map(|k| (*k, *id)))
        .ok_or(Rejection::new(
            FailInfo::BadMessageCheck,
            "request is not encrypted to this CA",
        ))?;

    // Implicit rejection: if the content-encryption key does not unwrap to a key of the right
    // length, carry on with a key derived from the encrypted key, so every decryption failure
    // takes the same path and gives the same answer as a wrong key would. Both keys are
    // computed every time. Everything that fails after this point must answer UNDECRYPTABLE,
    // whatever the reason, or the answers become a padding oracle.
    let enc_key = ktri.enc_key.as_bytes();
    let fallback = rejection_key(&policy.rejection_secret, enc_key, cipher.key_len());
    let decrypted = identity.key.try_decrypt_pkcs1(enc_key).unwrap_or_else(|e| {
        *key_failure = Some(e);
        None
    });
    let key = decrypted.filter(|k| k.len() == cipher.key_len()).unwrap_or(fallback);
    let content = cipher.decrypt(&key, &iv, ciphertext).ok_or(UNDECRYPTABLE)?;
    Ok(Opened { content, cipher })
}

/// The parts of an EnvelopedData (RFC 5652 §6.1) that opening needs, read element by element:
/// Go's pkcs7 (micromdm's scepclient) writes encryptedContent as a *constructed* [0], which
/// the normalizer cannot join (it does not know that this [0] is an implicit OCTET STRING)
/// and which `cms`'s strict types reject.
struct EnvelopedParts {
    recipient_infos: RecipientInfos,
    content_enc_alg: AlgorithmIdentifierOwned,
    encrypted_content: Vec<u8>,
}

impl EnvelopedParts {
    fn read(enveloped_data: &[u8]) -> Result<EnvelopedParts, Rejection> {
        let fields = ber::children(enveloped_data).map_err(|_| UNDECRYPTABLE)?;
        // version, [0] originatorInfo?, recipientInfos SET, encryptedContentInfo, [1] attrs?
        let set = fields
            .iter()
            .position(|f| f.first() == Some(&0x31))
            .ok_or(UNDECRYPTABLE)?;
        let recipient_infos = RecipientInfos::from_der(fields[set]).map_err(|_| UNDECRYPTABLE)?;
        let eci = ber::children(fields.get(set + 1).ok_or(UNDECRYPTABLE)?).map_err(|_| UNDECRYPTABLE)?;
        let content_enc_alg =
            AlgorithmIdentifierOwned::from_der(eci.get(1).ok_or(UNDECRYPTABLE)?).map_err(|_| UNDECRYPTABLE)?;
        let encrypted_content = ber::string_content(eci.get(2).ok_or(UNDECRYPTABLE)?).map_err(|_| UNDECRYPTABLE)?;
        Ok(EnvelopedParts {
            recipient_infos,
            content_enc_alg,
            encrypted_content,
        })
    }
}

pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut v).expect("system RNG");
    v
}

/// RSA PKCS#1 v1.5 encryption of a content-encryption key: aws-lc-rs for the 2048-bit and
/// larger keys it accepts (several times faster), the `rsa` crate for the 1024-bit signer keys
/// some Apple devices make.
pub(crate) fn encrypt_key(spki_der: &[u8], cek: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::rsa::{Pkcs1PublicEncryptingKey, PublicEncryptingKey};
    let fast = PublicEncryptingKey::from_der(spki_der)
        .ok()
        .and_then(|k| Pkcs1PublicEncryptingKey::new(k).ok());
    if let Some(key) = fast {
        let mut out = vec![0u8; key.ciphertext_size()];
        return key.encrypt(cek, &mut out).ok().map(|c| c.to_vec());
    }
    let key = rsa::PublicKey::from_public_key_der(spki_der).ok()?;
    key.encrypt(&mut getrandom::SysRng, rsa::Pkcs1v15Encrypt, cek).ok()
}

/// Seals `content` to `recipient`'s RSA key with `cipher`, as a ContentInfo(EnvelopedData), DER.
pub fn seal(content: &[u8], cipher: ContentCipher, recipient: &SignerCert) -> Result<Vec<u8>, Rejection> {
    const CANNOT_ENCRYPT: Rejection = Rejection::new(FailInfo::BadRequest, "cannot encrypt to the signer certificate");
    let cek = random_bytes(cipher.key_len());
    let iv = random_bytes(cipher.iv_len());
    let encrypted_key = encrypt_key(&recipient.spki_der, &cek).ok_or(CANNOT_ENCRYPT)?;
    let encrypted_content = cipher.encrypt(&cek, &iv, content);
    let encode = || -> der::Result<Vec<u8>> {
        let ktri = KeyTransRecipientOut {
            version: 0,
            rid: recipient.issuer_and_serial.clone(),
            key_encryption_algorithm: AlgorithmIdentifierOwned {
                oid: oids::RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
            encrypted_key: OctetString::new(encrypted_key)?,
        };
        let env = EnvelopedDataOut {
            version: 0,
            recipient_infos: SetOfVec::try_from(vec![Any::encode_from(&ktri)?])?,
            encrypted_content_info: EncryptedContentInfoOut {
                content_type: oids::DATA,
                content_encryption_algorithm: AlgorithmIdentifierOwned {
                    oid: cipher.oid(),
                    parameters: Some(Any::encode_from(&OctetString::new(iv)?)?),
                },
                encrypted_content: OctetString::new(encrypted_content)?,
            },
        };
        cms::content_info::ContentInfo {
            content_type: oids::ENVELOPED_DATA,
            content: Any::encode_from(&env)?,
        }
        .to_der()
    };
    encode().map_err(|_| CANNOT_ENCRYPT)
}
