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
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use scepd_ca::{Authority, IssuerId};

use super::{Origin, ScepService, ServiceError};
use crate::scep::digest::DigestAlg;
use crate::scep::signed::{signed_data, SignatureAlgorithmField, Signing};
use crate::store::{Activation, AddGeneration, AuditEvent, CaGenerationRecord, CertFilter, CertStatus, StoredCrl};

/// What a CA generation is at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaRole {
    /// Issues certificates; GetCACert names it.
    Current,
    /// Prepared (GetNextCACert names it), not yet issuing.
    Next,
    /// Was current: issues nothing, still signs its CRL and answers OCSP for its certificates.
    Retired,
}

impl CaRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CaRole::Current => "current",
            CaRole::Next => "next",
            CaRole::Retired => "retired",
        }
    }
}

/// Loads a generation's CA (keys included) from this node's data directory.
pub type GenerationLoader = Box<dyn Fn(&IssuerId) -> Result<Authority, String> + Send + Sync>;

/// One CA generation as this node knows it.
pub struct Generation {
    pub issuer: IssuerId,
    /// The CA `scepd init` made (`DIR/ca.pem`): its certificates' records name no issuer.
    pub original: bool,
    /// When it became (or becomes) current; the original CA: 0. None: not activated yet.
    pub activate_at: Option<u64>,
    pub ca_der: Vec<u8>,
    pub ra_der: Option<Vec<u8>>,
    /// The CA with its keys, when this node has its files.
    pub authority: Option<Arc<Authority>>,
    /// Its GetCACert body and content type (when loaded).
    ca_cert_body: Option<(Vec<u8>, &'static str)>,
    /// The generation's CRL last built or fetched here (not the original's: see `CrlCache`).
    pub(super) crl: Mutex<Option<Arc<StoredCrl>>>,
}

impl Generation {
    fn new(
        issuer: IssuerId,
        original: bool,
        record: (Vec<u8>, Option<Vec<u8>>, Option<u64>),
        authority: Option<Arc<Authority>>,
    ) -> Generation {
        let (ca_der, ra_der, activate_at) = record;
        let ca_cert_body = authority.as_deref().and_then(|a| super::ca_cert_body(a).ok());
        Generation {
            issuer,
            original,
            activate_at,
            ca_der,
            ra_der,
            authority,
            ca_cert_body,
            crl: Mutex::new(None),
        }
    }

    /// The issuer its certificate records name: none for the original CA.
    pub fn record_issuer(&self) -> Option<IssuerId> {
        (!self.original).then_some(self.issuer)
    }

    fn is_active_at(&self, now: u64) -> bool {
        self.activate_at.is_some_and(|at| at <= now)
    }

    fn certificate(&self) -> Option<scepd_ca::Certificate> {
        der::Decode::from_der(&self.ca_der).ok()
    }

    /// The CA certificate, parsed.
    pub fn certificate_parsed(&self) -> Option<scepd_ca::Certificate> {
        self.certificate()
    }

    /// The CA's subject name.
    pub fn subject_name(&self) -> Option<x509_cert::name::Name> {
        self.certificate().map(|c| c.tbs_certificate().subject().clone())
    }

    /// notBefore and notAfter of the CA certificate.
    pub fn validity(&self) -> (u64, u64) {
        self.certificate()
            .map(|c| {
                let v = c.tbs_certificate().validity();
                (
                    scepd_ca::time::from_x509(&v.not_before),
                    scepd_ca::time::from_x509(&v.not_after),
                )
            })
            .unwrap_or((0, 0))
    }

    pub fn subject(&self) -> String {
        self.certificate()
            .map(|c| c.tbs_certificate().subject().to_string())
            .unwrap_or_default()
    }
}

/// Every generation, the original first, then in the order they were added.
pub struct CaSet {
    pub generations: Vec<Arc<Generation>>,
}

impl CaSet {
    /// The generation current at `now`: the one activated last, not later than `now`.
    pub fn current(&self, now: u64) -> &Arc<Generation> {
        self.generations
            .iter()
            .filter(|g| g.is_active_at(now))
            .max_by_key(|g| g.activate_at)
            .unwrap_or(&self.generations[0])
    }

    /// The generation that issues at `now`, with its keys: the current one, or, on a node that
    /// lacks the current one's files, the newest active one it has (readiness says so).
    pub fn issuing(&self, now: u64) -> (Arc<Generation>, Arc<Authority>) {
        let mut active: Vec<&Arc<Generation>> = self.generations.iter().filter(|g| g.is_active_at(now)).collect();
        active.sort_by_key(|g| std::cmp::Reverse(g.activate_at));
        active
            .into_iter()
            .chain(self.generations.iter())
            .find_map(|g| Some((Arc::clone(g), Arc::clone(g.authority.as_ref()?))))
            .expect("the original CA is always loaded")
    }

    /// The prepared next CA at `now`, if any.
    pub fn next(&self, now: u64) -> Option<&Arc<Generation>> {
        self.generations.iter().find(|g| !g.is_active_at(now))
    }

    pub fn role(&self, generation: &Generation, now: u64) -> CaRole {
        if !generation.is_active_at(now) {
            CaRole::Next
        } else if self.current(now).issuer == generation.issuer {
            CaRole::Current
        } else {
            CaRole::Retired
        }
    }

    pub fn by_issuer(&self, issuer: &IssuerId) -> Option<&Arc<Generation>> {
        self.generations.iter().find(|g| g.issuer == *issuer)
    }

    /// The generation a certificate record names (none: the original).
    pub fn of_record(&self, issuer: Option<IssuerId>) -> &Arc<Generation> {
        match issuer {
            Some(id) => self.by_issuer(&id).unwrap_or(&self.generations[0]),
            None => &self.generations[0],
        }
    }

    /// The generations whose keys this node has, current first.
    pub fn loaded(&self, now: u64) -> Vec<(Arc<Generation>, Arc<Authority>)> {
        let current = self.current(now).issuer;
        let mut loaded: Vec<_> = self
            .generations
            .iter()
            .filter_map(|g| Some((Arc::clone(g), Arc::clone(g.authority.as_ref()?))))
            .collect();
        loaded.sort_by_key(|(g, _)| g.issuer != current);
        loaded
    }
}

/// The service's view of the generations, refreshed from the store.
pub struct CaState {
    set: RwLock<Arc<CaSet>>,
    loader: OnceLock<GenerationLoader>,
    /// Generations whose files failed to load here, and why (for readiness and `ca list`).
    missing: Mutex<HashMap<IssuerId, String>>,
}

impl CaState {
    pub fn new(original: Authority) -> CaState {
        let issuer = IssuerId::of(&original.ca.cert);
        let record = (
            original.ca.der.clone(),
            original.ra.as_ref().map(|ra| ra.der.clone()),
            Some(0),
        );
        let generation = Generation::new(issuer, true, record, Some(Arc::new(original)));
        CaState {
            set: RwLock::new(Arc::new(CaSet {
                generations: vec![Arc::new(generation)],
            })),
            loader: OnceLock::new(),
            missing: Mutex::new(HashMap::new()),
        }
    }

    pub fn snapshot(&self) -> Arc<CaSet> {
        Arc::clone(&self.set.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn replace(&self, set: CaSet) {
        *self.set.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
    }
}

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
        for record in records {
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
        for issuer in issuers.iter().filter(|i| known.by_issuer(i).is_none()) {
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
        let (_, not_after) = next.validity();
        if at >= not_after {
            return Ok(Err("that moment is past the next CA's notAfter".into()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(byte: u8, activate_at: Option<u64>, authority: Option<Authority>) -> Arc<Generation> {
        let issuer = hex::encode([byte; 20]).parse().unwrap();
        Arc::new(Generation::new(
            issuer,
            byte == 0,
            (vec![byte], None, activate_at),
            authority.map(Arc::new),
        ))
    }

    #[test]
    fn roles_follow_the_clock_and_a_node_without_the_keys_keeps_issuing_with_what_it_has() {
        let original = Authority::create(&scepd_ca::CaParams::default()).unwrap();
        let second = Authority::create(&scepd_ca::CaParams::default()).unwrap();
        let second_der = second.ca.der.clone();
        let set = CaSet {
            generations: vec![
                generation(0, Some(0), Some(original)),
                generation(1, Some(100), Some(second)),
                generation(2, None, None),
            ],
        };
        let role = |i: usize, now| set.role(&set.generations[i], now);
        assert_eq!(
            (role(0, 50), role(1, 50), role(2, 50)),
            (CaRole::Current, CaRole::Next, CaRole::Next)
        );
        assert_eq!(
            (role(0, 100), role(1, 100), role(2, 100)),
            (CaRole::Retired, CaRole::Current, CaRole::Next)
        );
        assert_eq!(set.issuing(50).0.issuer, set.generations[0].issuer);
        assert_eq!(set.issuing(100).1.ca.der, second_der);
        assert_eq!(set.next(100).unwrap().issuer, set.generations[2].issuer);
        assert_eq!(set.loaded(100).len(), 2);
        assert_eq!(set.loaded(100)[0].0.issuer, set.generations[1].issuer, "current first");
        assert_eq!(set.of_record(None).issuer, set.generations[0].issuer);

        // Activated, but this node lacks its keys: the newest generation it has issues.
        let missing = CaSet {
            generations: vec![Arc::clone(&set.generations[0]), generation(3, Some(10), None)],
        };
        assert_eq!(missing.current(20).issuer, missing.generations[1].issuer);
        assert_eq!(missing.issuing(20).0.issuer, missing.generations[0].issuer);
    }
}
