//! CA rollover (RFC 8894 §4.7): the CA generations this node serves, which one issues, and
//! the operations that move from one to the next.
//!
//! The store records the generations after the original CA and the moment each became (or
//! becomes) current ([`crate::store::ca_state`]); every node reads that record every few
//! seconds, and decides by the clock which generation is current. An activation scheduled
//! ahead (`ca activate-next --at`) so switches every node at the same second. The keys are
//! the data directory's (`DIR/cas/<issuer id>/`): a node that lacks a generation's files keeps
//! serving what it has and reports itself not ready once that generation is current.

use std::collections::HashMap;
use std::sync::Arc;

use scepd_ca::{Authority, IssuerId};

pub use super::ca_set::{CaRole, CaSet, CaState, Generation, GenerationLoader};
use super::{Origin, ScepService, ServiceError};
use crate::scep::digest::DigestAlg;
use crate::scep::signed::{signed_data, SignatureAlgorithmField, Signing};
use crate::store::{Activation, AddGeneration, AuditEvent, CaGenerationRecord, CertFilter, CertStatus};

/// One line of `scepd ca list`.
#[derive(Debug, serde::Serialize)]
pub struct CaListing {
    pub role: CaRole,
    pub issuer: String,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
    /// When it became or becomes current (none: not activated).
    pub activate_at: Option<u64>,
    pub original: bool,
    /// Whether this node has its keys.
    pub loaded: bool,
    pub certificates: u64,
    pub active_certificates: u64,
    /// The last notAfter of its certificates: a retired CA may go after this.
    pub last_certificate_not_after: Option<u64>,
    pub crl_url: Option<String>,
}

impl ScepService {
    /// How this node loads a generation's keys (set once by the server, before serving).
    pub fn set_generation_loader(&self, loader: GenerationLoader) {
        let _ = self.cas.loader.set(loader);
    }

    /// The generations as last read from the store.
    pub fn ca_set(&self) -> Arc<CaSet> {
        self.cas.snapshot()
    }

    /// The CA that issues now, with its keys.
    pub fn authority(&self) -> Arc<Authority> {
        self.ca_set().issuing(scepd_ca::time::unix_now()).1
    }

    /// Whether a next CA is prepared (GetCACaps lists GetNextCACert then).
    pub fn has_next_ca(&self) -> bool {
        self.ca_set().next(scepd_ca::time::unix_now()).is_some()
    }

    /// Reads the generations from the store, loads the keys of new ones, and updates the gauges.
    pub fn refresh_cas(&self) -> Result<(), ServiceError> {
        let records = self.store().ca_generations()?;
        let old = self.ca_set();
        let mut generations = vec![Arc::clone(&old.generations[0])];
        // A removed generation is no longer served: no CRL, no OCSP, not listed.
        for record in records.into_iter().filter(|r| r.removed_at.is_none()) {
            let kept = old
                .by_issuer(&record.issuer)
                .filter(|g| g.activate_at == record.activate_at && g.authority.is_some());
            let generation = match kept {
                Some(g) => Arc::clone(g),
                None => {
                    let authority = old
                        .by_issuer(&record.issuer)
                        .and_then(|g| g.authority.clone())
                        .or_else(|| self.load_generation(&record.issuer));
                    Arc::new(Generation::new(
                        record.issuer,
                        false,
                        (record.ca_der, record.ra_der, record.activate_at),
                        authority,
                    ))
                }
            };
            generations.push(generation);
        }
        self.cas.replace(CaSet { generations });
        self.refresh_ca_gauges();
        Ok(())
    }

    fn load_generation(&self, issuer: &IssuerId) -> Option<Arc<Authority>> {
        let loader = self.cas.loader.get()?;
        let mut missing = self.cas.missing.lock().expect("missing generations");
        match loader(issuer) {
            Ok(authority) => {
                missing.remove(issuer);
                Some(Arc::new(authority))
            }
            Err(e) => {
                if missing.insert(*issuer, e.clone()).is_none() {
                    tracing::warn!(issuer = %issuer, error = %e, "a CA generation's files are missing on this node");
                }
                None
            }
        }
    }

    /// Sets `scepd_ca_not_after_seconds` from the generations as last read (by role now).
    pub fn refresh_ca_gauges(&self) {
        let set = self.ca_set();
        let now = scepd_ca::time::unix_now();
        // The older gauge follows the CA that issues (its expiry alert is about that one).
        let (_, issuing) = set.issuing(now);
        let older = &self.metrics().ca_not_after;
        older.with_label_values(&["ca"]).set(issuing.ca.not_after() as f64);
        if let Some(ra) = &issuing.ra {
            older.with_label_values(&["ra"]).set(ra.not_after() as f64);
        }
        let gauge = &self.metrics().ca_generation_not_after;
        gauge.reset();
        for g in &set.generations {
            let (_, not_after) = g.validity();
            gauge
                .with_label_values(&[set.role(g, now).as_str(), &g.issuer.to_hex(), &g.subject()])
                .set(not_after as f64);
        }
    }

    /// Readiness of the generations: `ok`, or which one this node cannot serve.
    pub(super) fn ca_generations_check(&self) -> String {
        let set = self.ca_set();
        let now = scepd_ca::time::unix_now();
        let current = set.current(now);
        if current.authority.is_some() {
            return "ok".into();
        }
        let why = self
            .cas
            .missing
            .lock()
            .expect("missing generations")
            .get(&current.issuer)
            .cloned();
        format!(
            "the current CA {} is not in this node's data directory (copy {}/{} from the node that ran \
             `scepd ca rollover`): {}",
            current.issuer,
            crate::datadir::GENERATIONS_DIR,
            current.issuer,
            why.unwrap_or_default()
        )
    }

    /// Records the generation whose files are in this node's data directory as the next CA
    /// (`scepd ca rollover`, `scepd ca install-cert --next`), and audits it as `event`.
    pub fn register_next_ca(
        &self,
        issuer: &IssuerId,
        event: AuditEvent,
        origin: &Origin,
    ) -> Result<Result<(), String>, ServiceError> {
        let Some(authority) = self.load_generation(issuer) else {
            return Ok(Err(format!(
                "no CA generation {issuer} in the data directory ({}/{issuer})",
                crate::datadir::GENERATIONS_DIR
            )));
        };
        if self.ca_set().by_issuer(issuer).is_some_and(|g| g.original) {
            return Ok(Err("that is the original CA".into()));
        }
        let now = scepd_ca::time::unix_now();
        let record = CaGenerationRecord {
            issuer: *issuer,
            ca_der: authority.ca.der.clone(),
            ra_der: authority.ra.as_ref().map(|ra| ra.der.clone()),
            added_at: now,
            activate_at: None,
            removed_at: None,
            seq: 0,
        };
        let outcome = self.store().add_ca_generation(&record, now)?;
        self.refresh_cas()?;
        match outcome {
            AddGeneration::Added => {
                tracing::info!(issuer = %issuer, subject = %authority.ca.subject(), "next CA prepared");
                self.audit_blocking(origin.entry(event, None, Some(issuer.to_hex())));
                Ok(Ok(()))
            }
            AddGeneration::Duplicate => Ok(Err(format!("CA {issuer} is recorded already"))),
            AddGeneration::NextExists => Ok(Err(
                "a next CA is prepared already: activate it (`scepd ca activate-next`) first".into(),
            )),
        }
    }

    /// At start-up: generations in the data directory that the store does not know yet (made by
    /// `scepd ca rollover` while no server ran) are recorded as the next CA.
    pub fn register_local_generations(&self, issuers: &[IssuerId]) -> Result<(), ServiceError> {
        let known = self.ca_set();
        // The store's records, removed generations included: those stay removed.
        let recorded = self.store().ca_generations()?;
        let is_new = |i: &IssuerId| known.by_issuer(i).is_none() && !recorded.iter().any(|r| r.issuer == *i);
        for issuer in issuers.iter().filter(|i| is_new(i)) {
            match self.register_next_ca(issuer, AuditEvent::CaRollover, &Origin::policy())? {
                Ok(()) => {}
                Err(why) => tracing::warn!(issuer = %issuer, reason = %why, "CA generation not recorded"),
            }
        }
        Ok(())
    }

    /// Makes the next CA current at `at` (Unix seconds), on every node sharing the store.
    pub fn activate_next_ca(
        &self,
        at: u64,
        origin: &Origin,
    ) -> Result<Result<CaGenerationRecord, String>, ServiceError> {
        let set = self.ca_set();
        let Some(next) = set.generations.iter().find(|g| g.activate_at.is_none()) else {
            return Ok(Err("there is no next CA: run `scepd ca rollover` first".into()));
        };
        // This node switches too: it must be able to issue with the next CA.
        if next.authority.is_none() {
            return Ok(Err(format!(
                "the next CA {} is not in this node's data directory",
                next.issuer
            )));
        }
        let (not_before, not_after) = next.validity();
        if at >= not_after {
            return Ok(Err("that moment is past the next CA's notAfter".into()));
        }
        // An externally signed CA may start later: issuing before then would make chains no
        // client accepts.
        if at < not_before {
            return Ok(Err(format!(
                "that moment is before the next CA's notBefore ({}): activate it with --at then or later",
                scepd_ca::time::rfc3339(not_before)
            )));
        }
        // Before the current CA's own activation the next one would never be current.
        let latest = set.generations.iter().filter_map(|g| g.activate_at).max().unwrap_or(0);
        if at < latest {
            return Ok(Err(format!(
                "that moment is before the current CA became current ({})",
                scepd_ca::time::rfc3339(latest)
            )));
        }
        match self.store().activate_next_ca(at)? {
            Activation::NoNext => Ok(Err("there is no next CA: run `scepd ca rollover` first".into())),
            Activation::Scheduled(record) => {
                self.refresh_cas()?;
                tracing::info!(issuer = %record.issuer, at, "next CA activation recorded");
                self.audit_blocking(origin.entry(
                    AuditEvent::CaActivated,
                    None,
                    Some(format!("{} at {}", record.issuer, scepd_ca::time::rfc3339(at))),
                ));
                Ok(Ok(record))
            }
        }
    }

    /// `scepd ca remove`: forgets a retired CA once the last certificate it issued has expired
    /// (until then its CRL must go on). The original CA stays: it is the data directory's own.
    pub fn remove_retired_ca(&self, issuer: &IssuerId, origin: &Origin) -> Result<Result<(), String>, ServiceError> {
        let now = scepd_ca::time::unix_now();
        let listing = self.ca_listing()?;
        let Some(ca) = listing.iter().find(|l| l.issuer == issuer.to_hex()) else {
            return Ok(Err(format!("no CA {issuer}")));
        };
        if ca.original {
            return Ok(Err("the original CA stays: it is the data directory's ca.pem".into()));
        }
        if ca.role != CaRole::Retired {
            return Ok(Err(format!(
                "only a retired CA can be removed; {issuer} is {}",
                ca.role.as_str()
            )));
        }
        if let Some(last) = ca.last_certificate_not_after.filter(|&last| last > now) {
            return Ok(Err(format!(
                "its last certificate expires {}: until then its CRL must go on",
                scepd_ca::time::rfc3339(last)
            )));
        }
        if !self.store().remove_ca_generation(issuer, now)? {
            return Ok(Err(format!("no CA {issuer}")));
        }
        self.refresh_cas()?;
        tracing::info!(issuer = %issuer, "retired CA removed");
        self.audit_blocking(origin.entry(AuditEvent::CaRemoved, None, Some(issuer.to_hex())));
        Ok(Ok(()))
    }

    /// `scepd ca list`: every generation with its role and certificate counts.
    pub fn ca_listing(&self) -> Result<Vec<CaListing>, ServiceError> {
        let set = self.ca_set();
        let now = scepd_ca::time::unix_now();
        // One pass over the certificates (an operator's command, not a request path).
        let mut counts: HashMap<Option<IssuerId>, (u64, u64, Option<u64>)> = HashMap::new();
        for record in self.store().certificates(&CertFilter::default())? {
            let entry = counts.entry(record.issuer).or_default();
            entry.0 += 1;
            if record.status_at(now) == CertStatus::Active {
                entry.1 += 1;
            }
            entry.2 = entry.2.max(Some(record.not_after));
        }
        Ok(set
            .generations
            .iter()
            .map(|g| {
                let (total, active, last) = counts.get(&g.record_issuer()).copied().unwrap_or_default();
                let (not_before, not_after) = g.validity();
                CaListing {
                    role: set.role(g, now),
                    issuer: g.issuer.to_hex(),
                    subject: g.subject(),
                    not_before,
                    not_after,
                    activate_at: g.activate_at,
                    original: g.original,
                    loaded: g.authority.is_some(),
                    certificates: total,
                    active_certificates: active,
                    last_certificate_not_after: last,
                    crl_url: self.crl_url_of(g),
                }
            })
            .collect())
    }

    /// The CRL distribution point of `generation`'s certificates: the original CA keeps the
    /// URL its certificates have always named (`/crl`); each later one has its own.
    pub fn crl_url_of(&self, generation: &Generation) -> Option<String> {
        let policy = self.policy();
        match generation.original {
            true => policy.crl_url.clone(),
            false => policy
                .crl_url
                .as_ref()
                .map(|_| format!("{}/crl/{}.crl", policy.public_url, generation.issuer)),
        }
    }

    /// The caIssuers URL of `generation`'s certificates (`/ca.crt` for the original CA).
    pub fn ca_issuers_url_of(&self, generation: &Generation) -> Option<String> {
        let policy = self.policy();
        match generation.original {
            true => policy.lifecycle.ca_issuers_url.clone(),
            false => policy
                .lifecycle
                .ca_issuers_url
                .as_ref()
                .map(|_| format!("{}/ca/{}.crt", policy.public_url, generation.issuer)),
        }
    }

    /// GetCACert for the current CA: body and content type.
    pub fn ca_cert(&self) -> (Vec<u8>, &'static str) {
        let (generation, authority) = self.ca_set().issuing(scepd_ca::time::unix_now());
        match &generation.ca_cert_body {
            Some((body, content_type)) => (body.clone(), content_type),
            None => (authority.ca.der.clone(), "application/x-x509-ca-cert"),
        }
    }

    /// GetNextCACert (RFC 8894 §4.7.1): a SignedData signed by the current CA (its certificate
    /// included, so that a client finds the signer and checks it with the CA it already
    /// trusts) whose content is a degenerate certs-only SignedData with the next CA's RA (when
    /// it has one) and CA certificates. sscep reads exactly this: the signer from the outer
    /// certificates, the next CA's from the inner message. None while no next CA is prepared.
    pub fn next_ca_cert(&self) -> Result<Option<Vec<u8>>, ServiceError> {
        let set = self.ca_set();
        let now = scepd_ca::time::unix_now();
        let Some(next) = set.next(now) else {
            return Ok(None);
        };
        let (_, current) = set.issuing(now);
        let mut certs: Vec<&[u8]> = Vec::new();
        if let Some(ra) = &next.ra_der {
            certs.push(ra);
        }
        certs.push(&next.ca_der);
        let inner = crate::scep::reply::certs_only(&certs, &[])?;
        let signing = Signing {
            cert: &current.ca.cert,
            key: current.ca.key.as_ref(),
            digest: DigestAlg::Sha256,
            algorithm_field: SignatureAlgorithmField::RsaEncryption,
        };
        Ok(Some(signed_data(Some(&inner), Vec::new(), &signing)?))
    }

    /// The DER certificate of generation `issuer` (`/ca/<issuer id>.crt`).
    pub fn ca_certificate_of(&self, issuer: &IssuerId) -> Option<Vec<u8>> {
        self.ca_set().by_issuer(issuer).map(|g| g.ca_der.clone())
    }

    /// The CA certificates a device profile carries: the current CA's, and the next one's
    /// during the overlap (devices then trust certificates of both).
    pub fn profile_ca_certificates(&self) -> Vec<Vec<u8>> {
        let set = self.ca_set();
        let now = scepd_ca::time::unix_now();
        let mut certs = vec![set.current(now).ca_der.clone()];
        certs.extend(set.next(now).map(|g| g.ca_der.clone()));
        certs
    }
}
