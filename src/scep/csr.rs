//! PKCS#10 certification requests: parse leniently, verify the self-signature, and read the
//! parts scepd's policy looks at (subject, key, challenge password, requested SANs).

use der::asn1::{Any, ObjectIdentifier};
use der::Decode;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

use super::asn1::CertReqIn;
use super::digest::DigestAlg;
use super::{ber, oids, FailInfo, Rejection};

/// A verified certification request.
#[derive(Clone, Debug)]
pub struct Csr {
    pub subject: Name,
    pub public_key: SubjectPublicKeyInfoOwned,
    /// RSA modulus size in bits.
    pub key_bits: usize,
    pub challenge: Option<String>,
    /// How many challengePassword values the request holds (over all such attributes): PKCS#9
    /// makes it single-valued, and the policy refuses more than one.
    pub challenge_values: usize,
    /// The requested subjectAltName extension, if any.
    pub subject_alt_name: Option<Extension>,
    /// SHA-256 of the DER request, to recognise a retried request.
    pub fingerprint: [u8; 32],
}

const NOT_A_CSR: Rejection = Rejection::new(FailInfo::BadRequest, "content is not a PKCS#10 request");
const BAD_CSR_SIGNATURE: Rejection = Rejection::new(FailInfo::BadMessageCheck, "PKCS#10 signature does not verify");
const NOT_RSA: Rejection = Rejection::new(FailInfo::BadAlg, "only RSA keys are supported");

/// Parses `content` (the decrypted messageData of a PKCSReq or RenewalReq) and verifies the
/// request's own signature with its own key.
pub fn parse_and_verify(content: &[u8]) -> Result<Csr, Rejection> {
    let der = ber::normalize(content).map_err(|_| NOT_A_CSR)?;
    let req = CertReqIn::from_der(&der).map_err(|_| NOT_A_CSR)?;
    let info_der = *ber::children(&der).map_err(|_| NOT_A_CSR)?.first().ok_or(NOT_A_CSR)?;

    let spki = &req.info.public_key;
    if spki.algorithm.oid != oids::RSA_ENCRYPTION {
        return Err(NOT_RSA);
    }
    let rsa_public_key = spki.subject_public_key.raw_bytes();
    let key_bits = rsa_modulus_bits(rsa_public_key).ok_or(NOT_RSA)?;
    let digest = DigestAlg::from_rsa_signature_oid(&req.algorithm.oid).ok_or(Rejection::new(
        FailInfo::BadAlg,
        "unsupported PKCS#10 signature algorithm",
    ))?;
    if !digest.verify_rsa(rsa_public_key, info_der, req.signature.raw_bytes()) {
        return Err(BAD_CSR_SIGNATURE);
    }

    let attributes = req.info.attributes.unwrap_or_default();
    let mut challenge = None;
    let mut challenge_values = 0;
    let mut subject_alt_name = None;
    for attr in &attributes {
        let Some(value) = attr.values.iter().next() else {
            continue;
        };
        if attr.oid == oids::CHALLENGE_PASSWORD {
            challenge_values += attr.values.len();
            challenge = scepd_ca::name::attribute_string(value);
        } else if attr.oid == oids::EXTENSION_REQUEST || attr.oid == oids::MS_EXTENSION_REQUEST {
            subject_alt_name = subject_alt_name.or(requested_san(value));
        }
    }
    Ok(Csr {
        subject: req.info.subject,
        public_key: req.info.public_key,
        key_bits,
        challenge,
        challenge_values,
        subject_alt_name,
        fingerprint: aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der)
            .as_ref()
            .try_into()
            .expect("32 bytes"),
    })
}

/// The subjectAltName extension from an extensionRequest value, re-encoded (and so checked).
fn requested_san(value: &Any) -> Option<Extension> {
    let extensions: Vec<Extension> = value.decode_as().ok()?;
    let san_oid: ObjectIdentifier = const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME;
    let ext = extensions.into_iter().find(|e| e.extn_id == san_oid)?;
    // Only pass on a SAN that parses as GeneralNames of the kinds a device certificate names
    // itself with: DNS, email, URI, IP address, or an otherName (Microsoft's UPN).
    let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).ok()?;
    let allowed = san.0.iter().all(|n| {
        matches!(
            n,
            GeneralName::DnsName(_)
                | GeneralName::Rfc822Name(_)
                | GeneralName::UniformResourceIdentifier(_)
                | GeneralName::IpAddress(_)
                | GeneralName::OtherName(_)
        )
    });
    allowed.then_some(ext)
}

/// Bit length of the modulus of a PKCS#1 RSAPublicKey.
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<usize> {
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    let fields = ber::children(rsa_public_key).ok()?;
    let modulus = der::asn1::UintRef::from_der(fields.first()?).ok()?;
    let modulus = modulus.as_bytes();
    let first = *modulus.first()?;
    Some(modulus.len() * 8 - first.leading_zeros() as usize)
}
