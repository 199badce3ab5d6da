//! PKCSReq: the enrollment policy, step by step (challenge → CSR checks → issue → record).

use der::Encode;
use scepd_ca::{LeafRequest, Okta, Serial};

use super::{ScepService, ServiceError};
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{csr, envelope, reply, FailInfo, Rejection};
use crate::store::{CertRecord, CertStatus, Issuance, IssuanceOutcome};

/// A certificate ready to send: the sealed certs-only body and its serial.
pub(super) struct Issued {
    pub enveloped: Vec<u8>,
    pub serial: String,
}

/// Why no certificate was sent.
pub(super) enum Refusal {
    /// Answered with CertRep FAILURE.
    Rejected { rejection: Rejection, challenge: Option<&'static str> },
    /// Not answerable in SCEP (store down, …).
    Internal(ServiceError),
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Rejected { rejection, challenge: None }
    }
}

impl<E: Into<ServiceError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Internal(e.into())
    }
}

/// The same answer for every refused challenge (missing, wrong, used, expired): no oracle.
const CHALLENGE_REFUSED: Rejection = Rejection::new(FailInfo::BadRequest, "challenge password rejected");
const SERIAL_ATTEMPTS: usize = 4;

pub(super) fn pkcs_req(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    let authority = svc.authority();
    let mut identities = vec![authority.recipient()];
    if authority.ra.is_some() {
        identities.push(&authority.ca);
    }
    let opened = envelope::open(&message.econtent, &identities, svc.policy().cipher)?;
    let csr = csr::parse_and_verify(&opened.content).map_err(|r| {
        // Content that decrypted but is no CSR gets the same answer as content that did not
        // decrypt: a wrong key yields garbage, and that must not be distinguishable.
        if r.fail_info == FailInfo::BadRequest { envelope::UNDECRYPTABLE } else { r }
    })?;
    let transaction_id = message.header.transaction_id_text();
    let csr_sha256 = hex::encode(csr.fingerprint);

    // A retried transaction (same transactionID, same CSR) gets the same certificate again.
    if let Some(existing) = svc.store().find_by_transaction(&transaction_id)? {
        if existing.csr_sha256 != csr_sha256 {
            return Err(Rejection::new(FailInfo::BadRequest, "transactionID already used for another request").into());
        }
        let serial = parse_serial(&existing.serial)?;
        if let Some((record, der)) = svc.store().certificate(&serial)? {
            return seal(&der, record.serial, &opened, signer);
        }
    }

    if csr.key_bits < svc.policy().min_key_bits {
        return Err(Rejection::new(FailInfo::BadRequest, "RSA key too small").into());
    }
    if let Err(why) = svc.policy().challenge.check(csr.challenge.as_deref()) {
        return Err(Refusal::Rejected { rejection: CHALLENGE_REFUSED, challenge: Some(why.reason()) });
    }

    let subject = csr.subject.to_string();
    let device_id = scepd_ca::name::common_name(&csr.subject);
    let now = scepd_ca::time::unix_now();
    for _ in 0..SERIAL_ATTEMPTS {
        let serial = Serial::random();
        let cert = authority.issue(&LeafRequest {
            serial,
            subject: csr.subject.clone(),
            public_key: csr.public_key.clone(),
            subject_alt_name: csr.subject_alt_name.clone(),
            // Back-date a little for clients whose clocks run slow.
            not_before: now.saturating_sub(300),
            validity_days: svc.policy().cert_validity_days,
            crl_url: svc.policy().crl_url.clone(),
            ocsp_url: None,
            ca_issuers_url: None,
            okta: Okta::Plain,
        })?;
        let der = cert.to_der()?;
        let tbs = cert.tbs_certificate();
        let record = CertRecord {
            serial: serial.to_hex(),
            subject: subject.clone(),
            not_before: scepd_ca::time::from_x509(&tbs.validity().not_before),
            not_after: scepd_ca::time::from_x509(&tbs.validity().not_after),
            status: CertStatus::Active,
            device_id: device_id.clone(),
            transaction_id: transaction_id.clone(),
            csr_sha256: csr_sha256.clone(),
            issued_at: now,
        };
        match svc.store().record_issuance(&Issuance { serial, record, der: der.clone() })? {
            IssuanceOutcome::Stored => {
                if svc.policy().challenge.insecure() {
                    tracing::warn!(serial = %serial, "INSECURE: certificate issued without a challenge (--insecure-no-challenge)");
                }
                return seal(&der, serial.to_hex(), &opened, signer);
            }
            // A concurrent retry of the same transaction won the race: send its certificate.
            IssuanceOutcome::AlreadyIssued(record, der) => return seal(&der, record.serial, &opened, signer),
            IssuanceOutcome::TransactionConflict => {
                return Err(Rejection::new(FailInfo::BadRequest, "transactionID already used for another request").into())
            }
            IssuanceOutcome::SerialTaken => continue,
        }
    }
    Err(ServiceError::Store(crate::store::StoreError::Backend("no free serial number".into())).into())
}

fn parse_serial(hex_serial: &str) -> Result<Serial, ServiceError> {
    let bytes = hex::decode(hex_serial).ok().and_then(|b| <[u8; 16]>::try_from(b).ok());
    bytes.map(Serial).ok_or_else(|| ServiceError::Store(crate::store::StoreError::Corrupt(format!("serial {hex_serial}"))))
}

/// The issued certificate in a certs-only SignedData, sealed to the request's signer with the
/// request's own cipher.
fn seal(der: &[u8], serial: String, opened: &envelope::Opened, signer: &SignerCert) -> Result<Issued, Refusal> {
    let certs_only = reply::certs_only(&[der], &[])?;
    let enveloped = envelope::seal(&certs_only, opened.cipher, signer)?;
    Ok(Issued { enveloped, serial })
}
