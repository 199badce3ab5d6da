//! The CA generations a node serves (RFC 8894 §4.7 rollover) and which one is current: pure
//! values over the store's record and the clock, no I/O. The operations are in `rollover.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use scepd_ca::{Authority, IssuerId};

use crate::store::StoredCrl;

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
    pub(super) ca_cert_body: Option<(Vec<u8>, &'static str)>,
    /// The generation's CRL last built or fetched here (not the original's: see `CrlCache`).
    pub(super) crl: Mutex<Option<Arc<StoredCrl>>>,
}

impl Generation {
    pub(super) fn new(
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
        self.active_newest_first(now)
            .first()
            .copied()
            .unwrap_or(&self.generations[0])
    }

    /// The generation that issues at `now`, with its keys: the current one, or, on a node that
    /// lacks the current one's files, the newest active one it has (readiness says so).
    pub fn issuing(&self, now: u64) -> (Arc<Generation>, Arc<Authority>) {
        self.active_newest_first(now)
            .into_iter()
            .chain(self.generations.iter())
            .find_map(|g| Some((Arc::clone(g), Arc::clone(g.authority.as_ref()?))))
            .expect("the original CA is always loaded")
    }

    /// The generations active at `now`, the one that became current last first. Of two
    /// activated for the same second (two `activate-next` within one second), the one recorded
    /// later is the newer.
    fn active_newest_first(&self, now: u64) -> Vec<&Arc<Generation>> {
        let mut active: Vec<&Arc<Generation>> = self.generations.iter().rev().filter(|g| g.is_active_at(now)).collect();
        // A stable sort: equal moments keep the later-recorded generation first.
        active.sort_by_key(|g| std::cmp::Reverse(g.activate_at));
        active
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
    pub(super) loader: OnceLock<GenerationLoader>,
    /// Generations whose files failed to load here, and why (for readiness and `ca list`).
    pub(super) missing: Mutex<HashMap<IssuerId, String>>,
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

    pub(super) fn replace(&self, set: CaSet) {
        *self.set.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
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

    /// Two generations activated for the same second (two `ca activate-next` within one
    /// second): the one recorded later is current, and issues.
    #[test]
    fn of_two_activated_for_the_same_second_the_later_recorded_is_current() {
        let authorities: Vec<Authority> = (0..3)
            .map(|_| Authority::create(&scepd_ca::CaParams::default()).unwrap())
            .collect();
        let newest_der = authorities[2].ca.der.clone();
        let mut authorities = authorities.into_iter();
        let set = CaSet {
            generations: vec![
                generation(0, Some(0), authorities.next()),
                generation(1, Some(100), authorities.next()),
                generation(2, Some(100), authorities.next()),
            ],
        };
        assert_eq!(set.current(100).issuer, set.generations[2].issuer);
        assert_eq!(set.issuing(100).1.ca.der, newest_der);
        assert_eq!(set.role(&set.generations[1], 100), CaRole::Retired);
    }
}
