//! Revocation, the CRL and OCSP: what Okta and other relying parties check.

use std::sync::{Arc, Mutex};

use scepd_ca::crl::{sign_crl, CrlParams, EncodedRevokedEntry};
use scepd_ca::ocsp::{self, CertStatus as OcspStatus, ResponseStatus};
use scepd_ca::{Reason, Serial};

use super::rollover::Generation;
use super::{Origin, ScepService, ServiceError};
use crate::store::{AuditEvent, CertStatus, RevokeOutcome, StoredCrl};

/// The current CRL, rebuilt when a revocation happened (here or on another node sharing the
/// store) or when half its validity has passed, so relying parties never see one past nextUpdate.
/// Every CRL is published in the store: a node takes the one another node published for the
/// same revocations rather than signing its own, so all nodes serve one CRL and its number
/// never goes back whichever node a relying party asks.
#[derive(Default)]
pub struct CrlCache {
    current: Mutex<Option<Arc<StoredCrl>>>,
}

/// How often a node retries when other nodes keep publishing first (they cannot all keep
/// winning: each publication satisfies the rest).
const CRL_PUBLISH_ATTEMPTS: usize = 4;

/// Whether `crl` can still be served: it reflects every revocation up to `epoch`, and less
/// than half its validity has passed.
fn is_current(crl: &StoredCrl, epoch: u64, now: u64) -> bool {
    let half_life = crl.this_update + (crl.next_update - crl.this_update) / 2;
    crl.epoch >= epoch && now < half_life
}

/// OCSP answers are good for an hour.
const OCSP_VALIDITY: u64 = 3600;

/// A cached response is served for at most this long, well inside its validity.
const OCSP_CACHE_SECONDS: u64 = OCSP_VALIDITY / 4;

/// Cached responses at most (a flood of distinct requests starts the cache over).
const OCSP_CACHE_ENTRIES: usize = 10_000;

/// Signed OCSP responses to requests without a nonce, by request: RFC 5019 lets a responder
/// pre-produce them, and each costs an RSA signature. A response is served until the next
/// revocation (the store's revocation epoch moves), the next CRL, or `OCSP_CACHE_SECONDS`.
/// Responses naming a certificate this CA does not know are not kept: anyone can make up
/// serials, and they would push out the ones that matter.
#[derive(Default)]
pub struct OcspCache {
    state: Mutex<OcspCacheState>,
}

#[derive(Default)]
struct OcspCacheState {
    /// The revocation epoch and CRL number the entries reflect.
    epoch: u64,
    crl_number: u64,
    entries: std::collections::HashMap<Vec<u8>, (Vec<u8>, u64)>,
}

impl ScepService {
    /// Revokes one certificate on an operator's behalf (audited with `actor`).
    pub fn revoke(&self, serial: &Serial, reason: Reason, origin: &Origin) -> Result<RevokeOutcome, ServiceError> {
        let outcome = self.store().revoke(serial, reason, scepd_ca::time::unix_now())?;
        if let RevokeOutcome::Revoked(r) = &outcome {
            tracing::info!(serial = %r.serial, %reason, "certificate revoked");
            self.revoked(std::slice::from_ref(serial), reason, origin);
        }
        Ok(outcome)
    }

    /// Revokes every certificate of a device on an operator's behalf; returns their serials.
    pub fn revoke_device(&self, device_id: &str, reason: Reason, origin: &Origin) -> Result<Vec<Serial>, ServiceError> {
        let revoked = self
            .store()
            .revoke_device(device_id, reason, scepd_ca::time::unix_now())?;
        tracing::info!(device_id, count = revoked.len(), %reason, "device revoked");
        self.revoked(&revoked, reason, origin);
        Ok(revoked)
    }

    /// Revokes superseded certificates whose successor is older than `revoke_superseded_after`.
    pub fn revoke_due_superseded(&self) -> Result<Vec<Serial>, ServiceError> {
        let Some(after) = self.policy().lifecycle.revoke_superseded_after else {
            return Ok(Vec::new());
        };
        let now = scepd_ca::time::unix_now();
        let revoked = self.store().revoke_superseded_before(now.saturating_sub(after), now)?;
        self.revoked(&revoked, Reason::SUPERSEDED, &Origin::policy());
        Ok(revoked)
    }

    /// Counts and audits revocations that were committed.
    pub(super) fn revoked(&self, serials: &[Serial], reason: Reason, origin: &Origin) {
        self.metrics()
            .revoked
            .with_label_values(&[reason.as_str()])
            .inc_by(serials.len() as u64);
        for serial in serials {
            self.audit_blocking(origin.entry(AuditEvent::CertificateRevoked, Some(*serial), Some(reason.to_string())));
        }
    }

    /// Readiness: the store takes writes, the CA, RA and OCSP signer keys sign, the current CRL is not past
    /// its nextUpdate, the CA has not expired. Returns whether all hold and each check's result.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let now = scepd_ca::time::unix_now();
        let store = match self.store().ping() {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let authority = self.authority();
        let keys = key_check(&authority);
        let crl = match self.current_crl() {
            Some(c) if c.next_update > now => "ok".to_string(),
            Some(c) => format!("stale: nextUpdate {} passed", scepd_ca::time::rfc3339(c.next_update)),
            None => "not yet issued".to_string(),
        };
        let ca = if authority.ca.not_after() > now {
            "ok".to_string()
        } else {
            "expired".to_string()
        };
        let generations = self.ca_generations_check();
        let ready = [&store, &keys, &crl, &ca, &generations]
            .iter()
            .all(|c| c.as_str() == "ok");
        self.metrics().ready.set(i64::from(ready));
        (
            ready,
            serde_json::json!({ "ready": ready, "checks": {
                "store": store, "keys": keys, "crl": crl, "ca": ca, "ca_generations": generations
            } }),
        )
    }

    /// The CRL last built, without rebuilding it (for readiness and metrics).
    pub fn current_crl(&self) -> Option<Arc<StoredCrl>> {
        self.crl_cache.current.lock().expect("CRL cache").clone()
    }

    /// The original CA's CRL (`/crl`: the URL its certificates name): see [`Self::crl_of`].
    pub fn crl(&self) -> Result<Arc<StoredCrl>, ServiceError> {
        let original = Arc::clone(&self.ca_set().generations[0]);
        self.crl_of(&original)?
            .ok_or_else(|| ServiceError::Ca(scepd_ca::CaError::KeyUnavailable))
    }

    /// Keeps the CRL of every CA generation this node has from going past nextUpdate (a
    /// retired CA's too: its certificates stay checkable until they expire).
    pub fn refresh_crls(&self) -> Result<(), ServiceError> {
        for generation in self.ca_set().generations.iter().filter(|g| g.authority.is_some()) {
            self.crl_of(generation)?;
        }
        Ok(())
    }

    /// The current CRL of `generation`: the one cached here, or the newest published in the
    /// store, or a new one signed and published. None when this node lacks its keys and no
    /// other node published one.
    pub fn crl_of(&self, generation: &Generation) -> Result<Option<Arc<StoredCrl>>, ServiceError> {
        let epoch = self.store().revocation_epoch()?;
        let now = scepd_ca::time::unix_now();
        // The original CA's cache is the one readiness and the metrics read.
        let slot = match generation.original {
            true => &self.crl_cache.current,
            false => &generation.crl,
        };
        let mut current = slot.lock().expect("CRL cache");
        if let Some(crl) = current.as_ref().filter(|crl| is_current(crl, epoch, now)) {
            return Ok(Some(Arc::clone(crl)));
        }
        for _ in 0..CRL_PUBLISH_ATTEMPTS {
            let state = match generation.record_issuer() {
                None => self.store().latest_crl()?,
                Some(issuer) => self.store().issuer_crl(&issuer)?,
            };
            let Some(authority) = &generation.authority else {
                // Without the keys, serve what another node published.
                return Ok(state.published.map(Arc::new));
            };
            // thisUpdate never goes back in what is published, even when the clock does (set
            // back by hand, or a forward jump corrected): a new CRL is dated no earlier than the
            // last one, which relying parties may already hold.
            let not_before_published = state.published.as_ref().map_or(now, |crl| crl.this_update.max(now));
            let crl = match state.published.filter(|crl| is_current(crl, epoch, now)) {
                Some(published) => published,
                None => {
                    let built = self.build_crl(
                        generation,
                        authority,
                        (epoch, not_before_published),
                        state.last_number + 1,
                    )?;
                    let published = match generation.record_issuer() {
                        None => self.store().publish_crl(&built)?,
                        Some(issuer) => self.store().publish_issuer_crl(&issuer, &built)?,
                    };
                    if !published {
                        continue;
                    }
                    tracing::info!(number = built.number, issuer = %generation.issuer, "CRL issued");
                    built
                }
            };
            let crl = Arc::new(crl);
            *current = Some(Arc::clone(&crl));
            return Ok(Some(crl));
        }
        Err(ServiceError::CrlContention(CRL_PUBLISH_ATTEMPTS))
    }

    /// A CRL of `generation` dated `now` (thisUpdate) with its revocations up to `epoch`.
    fn build_crl(
        &self,
        generation: &Generation,
        authority: &scepd_ca::Authority,
        (epoch, now): (u64, u64),
        number: u64,
    ) -> Result<StoredCrl, ServiceError> {
        let lifecycle = &self.policy().lifecycle;
        let issuer = generation.record_issuer();
        let entries: Vec<EncodedRevokedEntry> = self
            .store()
            .revoked()?
            .into_iter()
            // Each CA's CRL lists its own certificates only.
            .filter(|row| row.issuer == issuer)
            // Entries of certificates that expired (longer ago than configured) are dropped.
            .filter(|row| row.not_after + lifecycle.crl_keep_expired_seconds >= now)
            .map(|row| row.entry)
            .collect();
        let params = CrlParams {
            number,
            this_update: now,
            next_update: now + lifecycle.crl_next_update_seconds,
        };
        let der = sign_crl(&authority.ca, &params, &entries)?;
        Ok(StoredCrl {
            der,
            number,
            this_update: params.this_update,
            next_update: params.next_update,
            epoch,
        })
    }

    /// The revocation epoch and CRL number an OCSP response reflects.
    fn ocsp_generation(&self) -> Option<(u64, u64)> {
        let epoch = self.store().revocation_epoch().ok()?;
        Some((epoch, self.current_crl().map_or(0, |c| c.number)))
    }

    /// The cached response to `request`, if it is one without a nonce that was answered since
    /// the last revocation or CRL. No private-key work.
    pub fn ocsp_cached(&self, request: &[u8]) -> Option<Vec<u8>> {
        let (epoch, crl_number) = self.ocsp_generation()?;
        let now = scepd_ca::time::unix_now();
        let cache = self.ocsp_cache.state.lock().expect("OCSP cache");
        if (cache.epoch, cache.crl_number) != (epoch, crl_number) {
            return None;
        }
        let (response, produced) = cache.entries.get(request)?;
        (now < produced + OCSP_CACHE_SECONDS).then(|| response.clone())
    }

    fn ocsp_remember(&self, request: &[u8], response: &[u8], generation: (u64, u64), now: u64) {
        let mut cache = self.ocsp_cache.state.lock().expect("OCSP cache");
        if (cache.epoch, cache.crl_number) != generation || cache.entries.len() >= OCSP_CACHE_ENTRIES {
            cache.entries.clear();
            (cache.epoch, cache.crl_number) = generation;
        }
        cache.entries.insert(request.to_vec(), (response.to_vec(), now));
    }

    /// Answers an OCSP request (DER) with a signed response (DER); never fails: errors are
    /// OCSP error statuses.
    pub fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        let Ok(parsed) = ocsp::parse_request(request) else {
            return ocsp::error_response(ResponseStatus::MalformedRequest);
        };
        // Read before the statuses, so that a revocation meanwhile makes the entry stale.
        let generation = self.ocsp_generation();
        if parsed.cert_ids.is_empty() {
            return ocsp::error_response(ResponseStatus::MalformedRequest);
        }
        let now = scepd_ca::time::unix_now();
        // The issuer is found by issuerNameHash and issuerKeyHash, among every CA generation
        // this node has; one response has one signer: the issuer of the first certificate
        // asked about (others' certificates are answered unknown).
        let loaded = self.ca_set().loaded(now);
        let signer_generation = parsed.cert_ids.first().and_then(|id| {
            loaded
                .iter()
                .find(|(_, authority)| ocsp::serial_if_issued_by(id, &authority.ca.cert).is_some())
        });
        let Some((issuer_generation, authority)) = signer_generation.or(loaded.first()) else {
            return ocsp::error_response(ResponseStatus::InternalError);
        };
        let ca = &authority.ca;
        let mut answers = Vec::new();
        for id in parsed.cert_ids {
            let status = match ocsp::serial_if_issued_by(&id, &ca.cert) {
                None => OcspStatus::Unknown,
                Some(serial) => match self.store().certificate(&serial) {
                    Ok(Some((record, _))) if record.issuer != issuer_generation.record_issuer() => OcspStatus::Unknown,
                    Err(e) => {
                        tracing::error!(error = %e, "store unavailable for OCSP");
                        return ocsp::error_response(ResponseStatus::TryLater);
                    }
                    Ok(None) => OcspStatus::Unknown,
                    Ok(Some((record, _))) if record.status == CertStatus::Revoked => OcspStatus::Revoked {
                        at: record.revoked_at.unwrap_or(now),
                        reason: record.revocation_reason.unwrap_or(Reason::UNSPECIFIED),
                    },
                    Ok(Some(_)) => OcspStatus::Good,
                },
            };
            answers.push((id, status));
        }
        // A delegated signer's certificate goes with the response, so clients can chain it.
        let (signer, include_cert) = match &authority.ocsp_signer {
            Some(delegate) => (delegate, true),
            None => (ca, false),
        };
        let cacheable = parsed.nonce.is_none() && answers.iter().all(|(_, s)| !matches!(s, OcspStatus::Unknown));
        match ocsp::build_response(
            signer,
            include_cert,
            &answers,
            parsed.nonce.as_deref(),
            now,
            now + OCSP_VALIDITY,
        ) {
            Ok(der) => {
                if let (true, Some(generation)) = (cacheable, generation) {
                    self.ocsp_remember(request, &der, generation, now);
                }
                der
            }
            Err(e) => {
                tracing::error!(error = %e, "building an OCSP response failed");
                ocsp::error_response(ResponseStatus::InternalError)
            }
        }
    }
}

/// `ok`, or `failed: ` and each key that does not sign, named by role and where it is kept
/// (a token key by its URI), so that an operator knows which token or file to look at.
fn key_check(authority: &scepd_ca::Authority) -> String {
    let keys = [
        ("ca", Some(&authority.ca)),
        ("ra", authority.ra.as_ref()),
        ("ocsp", authority.ocsp_signer.as_ref()),
    ];
    let failing: Vec<String> = keys
        .into_iter()
        .filter_map(|(role, identity)| {
            let key = &identity?.key;
            let error = key.sign_sha256(b"readyz").err()?;
            Some(match key.custody() {
                scepd_ca::KeyCustody::Reference(uri) => format!("{role} key {uri}: {error}"),
                _ => format!("{role} key: {error}"),
            })
        })
        .collect();
    if failing.is_empty() {
        "ok".to_string()
    } else {
        format!("failed: {}", failing.join("; "))
    }
}
