//! PKCSReq: the enrollment policy, step by step (challenge → CSR checks → issue → record).

use der::Encode;
use scepd_ca::{LeafRequest, Okta, Serial};

use super::{ScepService, ServiceError};
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{csr, envelope, reply, FailInfo, Rejection};
use crate::challenge::{binding, ChallengeRejection, Presented};
use crate::store::{CertRecord, CertStatus, ChallengeHash, ChallengeRecord, ChallengeState, Issuance, IssuanceOutcome};

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
    let now = scepd_ca::time::unix_now();
    let grant = check_challenge(svc, &csr, now)?;
    let subject = csr.subject.to_string();
    // The device a challenge was bound to, else the subject CN.
    let device_id = match &grant {
        Grant::Dynamic(_, record) if record.device_id.is_some() => record.device_id.clone(),
        _ => scepd_ca::name::common_name(&csr.subject),
    };
    let redeems = match &grant {
        Grant::Dynamic(hash, _) => Some(*hash),
        _ => None,
    };
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
        match svc.store().record_issuance(&Issuance { serial, record, der: der.clone(), redeems })? {
            IssuanceOutcome::Stored => {
                if grant == Grant::Insecure {
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
            // A concurrent request redeemed the challenge first: this certificate is dropped
            // unsent and unstored.
            IssuanceOutcome::ChallengeUnavailable => {
                return Err(Refusal::Rejected { rejection: CHALLENGE_REFUSED, challenge: Some(ChallengeRejection::Used.reason()) })
            }
        }
    }
    Err(ServiceError::Store(crate::store::StoreError::Backend("no free serial number".into())).into())
}

/// What let a request through.
#[derive(Debug, PartialEq, Eq)]
enum Grant {
    Static,
    Insecure,
    Dynamic(ChallengeHash, ChallengeRecord),
}

fn refuse(why: ChallengeRejection) -> Refusal {
    Refusal::Rejected { rejection: CHALLENGE_REFUSED, challenge: Some(why.reason()) }
}

/// The challenge step: static, lab-only insecure, or a dynamic challenge that must exist, be
/// unused and unexpired, and match its bindings. The store redeems it later, atomically with
/// recording the certificate.
fn check_challenge(svc: &ScepService, csr: &csr::Csr, now: u64) -> Result<Grant, Refusal> {
    let policy = &svc.policy().challenge;
    let hash = match policy.classify(csr.challenge.as_deref()) {
        Presented::Static => return Ok(Grant::Static),
        Presented::Insecure => return Ok(Grant::Insecure),
        Presented::Missing => return Err(refuse(ChallengeRejection::Missing)),
        Presented::Dynamic(hash) => hash,
    };
    let mut found = svc.store().challenge(&hash)?;
    if found.is_none() {
        // Minted an instant ago and still on its way to the store?
        svc.sync_challenges();
        found = svc.store().challenge(&hash)?;
    }
    let why = match found {
        None => ChallengeRejection::Unknown,
        Some(record) => match record.state_at(now) {
            ChallengeState::Used => ChallengeRejection::Used,
            ChallengeState::Expired => ChallengeRejection::Expired,
            ChallengeState::Usable if !binding::matches(&record, csr) => ChallengeRejection::Mismatch,
            ChallengeState::Usable => return Ok(Grant::Dynamic(hash, record)),
        },
    };
    if policy.insecure() {
        return Ok(Grant::Insecure);
    }
    Err(refuse(why))
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
