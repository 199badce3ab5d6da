//! Writing a pkiMessage's signed layer (RFC 8894 §3.2): a SignedData whose SignerInfo carries
//! the SCEP attributes. Used for CertReps, and by the client side for requests.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
use der::Encode;
use scepd_ca::PrivateKey;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;

use super::digest::DigestAlg;
use super::oids;

/// What to write as the SignerInfo's signatureAlgorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithmField {
    /// `rsaEncryption`, as Apple, NDES and cryptlib write it: some clients' PKCS#7 parsers
    /// accept nothing else (the signature covers the attributes, not this field).
    RsaEncryption,
    /// `shaNWithRSAEncryption`, as OpenSSL and the cms crate write it.
    ShaWithRsa,
}

pub fn attribute(oid: ObjectIdentifier, value: Any) -> der::Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value])?,
    })
}

/// The signing certificate and key, and how to sign.
pub struct Signing<'a> {
    pub cert: &'a Certificate,
    pub key: &'a dyn PrivateKey,
    pub digest: DigestAlg,
    pub algorithm_field: SignatureAlgorithmField,
}

/// A ContentInfo(SignedData), DER, with `econtent` (id-data) when given and `attributes`
/// besides contentType, messageDigest and signingTime, which are added here.
pub fn signed_data(econtent: Option<&[u8]>, attributes: Vec<Attribute>, signing: &Signing<'_>) -> der::Result<Vec<u8>> {
    let digest = signing.digest;
    let mut attrs = vec![
        attribute(oids::CONTENT_TYPE, Any::encode_from(&oids::DATA)?)?,
        attribute(
            oids::MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.digest(econtent.unwrap_or(&[])))?)?,
        )?,
        attribute(
            oids::SIGNING_TIME,
            Any::encode_from(&x509_cert::time::Time::try_from(std::time::SystemTime::now())?)?,
        )?,
    ];
    attrs.extend(attributes);
    let signed_attrs = SetOfVec::try_from(attrs)?;
    let failed = || der::Error::from(der::ErrorKind::Failed);
    let hash = digest.signature_hash().ok_or_else(failed)?;
    let signature = signing.key.sign(hash, &signed_attrs.to_der()?).map_err(|_| failed())?;
    let digest_alg = AlgorithmIdentifierOwned {
        oid: digest.oid(),
        parameters: None,
    };
    let tbs = signing.cert.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: digest_alg.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: match signing.algorithm_field {
                SignatureAlgorithmField::RsaEncryption => oids::RSA_ENCRYPTION,
                SignatureAlgorithmField::ShaWithRsa => digest.rsa_signature_oid(),
            },
            parameters: Some(der::asn1::Null.into()),
        },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![digest_alg])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::DATA,
            econtent: econtent.map(|c| Any::encode_from(&OctetString::new(c)?)).transpose()?,
        },
        certificates: Some(CertificateSet::try_from(vec![CertificateChoices::Certificate(
            signing.cert.clone(),
        )])?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    };
    cms::content_info::ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()
}
