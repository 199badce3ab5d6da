//! Decoding and verifying a pkiMessage: the signed outer layer of every SCEP request.

use der::asn1::{Any, OctetString};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::attr::Attribute;
use x509_cert::certificate::{CertificateInner, Raw};
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use super::asn1::{IssuerAndSerial, SignedDataIn, SignerInfoIn};
use super::digest::DigestAlg;
use super::{ber, oids, FailInfo, MalformedRequest, MessageType, Rejection};

/// What a reply needs to echo, read from the request's signed attributes.
#[derive(Clone, Debug)]
pub struct Header {
    /// messageType as sent; `None` when it is not one we know.
    pub message_type: Option<MessageType>,
    /// transactionID exactly as sent (tag and value), so the reply echoes it byte for byte.
    pub transaction_id: Any,
    pub sender_nonce: Vec<u8>,
    /// The attributes only a CertRep carries (read by the client side).
    pub reply: ReplyAttributes,
}

/// pkiStatus, failInfo, failInfoText and recipientNonce, as sent.
#[derive(Clone, Debug, Default)]
pub struct ReplyAttributes {
    pub pki_status: Option<String>,
    pub fail_info: Option<String>,
    pub fail_info_text: Option<String>,
    pub recipient_nonce: Option<Vec<u8>>,
}

impl Header {
    /// The transactionID as text, for logs and the store (it is a PrintableString in practice).
    pub fn transaction_id_text(&self) -> String {
        ca_string(&self.transaction_id).unwrap_or_else(|| hex::encode(self.transaction_id.value()))
    }
}

/// The certificate that signed the request (Apple: a throwaway self-signed one; renewal: the
/// certificate being renewed). Replies are encrypted to it.
#[derive(Clone, Debug)]
pub struct SignerCert {
    pub der: Vec<u8>,
    pub issuer_and_serial: IssuerAndSerial,
    pub spki_der: Vec<u8>,
    /// PKCS#1 RSAPublicKey.
    pub rsa_public_key: Vec<u8>,
}

/// A decoded, not yet verified, pkiMessage.
#[derive(Debug)]
pub struct PkiMessage {
    pub header: Header,
    signer: Option<SignerCert>,
    digest_alg: AlgorithmChoice,
    signed_attrs_der: Vec<u8>,
    signature: Vec<u8>,
    message_digest: Option<Vec<u8>>,
    /// The encapsulated content: the DER of a ContentInfo holding the EnvelopedData.
    pub econtent: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum AlgorithmChoice {
    Known(DigestAlg),
    Unsupported,
}

fn ca_string(any: &Any) -> Option<String> {
    scepd_ca::name::attribute_string(any)
}

fn first_value(attrs: &[Attribute], oid: der::asn1::ObjectIdentifier) -> Option<&Any> {
    attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
}

/// Decodes a pkiMessage. Errors here mean there is nothing to answer in SCEP (HTTP 400);
/// everything after the transactionID is known is answered with a CertRep FAILURE instead.
pub fn decode(body: &[u8]) -> Result<PkiMessage, MalformedRequest> {
    if body.is_empty() {
        return Err(MalformedRequest::Empty);
    }
    let der = ber::normalize(body)?;
    let ci = cms::content_info::ContentInfo::from_der(&der).map_err(|_| MalformedRequest::NotSignedData)?;
    if ci.content_type != oids::SIGNED_DATA {
        return Err(MalformedRequest::NotSignedData);
    }
    let sd: SignedDataIn = ci.content.decode_as().map_err(|_| MalformedRequest::NotSignedData)?;
    let si_any = sd.signer_infos.iter().next().ok_or(MalformedRequest::NoSigner)?;
    let si_der = si_any.to_der().map_err(|_| MalformedRequest::NoSigner)?;
    let si = SignerInfoIn::from_der(&si_der).map_err(|_| MalformedRequest::NoSigner)?;
    let attrs = si
        .signed_attrs
        .as_deref()
        .ok_or(MalformedRequest::MissingAttribute("signedAttrs"))?;

    let transaction_id = first_value(attrs, oids::TRANSACTION_ID)
        .cloned()
        .ok_or(MalformedRequest::MissingAttribute("transactionID"))?;
    let message_type_text = first_value(attrs, oids::MESSAGE_TYPE)
        .and_then(ca_string)
        .ok_or(MalformedRequest::MissingAttribute("messageType"))?;
    let octets = |oid| {
        first_value(attrs, oid)
            .and_then(|v| v.decode_as::<OctetString>().ok())
            .map(|o| o.as_bytes().to_vec())
    };
    let text = |oid| first_value(attrs, oid).and_then(ca_string);
    // Any length is accepted: Apple sends 8 bytes, RFC 8894 says 16.
    let sender_nonce = octets(oids::SENDER_NONCE).unwrap_or_default();
    let reply = ReplyAttributes {
        pki_status: text(oids::PKI_STATUS),
        fail_info: text(oids::FAIL_INFO),
        fail_info_text: text(oids::FAIL_INFO_TEXT),
        recipient_nonce: octets(oids::RECIPIENT_NONCE),
    };
    let header = Header {
        message_type: MessageType::from_wire(&message_type_text),
        transaction_id,
        sender_nonce,
        reply,
    };
    let message_digest = octets(oids::MESSAGE_DIGEST);
    // RFC 5652 §5.3: the signed contentType attribute must name the eContentType.
    let content_type_matches = first_value(attrs, oids::CONTENT_TYPE)
        .and_then(|v| v.decode_as::<der::asn1::ObjectIdentifier>().ok())
        .is_some_and(|oid| oid == sd.encap_content_info.econtent_type);
    // The signature covers the DER of the signed attributes with a SET tag (RFC 5652 §5.4):
    // take the client's own bytes rather than re-encoding them.
    let signed_attrs_der = ber::children(&si_der)
        .ok()
        .and_then(|c| {
            c.into_iter()
                .find(|c| c.first() == Some(&0xA0))
                .map(|c| [&[0x31u8][..], &c[1..]].concat())
        })
        .unwrap_or_default();

    // A digest we do not support becomes FAILURE badAlg at verification.
    let digest_alg = match signature_digest(&si) {
        Some(d) => AlgorithmChoice::Known(d),
        None => AlgorithmChoice::Unsupported,
    };
    let signer = sd.certificates.as_deref().and_then(|certs| find_signer(certs, &si.sid));
    let econtent = sd
        .encap_content_info
        .econtent
        .map(|o| o.as_bytes().to_vec())
        .unwrap_or_default();
    Ok(PkiMessage {
        header,
        signer,
        digest_alg,
        signed_attrs_der,
        signature: si.signature.as_bytes().to_vec(),
        message_digest: message_digest.filter(|_| content_type_matches),
        econtent,
    })
}

/// The digest of a SignerInfo: clients write `rsaEncryption` (with the digest in digestAlgorithm)
/// or `shaNWithRSAEncryption` as the signature algorithm; both are accepted.
fn signature_digest(si: &SignerInfoIn) -> Option<DigestAlg> {
    let digest = DigestAlg::from_oid(&si.digest_alg.oid)?;
    match si.signature_algorithm.oid {
        oids::RSA_ENCRYPTION => Some(digest),
        other => DigestAlg::from_rsa_signature_oid(&other),
    }
}

/// Finds the certificate named by the SignerInfo's `sid` among the message's certificates.
/// With a single certificate that is the signer whatever `sid` says (lenient: some clients
/// name it inconsistently).
fn find_signer(certs: &[Any], sid: &Any) -> Option<SignerCert> {
    let parsed: Vec<SignerCert> = certs.iter().filter_map(|c| signer_cert(c).ok()).collect();
    let wanted_ias = if sid.tag() == Tag::Sequence {
        sid.decode_as::<IssuerAndSerial>().ok()
    } else {
        None
    };
    let wanted_ski = if sid.tag().is_context_specific() {
        Some(sid.value().to_vec())
    } else {
        None
    };
    let matches = |c: &SignerCert| {
        if let Some(ias) = &wanted_ias {
            return &c.issuer_and_serial == ias;
        }
        if let Some(ski) = &wanted_ski {
            return cert_ski(&c.der).as_deref() == Some(ski.as_slice());
        }
        false
    };
    match parsed.iter().position(matches) {
        Some(i) => parsed.into_iter().nth(i),
        None if parsed.len() == 1 => parsed.into_iter().next(),
        None => None,
    }
}

fn cert_ski(der: &[u8]) -> Option<Vec<u8>> {
    let cert = CertificateInner::<Raw>::from_der(der).ok()?;
    let (_, ski) = cert.tbs_certificate().get_extension::<SubjectKeyIdentifier>().ok()??;
    Some(ski.0.as_bytes().to_vec())
}

fn signer_cert(any: &Any) -> der::Result<SignerCert> {
    let der = any.to_der()?;
    let cert = CertificateInner::<Raw>::from_der(&der)?;
    let tbs = cert.tbs_certificate();
    let serial = der::asn1::Int::new(tbs.serial_number().as_bytes())?;
    let spki = tbs.subject_public_key_info();
    Ok(SignerCert {
        issuer_and_serial: IssuerAndSerial {
            issuer: tbs.issuer().clone(),
            serial,
        },
        spki_der: spki.to_der()?,
        rsa_public_key: spki.subject_public_key.raw_bytes().to_vec(),
        der,
    })
}

const BAD_SIGNATURE: Rejection = Rejection::new(FailInfo::BadMessageCheck, "pkiMessage signature does not verify");

impl PkiMessage {
    /// The digest the signature is checked with (from digestAlgorithm, or from a
    /// `shaNWithRSAEncryption` signatureAlgorithm); `None` when scepd does not support it, and
    /// verification then answers badAlg.
    pub fn digest(&self) -> Option<DigestAlg> {
        match self.digest_alg {
            AlgorithmChoice::Known(d) => Some(d),
            AlgorithmChoice::Unsupported => None,
        }
    }

    /// Verifies the signature over the signed attributes with the signer certificate's key
    /// and the messageDigest against the encapsulated content.
    pub fn verify(&self) -> Result<&SignerCert, Rejection> {
        let digest = match self.digest_alg {
            AlgorithmChoice::Known(d) => d,
            AlgorithmChoice::Unsupported => {
                return Err(Rejection::new(
                    FailInfo::BadAlg,
                    "unsupported digest or signature algorithm",
                ))
            }
        };
        let signer = self.signer.as_ref().ok_or(Rejection::new(
            FailInfo::BadMessageCheck,
            "no signer certificate in the pkiMessage",
        ))?;
        if self.signed_attrs_der.is_empty()
            || !digest.verify_rsa(&signer.rsa_public_key, &self.signed_attrs_der, &self.signature)
        {
            return Err(BAD_SIGNATURE);
        }
        let expected = self.message_digest.as_deref().ok_or(BAD_SIGNATURE)?;
        let actual = digest.digest(&self.econtent);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected, actual.as_slice())) {
            return Err(BAD_SIGNATURE);
        }
        Ok(signer)
    }
}
