//! Building what scepd sends: CertRep pkiMessages and certs-only ("degenerate") SignedData.

use der::asn1::{Any, OctetString, PrintableStringRef, SetOfVec, Utf8StringRef};
use der::{Decode, Encode};
use scepd_ca::Identity;

use super::asn1::{DegenerateSignedData, EncapsulatedContentInfoIn};
use super::digest::DigestAlg;
use super::envelope::random_bytes;
use super::request::Header;
use super::signed::{attribute, signed_data, SignatureAlgorithmField, Signing};
use super::{oids, FailInfo, MessageType, PkiStatus};

/// The outcome a CertRep reports.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// SUCCESS: `enveloped` is the ContentInfo(EnvelopedData) sealed to the requester.
    Success {
        enveloped: &'a [u8],
    },
    Failure {
        fail_info: FailInfo,
        text: &'a str,
    },
    Pending,
}

fn printable(s: &str) -> der::Result<Any> {
    Any::encode_from(&PrintableStringRef::new(s)?)
}

/// A CertRep pkiMessage (RFC 8894 §3.3.2) signed by `signer` (the RA, or the CA acting as RA)
/// with SHA-256 and `rsaEncryption` in the signatureAlgorithm field: transactionID echoed byte
/// for byte, recipientNonce = the request's senderNonce, a fresh senderNonce.
///
/// FAILURE and PENDING carry no pkcsPKIEnvelope, but an *empty* eContent rather than none:
/// certmonger (OpenSSL's PKCS7_dataVerify) refuses a CertRep without content ("PKCS7
/// routines::no content") and then retries forever instead of reporting the rejection.
pub fn cert_rep(header: &Header, outcome: &Outcome<'_>, signer: &Identity) -> der::Result<Vec<u8>> {
    let (status, content): (_, &[u8]) = match outcome {
        Outcome::Success { enveloped } => (PkiStatus::Success, enveloped),
        Outcome::Failure { .. } => (PkiStatus::Failure, &[]),
        Outcome::Pending => (PkiStatus::Pending, &[]),
    };
    let mut attrs = vec![
        attribute(oids::MESSAGE_TYPE, printable(MessageType::CertRep.wire())?)?,
        attribute(oids::PKI_STATUS, printable(status.wire())?)?,
        attribute(oids::TRANSACTION_ID, header.transaction_id.clone())?,
        attribute(
            oids::SENDER_NONCE,
            Any::encode_from(&OctetString::new(random_bytes(16))?)?,
        )?,
        attribute(
            oids::RECIPIENT_NONCE,
            Any::encode_from(&OctetString::new(header.sender_nonce.clone())?)?,
        )?,
    ];
    if let Outcome::Failure { fail_info, text } = outcome {
        attrs.push(attribute(oids::FAIL_INFO, printable(fail_info.wire())?)?);
        attrs.push(attribute(
            oids::FAIL_INFO_TEXT,
            Any::encode_from(&Utf8StringRef::new(text)?)?,
        )?);
    }
    let signing = Signing {
        cert: &signer.cert,
        key: signer.key.as_ref(),
        digest: DigestAlg::Sha256,
        algorithm_field: SignatureAlgorithmField::RsaEncryption,
    };
    signed_data(Some(content), attrs, &signing)
}

/// A certs-only SignedData (RFC 8894 §3.4) holding `certs` (DER) in the given order, and
/// optionally CRLs (DER).
pub fn certs_only(certs: &[&[u8]], crls: &[&[u8]]) -> der::Result<Vec<u8>> {
    let any = |d: &&[u8]| Any::from_der(d);
    let sd = DegenerateSignedData {
        version: 1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfoIn {
            econtent_type: oids::DATA,
            econtent: None,
        },
        certificates: certs.iter().map(any).collect::<der::Result<_>>()?,
        crls: if crls.is_empty() {
            None
        } else {
            Some(crls.iter().map(any).collect::<der::Result<_>>()?)
        },
        signer_infos: SetOfVec::new(),
    };
    cms::content_info::ContentInfo {
        content_type: oids::SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()
}
