//! RenewalReq (RFC 8894 §2.5, messageType 17): for clients that renew (sscep, certmonger, Cisco)
//! rather than re-enroll as Apple does. Authorized by the old certificate itself — the
//! pkiMessage is signed with its key — so no challenge is needed.

use super::enroll::{issue, open_csr, Issued, Plan, Refusal};
use super::ScepService;
use crate::api::parse_serial;
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{FailInfo, Rejection};
use crate::store::CertStatus;

pub(super) fn renewal_req(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    let (opened, csr) = open_csr(svc, message)?;
    let ca = &svc.authority().ca;
    if signer.issuer_and_serial.issuer != *ca.subject() {
        return Err(Rejection::new(FailInfo::BadRequest, "RenewalReq must be signed by a certificate of this CA").into());
    }
    let unknown = Rejection::new(FailInfo::BadCertId, "the signing certificate is unknown");
    let serial = parse_serial(&hex::encode(signer.issuer_and_serial.serial.as_bytes())).ok_or(unknown)?;
    let (old, old_der) = svc.store().certificate(&serial)?.ok_or(unknown)?;
    // The signer must be the very certificate we issued, not one that only claims our name.
    if old_der != signer.der {
        return Err(unknown.into());
    }
    let now = scepd_ca::time::unix_now();
    match old.status_at(now) {
        CertStatus::Revoked => return Err(Rejection::new(FailInfo::BadRequest, "the certificate to renew is revoked").into()),
        CertStatus::Expired => return Err(Rejection::new(FailInfo::BadRequest, "the certificate to renew has expired").into()),
        CertStatus::Active | CertStatus::Superseded => {}
    }
    let lifecycle = &svc.policy().lifecycle;
    let lifetime = old.not_after.saturating_sub(old.not_before);
    let window_opens = old.not_after.saturating_sub(lifetime * u64::from(lifecycle.renewal_window_percent) / 100);
    if now < window_opens {
        return Err(Rejection::new(FailInfo::BadRequest, "outside the renewal window").into());
    }
    if csr.key_bits < svc.policy().min_key_bits {
        return Err(Rejection::new(FailInfo::BadRequest, "RSA key too small").into());
    }
    let old_cert: scepd_ca::Certificate = der::Decode::from_der(&old_der).map_err(super::ServiceError::from)?;
    if !lifecycle.allow_key_reuse && *old_cert.tbs_certificate().subject_public_key_info() == csr.public_key {
        return Err(Rejection::new(FailInfo::BadRequest, "renewal needs a new key").into());
    }
    let okta = old_cert
        .tbs_certificate()
        .extensions()
        .is_some_and(|exts| exts.iter().any(|e| e.extn_id == scepd_ca::OKTA_DEVICE_ACCESS_OID));
    let plan = Plan {
        transaction_id: message.header.transaction_id_text(),
        device_id: old.device_id.clone(),
        kind: "renewal",
        redeems: None,
        okta,
        insecure: false,
    };
    issue(svc, &csr, &plan, &opened, signer, now)
}
