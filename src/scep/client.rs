//! The client side of SCEP, sans-IO: building PKCSReq messages and reading CertReps.
//!
//! scepd itself never sends requests; this is the requester the load benchmark and the tests
//! drive the server with, written against the same wire types. Its output is checked by other
//! implementations (OpenSSL, micromdm's scepclient, certmonger) in the tests.

use der::asn1::{Any, OctetString, PrintableStringRef};
use der::{Decode, Encode};
use scepd_ca::Identity;
use x509_cert::Certificate;

use super::asn1::{IssuerAndSerial, SignedDataIn};
use super::cipher::ContentCipher;
use super::envelope::{self, CipherPolicy};
use super::request::{self, Header, SignerCert};
use super::signed::{attribute, signed_data, Signing};
use super::{oids, MessageType};

/// How to write a request.
pub struct RequestParams<'a> {
    pub message_type: MessageType,
    pub transaction_id: &'a str,
    pub sender_nonce: &'a [u8],
    pub cipher: ContentCipher,
}

/// A pkiMessage carrying `content` (a CSR for PKCSReq) enveloped to `recipient` (the RA, or
/// the CA acting as RA) and signed by `signing`.
pub fn request(
    content: &[u8],
    recipient: &Certificate,
    signing: &Signing<'_>,
    params: &RequestParams<'_>,
) -> Result<Vec<u8>, String> {
    let recipient = signer_cert_of(recipient).map_err(|e| e.to_string())?;
    let enveloped = envelope::seal(content, params.cipher, &recipient).map_err(|r| r.text.to_string())?;
    let attrs = (|| -> der::Result<_> {
        Ok(vec![
            attribute(
                oids::MESSAGE_TYPE,
                Any::encode_from(&PrintableStringRef::new(params.message_type.wire())?)?,
            )?,
            attribute(
                oids::TRANSACTION_ID,
                Any::encode_from(&PrintableStringRef::new(params.transaction_id)?)?,
            )?,
            attribute(
                oids::SENDER_NONCE,
                Any::encode_from(&OctetString::new(params.sender_nonce)?)?,
            )?,
        ])
    })()
    .map_err(|e| e.to_string())?;
    signed_data(Some(&enveloped), attrs, signing).map_err(|e| e.to_string())
}

/// The recipient-side view of a certificate (what `seal` encrypts to).
pub fn signer_cert_of(cert: &Certificate) -> der::Result<SignerCert> {
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info();
    Ok(SignerCert {
        der: cert.to_der()?,
        issuer_and_serial: IssuerAndSerial {
            issuer: tbs.issuer().clone(),
            serial: der::asn1::Int::new(tbs.serial_number().as_bytes())?,
        },
        spki_der: spki.to_der()?,
        rsa_public_key: spki.subject_public_key.raw_bytes().to_vec(),
    })
}

/// A verified CertRep.
#[derive(Debug)]
pub struct CertRep {
    pub header: Header,
    /// The certificate that signed the reply, DER.
    pub signer_der: Vec<u8>,
    /// The certificates of a SUCCESS, DER, as sent.
    pub certificates: Vec<Vec<u8>>,
    /// The CRLs of a SUCCESS (GetCRL), DER.
    pub crls: Vec<Vec<u8>>,
}

/// Verifies a CertRep's signature and, for SUCCESS, opens the envelope with `requester` (the
/// certificate and key the request was signed with) and reads the certificates.
pub fn read_cert_rep(body: &[u8], requester: &Identity) -> Result<CertRep, String> {
    let message = request::decode(body).map_err(|e| e.to_string())?;
    let signer = message.verify().map_err(|r| r.text.to_string())?;
    let signer_der = signer.der.clone();
    let mut certificates = Vec::new();
    let mut crls = Vec::new();
    if message.header.reply.pki_status.as_deref() == Some("0") {
        let mut rejection_secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut rejection_secret).map_err(|_| "system RNG".to_string())?;
        let policy = CipherPolicy {
            allow_des: true,
            rejection_secret,
        };
        let opened = envelope::open(&message.econtent, &[requester], policy).map_err(|r| r.text.to_string())?;
        let ci = cms::content_info::ContentInfo::from_der(&opened.content).map_err(|e| e.to_string())?;
        let sd = ci.content.decode_as::<SignedDataIn>().map_err(|e| e.to_string())?;
        for cert in sd.certificates.unwrap_or_default() {
            certificates.push(cert.to_der().map_err(|e| e.to_string())?);
        }
        for crl in sd.crls.unwrap_or_default() {
            crls.push(crl.to_der().map_err(|e| e.to_string())?);
        }
    }
    Ok(CertRep {
        header: message.header,
        signer_der,
        certificates,
        crls,
    })
}
