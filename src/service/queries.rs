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
    // Certificates of every CA generation (serials are unique across them).
    let ours = svc
        .ca_set()
        .generations
        .iter()
        .any(|g| g.subject_name().is_some_and(|n| n == wanted.issuer));
    if !ours {
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
    // The CRL of the generation that issued the named certificate; of the current one when
    // the request names the CA itself (by its issuer, its own issuer's name).
    let set = svc.ca_set();
    let now = scepd_ca::time::unix_now();
    let by_serial = Serial::try_from(wanted.serial.as_bytes())
        .ok()
        .and_then(|serial| svc.store().certificate(&serial).ok().flatten())
        .map(|(record, _)| std::sync::Arc::clone(set.of_record(record.issuer)));
    let current = set.current(now);
    let generation = by_serial.unwrap_or_else(|| std::sync::Arc::clone(current));
    let named = |g: &super::rollover::Generation| {
        g.certificate_parsed().is_some_and(|c| {
            wanted.issuer == *c.tbs_certificate().subject() || wanted.issuer == *c.tbs_certificate().issuer()
        })
    };
    if !named(&generation) {
        return Err(Rejection::new(FailInfo::BadCertId, "no CRL for that issuer").into());
    }
    let crl = svc
        .crl_of(&generation)?
        .ok_or(Rejection::new(FailInfo::BadCertId, "no CRL for that issuer"))?;
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
