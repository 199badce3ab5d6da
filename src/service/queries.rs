//! GetCert (21), GetCRL (22) and CertPoll (20): RFC 8894 §3.3.3–3.3.4 and §4.4–4.6.

use der::{Decode, Sequence};
use x509_cert::name::Name;

use scepd_ca::Serial;

use super::enroll::{open_envelope, seal, undecryptable, Issued, Refusal};
use super::ScepService;
use crate::scep::asn1::IssuerAndSerial;
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{envelope, reply, FailInfo, Rejection};

/// CertPoll's messageData (RFC 8894 §3.3.3).
#[derive(Clone, Debug, Sequence)]
struct IssuerAndSubject {
    issuer: Name,
    subject: Name,
}

const UNKNOWN_CERT: Rejection = Rejection::new(FailInfo::BadCertId, "no such certificate");

fn issuer_and_serial(content: &[u8]) -> Result<IssuerAndSerial, Refusal> {
    IssuerAndSerial::from_der(content).map_err(|_| {
        undecryptable(Rejection::new(
            FailInfo::BadRequest,
            "messageData is not an IssuerAndSerialNumber",
        ))
    })
}

/// GetCert: a certificate this CA issued, by issuer and serial.
pub(super) fn get_cert(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    let opened = open_envelope(svc, message)?;
    let wanted = issuer_and_serial(&opened.content)?;
    if wanted.issuer != *svc.authority().ca.subject() {
        return Err(UNKNOWN_CERT.into());
    }
    let serial = Serial::try_from(wanted.serial.as_bytes()).map_err(|_| UNKNOWN_CERT)?;
    let (record, der) = svc.store().certificate(&serial)?.ok_or(UNKNOWN_CERT)?;
    seal(&der, Some(record.serial), &opened, signer)
}

/// GetCRL: the current CRL, in a certs-only SignedData.
pub(super) fn get_crl(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    let opened = open_envelope(svc, message)?;
    let wanted = issuer_and_serial(&opened.content)?;
    if wanted.issuer != *svc.authority().ca.subject()
        && wanted.issuer != *svc.authority().ca.cert.tbs_certificate().issuer()
    {
        return Err(Rejection::new(FailInfo::BadCertId, "no CRL for that issuer").into());
    }
    let crl = svc.crl()?;
    let body = reply::certs_only(&[], &[&crl.der])?;
    let enveloped = envelope::seal(&body, opened.cipher, signer)?;
    Ok(Issued {
        enveloped,
        serial: None,
        issued: None,
        redeemed: false,
    })
}

/// CertPoll: scepd answers PKCSReq at once, so a poll finds the certificate of its transaction
/// or nothing.
pub(super) fn cert_poll(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    let opened = open_envelope(svc, message)?;
    IssuerAndSubject::from_der(&opened.content).map_err(|_| {
        undecryptable(Rejection::new(
            FailInfo::BadRequest,
            "messageData is not an IssuerAndSubject",
        ))
    })?;
    let record = svc
        .store()
        .find_by_transaction(&message.header.transaction_id_text())?
        .ok_or(UNKNOWN_CERT)?;
    let (_, der) = svc.store().certificate(&record.serial)?.ok_or(UNKNOWN_CERT)?;
    seal(&der, Some(record.serial), &opened, signer)
}
