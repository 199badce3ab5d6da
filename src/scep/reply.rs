//! Building what scepd sends: CertRep pkiMessages and certs-only ("degenerate") SignedData.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, OctetString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Decode, Encode};
use scepd_ca::Identity;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::asn1::{DegenerateSignedData, EncapsulatedContentInfoIn};
use super::envelope::random_bytes;
use super::request::Header;
use super::{oids, FailInfo, MessageType, PkiStatus};

/// The outcome a CertRep reports.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// SUCCESS: `enveloped` is the ContentInfo(EnvelopedData) sealed to the requester.
    Success { enveloped: &'a [u8] },
    Failure { fail_info: FailInfo, text: &'a str },
    Pending,
}

fn attribute(oid: der::asn1::ObjectIdentifier, value: Any) -> der::Result<Attribute> {
    Ok(Attribute { oid, values: SetOfVec::try_from(vec![value])? })
}

fn printable(s: &str) -> der::Result<Any> {
    Any::encode_from(&PrintableStringRef::new(s)?)
}

fn sha256_alg() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: oids::SHA256, parameters: None }
}

/// A CertRep pkiMessage (RFC 8894 §3.3.2) signed by `signer` (the RA, or the CA acting as RA):
/// transactionID echoed byte for byte, recipientNonce = the request's senderNonce, a fresh
/// senderNonce. FAILURE and PENDING carry no content.
pub fn cert_rep(header: &Header, outcome: &Outcome<'_>, signer: &Identity) -> der::Result<Vec<u8>> {
    let (status, content) = match outcome {
        Outcome::Success { enveloped } => (PkiStatus::Success, Some(*enveloped)),
        Outcome::Failure { .. } => (PkiStatus::Failure, None),
        Outcome::Pending => (PkiStatus::Pending, None),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content.unwrap_or(&[]));
    let mut attrs = vec![
        attribute(oids::CONTENT_TYPE, Any::encode_from(&oids::DATA)?)?,
        attribute(oids::MESSAGE_DIGEST, Any::encode_from(&OctetString::new(digest.as_ref())?)?)?,
        attribute(oids::SIGNING_TIME, Any::encode_from(&x509_cert::time::Time::try_from(std::time::SystemTime::now())?)?)?,
        attribute(oids::MESSAGE_TYPE, printable(MessageType::CertRep.wire())?)?,
        attribute(oids::PKI_STATUS, printable(status.wire())?)?,
        attribute(oids::TRANSACTION_ID, header.transaction_id.clone())?,
        attribute(oids::SENDER_NONCE, Any::encode_from(&OctetString::new(random_bytes(16))?)?)?,
        attribute(oids::RECIPIENT_NONCE, Any::encode_from(&OctetString::new(header.sender_nonce.clone())?)?)?,
    ];
    if let Outcome::Failure { fail_info, text } = outcome {
        attrs.push(attribute(oids::FAIL_INFO, printable(fail_info.wire())?)?);
        attrs.push(attribute(oids::FAIL_INFO_TEXT, Any::encode_from(&Utf8StringRef::new(text)?)?)?);
    }
    let signed_attrs = SetOfVec::try_from(attrs)?;
    let signature = signer.key.sign_sha256(&signed_attrs.to_der()?).map_err(|_| der::ErrorKind::Failed)?;

    let tbs = signer.cert.tbs_certificate();
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        }),
        digest_alg: sha256_alg(),
        signed_attrs: Some(signed_attrs),
        // rsaEncryption, as Apple, NDES and cryptlib write it: some clients' PKCS#7 parsers
        // accept nothing else here (the signature covers the attributes, not this field).
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: oids::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_alg()])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: oids::DATA,
            econtent: content.map(|c| Any::encode_from(&OctetString::new(c)?)).transpose()?,
        },
        certificates: Some(CertificateSet::try_from(vec![CertificateChoices::Certificate(signer.cert.clone())])?),
        crls: None,
        signer_infos: SignerInfos::try_from(vec![signer_info])?,
    };
    cms::content_info::ContentInfo { content_type: oids::SIGNED_DATA, content: Any::encode_from(&signed_data)? }
        .to_der()
}

/// A certs-only SignedData (RFC 8894 §3.4) holding `certs` (DER) in the given order, and
/// optionally CRLs (DER).
pub fn certs_only(certs: &[&[u8]], crls: &[&[u8]]) -> der::Result<Vec<u8>> {
    let any = |d: &&[u8]| Any::from_der(d);
    let sd = DegenerateSignedData {
        version: 1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfoIn { econtent_type: oids::DATA, econtent: None },
        certificates: certs.iter().map(any).collect::<der::Result<_>>()?,
        crls: if crls.is_empty() { None } else { Some(crls.iter().map(any).collect::<der::Result<_>>()?) },
        signer_infos: SetOfVec::new(),
    };
    cms::content_info::ContentInfo { content_type: oids::SIGNED_DATA, content: Any::encode_from(&sd)? }.to_der()
}
