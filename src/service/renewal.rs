//! RenewalReq (RFC 8894 §2.5, messageType 17): for clients that renew (sscep, certmonger, Cisco)
//! rather than re-enroll as Apple does. Authorized by the old certificate itself — the
//! pkiMessage is signed with its key — so no challenge is needed.

use super::enroll::{issue, open_csr, Issued, Plan, Refusal};
use super::ScepService;
use crate::scep::request::{PkiMessage, SignerCert};
use crate::scep::{FailInfo, Rejection};
use crate::store::{CertStatus, IssuanceKind, Supersede};
use scepd_ca::Serial;

pub(super) fn renewal_req(svc: &ScepService, message: &PkiMessage, signer: &SignerCert) -> Result<Issued, Refusal> {
    // On its way to the commit from here (see `pkcs_req`).
    let mut approach = svc.committer.approach();
    let (opened, csr) = open_csr(svc, message)?;
    // A certificate of any CA generation renews (one of a retired CA across a rollover too);
    // the new certificate comes from the current CA.
    let ours = svc
        .ca_set()
        .loaded(scepd_ca::time::unix_now())
        .iter()
        .any(|(_, authority)| signer.issuer_and_serial.issuer == *authority.ca.subject());
    if !ours {
        return Err(Rejection::new(
            FailInfo::BadRequest,
            "RenewalReq must be signed by a certificate of this CA",
        )
        .into());
    }
    let unknown = Rejection::new(FailInfo::BadCertId, "the signing certificate is unknown");
    let serial = Serial::try_from(signer.issuer_and_serial.serial.as_bytes()).map_err(|_| unknown)?;
    let (old, old_der) = svc.store().certificate(&serial)?.ok_or(unknown)?;
    // The signer must be the very certificate we issued, not one that only claims our name.
    if old_der != signer.der {
        return Err(unknown.into());
    }
    let now = scepd_ca::time::unix_now();
    // Only the device's current certificate renews: a superseded one renewing would supersede
    // the current one in turn.
    match old.status_at(now) {
        CertStatus::Revoked => {
            return Err(Rejection::new(FailInfo::BadRequest, "the certificate to renew is revoked").into())
        }
        CertStatus::Expired => {
            return Err(Rejection::new(FailInfo::BadRequest, "the certificate to renew has expired").into())
        }
        CertStatus::Superseded => {
            return Err(Rejection::new(FailInfo::BadRequest, "the certificate to renew is superseded").into())
        }
        CertStatus::Active => {}
    }
    let lifecycle = &svc.policy().lifecycle;
    let lifetime = old.not_after.saturating_sub(old.not_before);
    let window_opens = old
        .not_after
        .saturating_sub(lifetime * u64::from(lifecycle.renewal_window_percent) / 100);
    if now < window_opens {
        return Err(Rejection::new(FailInfo::BadRequest, "outside the renewal window").into());
    }
    let csr = super::enroll::check_csr(svc, &csr)?;
    let old_cert: scepd_ca::Certificate = der::Decode::from_der(&old_der).map_err(super::ServiceError::from)?;
    // A renewal renews an identity; it does not change it (no challenge authorizes a new one).
    let old_tbs = old_cert.tbs_certificate();
    let old_san = old_tbs
        .extensions()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        })
        .map(|e| e.extn_value.as_bytes().to_vec());
    let new_san = csr.subject_alt_name.as_ref().map(|e| e.extn_value.as_bytes().to_vec());
    if *old_tbs.subject() != csr.subject || old_san != new_san {
        return Err(Rejection::new(
            FailInfo::BadRequest,
            "a renewal must keep the subject and subjectAltName",
        )
        .into());
    }
    if !lifecycle.allow_key_reuse && *old_cert.tbs_certificate().subject_public_key_info() == csr.public_key {
        return Err(Rejection::new(FailInfo::BadRequest, "renewal needs a new key").into());
    }
    let okta = old_cert
        .tbs_certificate()
        .extensions()
        .is_some_and(|exts| exts.iter().any(|e| e.extn_id == scepd_ca::OKTA_DEVICE_ACCESS_OID));
    // The renewal proves possession of the old certificate, and vouches for its device id no
    // more than that certificate's issuance did: an unvouched one replaces only itself.
    let supersede = if old.device_bound {
        Supersede::Device {
            max_valid: lifecycle.max_valid_per_device,
        }
    } else {
        Supersede::Only(old.serial)
    };
    let plan = Plan {
        transaction_id: message.header.transaction_id_text(),
        device_id: old.device_id.clone(),
        device_bound: old.device_bound,
        supersede,
        kind: IssuanceKind::Renewal,
        redeems: None,
        okta,
        challenge: None,
    };
    issue(svc, &mut approach, &csr, &plan, &opened, signer, now)
}
