//! PKCSReq and RenewalReq: the issuance policy, step by step (authorization → CSR checks →
//! issue → record, which supersedes the device's earlier certificates).

use der::Encode;
use scepd_ca::{LeafRequest, Okta, Serial};

use super::{DeviceIdField, ScepService, ServiceError, UnboundReenrollment};
use crate::challenge::{binding, ChallengeRejection, Presented};
use crate::scep::csr::Csr;
use crate::scep::envelope::Opened;
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{csr, envelope, reply, FailInfo, Rejection};
use crate::store::{
    AuditEntry, AuditEvent, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, ChallengeState,
    ChallengeUsed, Issuance, IssuanceKind, IssuanceOutcome, Supersede,
};

/// A certs-only body ready to send, sealed to the requester.
pub(super) struct Issued {
    pub enveloped: Vec<u8>,
    /// The certificate it carries (none for a CRL).
    pub serial: Option<Serial>,
    /// Set when the certificate was issued by this request (not sent again or looked up).
    pub issued: Option<IssuanceKind>,
    /// The issuance redeemed a one-time challenge.
    pub redeemed: bool,
}

/// Why no certificate was sent.
pub(super) enum Refusal {
    /// Answered with CertRep FAILURE.
    Rejected {
        rejection: Rejection,
        challenge: Option<&'static str>,
    },
    /// Not answerable in SCEP (store down, …).
    Internal(ServiceError),
}

impl From<Rejection> for Refusal {
    fn from(rejection: Rejection) -> Self {
        Refusal::Rejected {
            rejection,
            challenge: None,
        }
    }
}

impl<E: Into<ServiceError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Internal(e.into())
    }
}

/// The same answer for every refused challenge (missing, wrong, used, expired): no oracle.
const CHALLENGE_REFUSED: Rejection = Rejection::new(FailInfo::BadRequest, "challenge password rejected");
const TRANSACTION_REUSED: Rejection =
    Rejection::new(FailInfo::BadRequest, "transactionID already used for another request");
const SERIAL_ATTEMPTS: usize = 4;
/// Largest subject DN accepted (DER bytes).
const MAX_SUBJECT_BYTES: u32 = 2048;
/// Largest subjectAltName accepted (DER bytes): some dozens of names.
const MAX_SAN_BYTES: usize = 4096;

/// Opens the envelope with the RA (or, for clients that encrypt to it, the CA's) key.
///
/// Every CA generation this node has is tried, the current one first: a client that fetched
/// GetCACert just before a CA switch encrypts to the previous RA.
pub(super) fn open_envelope(svc: &ScepService, message: &PkiMessage) -> Result<Opened, Refusal> {
    let loaded = svc.ca_set().loaded(scepd_ca::time::unix_now());
    let mut identities = Vec::new();
    for (_, authority) in &loaded {
        identities.push(authority.recipient());
        if authority.ra.is_some() {
            identities.push(&authority.ca);
        }
    }
    Ok(envelope::open_checked(
        &message.econtent,
        &identities,
        svc.policy().cipher,
    )??)
}

/// Opens the envelope and reads the CSR.
pub(super) fn open_csr(svc: &ScepService, message: &PkiMessage) -> Result<(Opened, Csr), Refusal> {
    let opened = open_envelope(svc, message)?;
    let csr = csr::parse_and_verify(&opened.content).map_err(undecryptable)?;
    Ok((opened, csr))
}

/// Every failure after decryption gets the one answer a wrong key gets: content that does not
/// parse, a CSR whose signature does not verify, a non-RSA key. Anything else would tell a
/// padding-oracle attacker which guesses decrypted to well-padded bytes. The real reason goes
/// to the log.
pub(super) fn undecryptable(real: Rejection) -> Refusal {
    tracing::info!(reason = real.text, "decrypted content refused");
    envelope::UNDECRYPTABLE.into()
}

/// A retried transaction (same transactionID, same CSR) gets the same certificate again.
fn retried(
    svc: &ScepService,
    transaction_id: &str,
    csr: &Csr,
    opened: &Opened,
    signer: &SignerCert,
) -> Result<Option<Issued>, Refusal> {
    let Some(existing) = svc.store().find_by_transaction(transaction_id)? else {
        return Ok(None);
    };
    if existing.csr_sha256 != hex::encode(csr.fingerprint) {
        return Err(TRANSACTION_REUSED.into());
    }
    match svc.store().certificate(&existing.serial)? {
        Some((record, der)) => Ok(Some(seal(&der, Some(record.serial), opened, signer)?)),
        None => Ok(None),
    }
}

pub(super) fn pkcs_req(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    // From here the request is on its way to the commit: a leader waits for it (group commit).
    let mut approach = svc.committer.approach();
    let (opened, csr) = open_csr(svc, message)?;
    let transaction_id = message.header.transaction_id_text();
    if let Some(issued) = retried(svc, &transaction_id, &csr, &opened, signer)? {
        return Ok(issued);
    }
    let now = scepd_ca::time::unix_now();
    // The CSR policy before the challenge: a refusal must not depend on whether the challenge
    // was good, or a challenge could be tested (with a key too small, say) without being spent.
    let csr = check_csr(svc, &csr)?;
    // Challenge lifetimes are measured on the steady clock (see `steady_unix_now`).
    let grant = check_challenge(svc, &csr, scepd_ca::time::steady_unix_now())?;
    let field = svc.policy().lifecycle.device_id_field;
    // The device a challenge was bound to, else the configured CSR field — vouched for only when
    // the challenge bound that field.
    let (device_id, device_bound) = match &grant {
        Grant::Dynamic(_, record) if record.device_id.is_some() => (record.device_id.clone(), true),
        Grant::Dynamic(_, record) => (device_id_from_csr(field, &csr), binds_field(record, field)),
        _ => (device_id_from_csr(field, &csr), false),
    };
    let okta = match &grant {
        Grant::Dynamic(_, record) => record.okta_device_access,
        _ => None,
    }
    .unwrap_or(svc.policy().lifecycle.okta_device_access);
    let redeems = match &grant {
        Grant::Dynamic(hash, _) => Some(*hash),
        _ => None,
    };
    let earlier = match &device_id {
        Some(d) => svc.store().certificates(&CertFilter {
            device_id: Some(d.clone()),
            status: None,
        })?,
        None => Vec::new(),
    };
    let lifecycle = &svc.policy().lifecycle;
    let supersede = if device_bound {
        Supersede::Device {
            max_valid: lifecycle.max_valid_per_device,
        }
    } else {
        match lifecycle.unbound_reenrollment {
            UnboundReenrollment::KeepBoth => Supersede::Nothing,
            UnboundReenrollment::Allow => Supersede::DeviceWithoutRevocation,
            UnboundReenrollment::Refuse => {
                let valid = |r: &CertRecord| matches!(r.status_at(now), CertStatus::Active | CertStatus::Superseded);
                if earlier.iter().any(valid) {
                    return Err(refuse(ChallengeRejection::UnboundReenrollment));
                }
                Supersede::Nothing
            }
        }
    };
    // Apple re-enrolls by sending a new PKCSReq for the same device (see `unbound_reenrollment`
    // for what an unbound one does to the earlier certificates).
    let plan = Plan {
        transaction_id,
        device_id,
        device_bound,
        supersede,
        kind: if earlier.is_empty() {
            IssuanceKind::New
        } else {
            IssuanceKind::Reenroll
        },
        redeems,
        okta,
        challenge: Some(match &grant {
            Grant::Static => ChallengeUsed::Static,
            Grant::Insecure => ChallengeUsed::Insecure,
            Grant::Dynamic(_, record) => ChallengeUsed::Minted {
                endpoint: record.endpoint.clone(),
                minted_by: record.minted_by.clone(),
            },
        }),
    };
    issue(svc, &mut approach, &csr, &plan, &opened, signer, now)
}

/// Whether a challenge's binding fixes the CSR field the device id is read from.
fn binds_field(record: &ChallengeRecord, field: DeviceIdField) -> bool {
    match field {
        DeviceIdField::CommonName => record.subject_cn.is_some(),
        DeviceIdField::SubjectAltName => record.san.is_some(),
        DeviceIdField::SerialNumber => false,
    }
}

/// CSR policy, the same for every request whatever its challenge: a single-valued
/// challengePassword, key size, a subject that is not the CA's or the RA's, sizes, and the SAN
/// policy. Returns the request as it will be issued (the SANs the policy keeps).
pub(super) fn check_csr(svc: &ScepService, csr: &Csr) -> Result<Csr, Refusal> {
    // PKCS#9: challengePassword is single-valued. Two of them would let the binding check and the
    // redemption read different ones.
    if csr.challenge_values > 1 {
        return Err(Rejection::new(FailInfo::BadRequest, "more than one challengePassword").into());
    }
    if csr.key_bits < svc.policy().min_key_bits {
        return Err(Rejection::new(FailInfo::BadRequest, "RSA key too small").into());
    }
    // A device certificate names one device: a huge subject or thousands of SANs is abuse.
    let subject_len = der::Encode::encoded_len(&csr.subject)
        .map(u32::from)
        .unwrap_or(u32::MAX);
    let san_len = csr
        .subject_alt_name
        .as_ref()
        .map_or(0, |s| s.extn_value.as_bytes().len());
    if subject_len > MAX_SUBJECT_BYTES || san_len > MAX_SAN_BYTES {
        return Err(Rejection::new(FailInfo::BadRequest, "subject or subjectAltName too large").into());
    }
    if names_a_ca(svc, &csr.subject) {
        return Err(Rejection::new(FailInfo::BadRequest, "the subject is reserved").into());
    }
    let issued = Csr {
        subject_alt_name: csr.subject_alt_name.as_ref().and_then(|e| svc.policy().san.apply(e)),
        ..csr.clone()
    };
    if issued.subject.is_empty() && issued.subject_alt_name.is_none() {
        return Err(Rejection::new(FailInfo::BadRequest, "the request names no subject").into());
    }
    Ok(issued)
}

/// Whether `subject` is the CA's, the RA's, the OCSP signer's or a chain certificate's subject.
/// Names compare as sets of attributes with case-folded text, so that the same name in another
/// order or string type is caught too.
fn names_a_ca(svc: &ScepService, subject: &x509_cert::name::Name) -> bool {
    fn attributes(name: &x509_cert::name::Name) -> Vec<(String, String)> {
        let mut attrs: Vec<(String, String)> = name
            .iter_rdn()
            .flat_map(|rdn| rdn.iter())
            .map(|atv| {
                let text =
                    scepd_ca::name::attribute_string(&atv.value).unwrap_or_else(|| hex::encode(atv.value.value()));
                (atv.oid.to_string(), text.to_lowercase())
            })
            .collect();
        attrs.sort();
        attrs
    }
    if subject.is_empty() {
        return false;
    }
    let wanted = attributes(subject);
    let mut reserved = Vec::new();
    // The names of every CA generation this node has (a rollover's next CA included).
    for (_, authority) in svc.ca_set().loaded(scepd_ca::time::unix_now()) {
        reserved.push(attributes(authority.ca.subject()));
        reserved.extend(authority.ra.iter().map(|ra| attributes(ra.subject())));
        reserved.extend(authority.ocsp_signer.iter().map(|o| attributes(o.subject())));
        for der in &authority.chain {
            if let Ok(cert) = <scepd_ca::Certificate as der::Decode>::from_der(der) {
                reserved.push(attributes(cert.tbs_certificate().subject()));
            }
        }
    }
    reserved.contains(&wanted)
}

/// What to issue, decided by the request's checks.
pub(super) struct Plan {
    pub transaction_id: String,
    pub device_id: Option<String>,
    /// The device id is vouched for (see `CertRecord::device_bound`).
    pub device_bound: bool,
    pub supersede: Supersede,
    pub kind: IssuanceKind,
    pub redeems: Option<ChallengeHash>,
    pub okta: bool,
    /// The challenge the request carried (none for a RenewalReq).
    pub challenge: Option<ChallengeUsed>,
}

/// Issues the certificate, records it through `approach` (consuming the challenge, superseding
/// the device's earlier certificates) and seals it to the requester.
pub(super) fn issue(
    svc: &ScepService,
    approach: &mut super::committer::Approach<'_>,
    csr: &Csr,
    plan: &Plan,
    opened: &Opened,
    signer: &SignerCert,
    now: u64,
) -> Result<Issued, Refusal> {
    let policy = svc.policy();
    // The current CA generation issues (after a rollover's activation, the new one).
    let (generation, authority) = svc.ca_set().issuing(now);
    for _ in 0..SERIAL_ATTEMPTS {
        let serial = Serial::fresh();
        let cert = authority.issue(&LeafRequest {
            serial,
            subject: csr.subject.clone(),
            public_key: csr.public_key.clone(),
            // RFC 5280 §4.2.1.6: critical exactly when the subject is empty (never copied).
            subject_alt_name: csr.subject_alt_name.clone().map(|san| x509_cert::ext::Extension {
                critical: csr.subject.is_empty(),
                ..san
            }),
            // Back-dated a little for clients whose clocks run slow.
            not_before: now.saturating_sub(policy.not_before_backdate_seconds),
            validity_days: policy.cert_validity_days,
            crl_url: svc.crl_url_of(&generation),
            ocsp_url: policy.lifecycle.ocsp_url.clone(),
            ca_issuers_url: svc.ca_issuers_url_of(&generation),
            okta: if plan.okta { Okta::DeviceAccess } else { Okta::Plain },
        })?;
        let der = cert.to_der()?;
        let tbs = cert.tbs_certificate();
        let validity = tbs.validity();
        let record = CertRecord {
            device_id: plan.device_id.clone(),
            transaction_id: plan.transaction_id.clone(),
            csr_sha256: hex::encode(csr.fingerprint),
            kind: plan.kind,
            device_bound: plan.device_bound,
            issuer: generation.record_issuer(),
            challenge: plan.challenge.clone(),
            ..CertRecord::issued(
                &serial,
                csr.subject.to_string(),
                scepd_ca::time::from_x509(&validity.not_before),
                scepd_ca::time::from_x509(&validity.not_after),
                now,
            )
        };
        let issuance = Issuance {
            serial,
            record,
            der: der.clone(),
            redeems: plan.redeems,
            supersede: plan.supersede.clone(),
        };
        match approach.commit(issuance)? {
            IssuanceOutcome::Stored { superseded, revoked } => {
                if plan.challenge == Some(ChallengeUsed::Insecure) {
                    tracing::warn!(serial = %serial, "INSECURE: certificate issued without a challenge (--insecure-no-challenge)");
                }
                let metrics = svc.metrics();
                metrics.issued.with_label_values(&[plan.kind.as_str()]).inc();
                metrics
                    .revoked
                    .with_label_values(&["superseded"])
                    .inc_by(revoked.len() as u64);
                if plan.redeems.is_some() {
                    metrics.challenges_redeemed.inc();
                }
                if !superseded.is_empty() || !revoked.is_empty() {
                    tracing::info!(serial = %serial, superseded = ?superseded, revoked = ?revoked, device_bound = plan.device_bound, "earlier certificates of the device replaced");
                }
                // Whether the request that superseded a certificate vouched for its device is
                // what tells a takeover from a re-enrollment afterwards.
                let by = if plan.device_bound { "bound" } else { "unbound" };
                for old in &superseded {
                    svc.audit_blocking(AuditEntry {
                        event: AuditEvent::CertificateSuperseded,
                        actor: super::POLICY_ACTOR.into(),
                        serial: Some(*old),
                        device_id: plan.device_id.clone(),
                        detail: Some(format!("by {serial} ({by} request)")),
                        ..Default::default()
                    });
                }
                for serial in &revoked {
                    svc.audit_blocking(AuditEntry {
                        event: AuditEvent::CertificateRevoked,
                        actor: super::POLICY_ACTOR.into(),
                        serial: Some(*serial),
                        detail: Some(scepd_ca::Reason::SUPERSEDED.to_string()),
                        ..Default::default()
                    });
                }
                let issued = seal(&der, Some(serial), opened, signer)?;
                return Ok(Issued {
                    issued: Some(plan.kind),
                    redeemed: plan.redeems.is_some(),
                    ..issued
                });
            }
            // A concurrent retry of the same transaction won the race: send its certificate.
            IssuanceOutcome::AlreadyIssued(record, der) => return seal(&der, Some(record.serial), opened, signer),
            IssuanceOutcome::TransactionConflict => return Err(TRANSACTION_REUSED.into()),
            IssuanceOutcome::SerialTaken => continue,
            // A concurrent request redeemed the challenge first: this certificate is dropped
            // unsent and unstored.
            IssuanceOutcome::ChallengeUnavailable => return Err(refuse(ChallengeRejection::Used)),
        }
    }
    Err(ServiceError::NoFreeSerial(SERIAL_ATTEMPTS).into())
}

/// The device identity taken from the CSR when no challenge binding names one.
fn device_id_from_csr(field: DeviceIdField, csr: &Csr) -> Option<String> {
    match field {
        DeviceIdField::CommonName => scepd_ca::name::common_name(&csr.subject),
        DeviceIdField::SerialNumber => scepd_ca::name::attribute(&csr.subject, const_oid::db::rfc4519::SERIAL_NUMBER),
        DeviceIdField::SubjectAltName => binding::san_values(csr).into_iter().next(),
    }
}

/// What let a request through.
#[derive(Debug, PartialEq, Eq)]
enum Grant {
    Static,
    Insecure,
    Dynamic(ChallengeHash, Box<ChallengeRecord>),
}

fn refuse(why: ChallengeRejection) -> Refusal {
    Refusal::Rejected {
        rejection: CHALLENGE_REFUSED,
        challenge: Some(why.reason()),
    }
}

/// The challenge step: static, lab-only insecure, or a dynamic challenge that must exist, be
/// unused and unexpired, and match its bindings. The store redeems it later, atomically with
/// recording the certificate.
fn check_challenge(svc: &ScepService, csr: &Csr, now: u64) -> Result<Grant, Refusal> {
    let policy = &svc.policy().challenge;
    let keys = match policy.classify(csr.challenge.as_deref()) {
        Presented::Static => return Ok(Grant::Static),
        Presented::Insecure => return Ok(Grant::Insecure),
        Presented::Missing => return Err(refuse(ChallengeRejection::Missing)),
        Presented::Dynamic(keys) => keys,
    };
    let stored =
        |hash: ChallengeHash| -> Result<_, Refusal> { Ok(svc.store().challenge(&hash)?.map(|record| (hash, record))) };
    let mut found = stored(keys.ordered)?;
    if found.is_none() {
        // Minted an instant ago and still on its way to the store?
        svc.sync_challenges();
        found = stored(keys.ordered)?;
    }
    if found.is_none() {
        // Minted by a build from before keys were ordered (an upgrade with challenges out)?
        found = stored(keys.unordered)?;
    }
    let why = match found {
        None => ChallengeRejection::Unknown,
        Some((hash, record)) => match record.state_at(now) {
            ChallengeState::Used => ChallengeRejection::Used,
            ChallengeState::Expired => ChallengeRejection::Expired,
            ChallengeState::Usable if !binding::matches(&record, csr) => ChallengeRejection::Mismatch,
            ChallengeState::Usable => return Ok(Grant::Dynamic(hash, Box::new(record))),
        },
    };
    Err(refuse(why))
}

/// The issued certificate in a certs-only SignedData, sealed to the request's signer with the
/// request's own cipher.
pub(super) fn seal(
    der: &[u8],
    serial: Option<Serial>,
    opened: &Opened,
    signer: &SignerCert,
) -> Result<Issued, Refusal> {
    let certs_only = reply::certs_only(&[der], &[])?;
    let enveloped = envelope::seal(&certs_only, opened.cipher, signer)?;
    Ok(Issued {
        enveloped,
        serial,
        issued: None,
        redeemed: false,
    })
}
