//! What the store keeps about the CA generations of a rollover: which CA is next and when it
//! became (or becomes) the current one, and each later generation's CRL. Recorded in the store
//! so that every node sharing it switches at the same moment. The original CA (the one
//! `scepd init` made, `DIR/ca.pem`) is implicit: it has no record, was active from the start,
//! and keeps the store's original CRL (`Store::latest_crl`) and its numbering.
//!
//! Only certificates are kept here; keys stay where the data directory says (a file or a
//! token): never in the store.

use scepd_ca::IssuerId;
use serde::{Deserialize, Serialize};

use super::{CrlState, StoreError, StoredCrl};

/// A CA generation after the original one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaGenerationRecord {
    pub issuer: IssuerId,
    /// The CA certificate, DER.
    pub ca_der: Vec<u8>,
    /// Its RA certificate, DER, unless the CA is its own RA.
    #[serde(default)]
    pub ra_der: Option<Vec<u8>>,
    /// When it was recorded (Unix seconds).
    pub added_at: u64,
    /// When it becomes (or became) the current CA; none while it waits for `ca activate-next`.
    #[serde(default)]
    pub activate_at: Option<u64>,
    /// When `scepd ca remove` retired it for good: its CRL is no longer signed. The record
    /// stays, so that the generation's files, still in a data directory, are not recorded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<u64>,
    /// The order generations were recorded in (1, 2, …; given by the store): of two activated
    /// for the same second, the later-recorded is the current one.
    #[serde(default)]
    pub seq: u64,
}

impl CaGenerationRecord {
    /// Still to come at `now`: not activated, or activated for a later moment.
    pub fn is_pending(&self, now: u64) -> bool {
        self.activate_at.is_none_or(|at| at > now)
    }
}

/// Why a CA generation was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddGeneration {
    Added,
    /// A next CA exists already (one at a time: activate or remove it first).
    NextExists,
    /// This CA is recorded already.
    Duplicate,
}

/// The one policy both stores apply, inside their transaction, to `existing` generations.
pub fn may_add(existing: &[CaGenerationRecord], new: &CaGenerationRecord, now: u64) -> AddGeneration {
    if existing.iter().any(|g| g.issuer == new.issuer) {
        AddGeneration::Duplicate
    } else if existing.iter().any(|g| g.is_pending(now)) {
        AddGeneration::NextExists
    } else {
        AddGeneration::Added
    }
}

/// `new` numbered after every `existing` generation: what a store records when [`may_add`] says
/// `Added`.
pub fn numbered(existing: &[CaGenerationRecord], new: &CaGenerationRecord) -> CaGenerationRecord {
    CaGenerationRecord {
        seq: existing.iter().map(|g| g.seq).max().unwrap_or(0) + 1,
        ..new.clone()
    }
}

/// What activating the next CA found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The next CA becomes current at this moment.
    Scheduled(CaGenerationRecord),
    /// There is no next CA waiting for activation.
    NoNext,
}

/// The one activation policy of both stores: the generation not yet activated, if any.
pub fn to_activate(existing: &[CaGenerationRecord]) -> Option<&CaGenerationRecord> {
    existing.iter().find(|g| g.activate_at.is_none())
}

/// The CA generations' part of the store; every [`super::Store`] is one. Each method is one
/// transaction.
pub trait CaStore {
    /// Every generation recorded after the original CA, oldest first.
    fn ca_generations(&self) -> Result<Vec<CaGenerationRecord>, StoreError>;

    /// Records a next CA, unless one is pending already or this one is recorded ([`may_add`]).
    fn add_ca_generation(&self, generation: &CaGenerationRecord, now: u64) -> Result<AddGeneration, StoreError>;

    /// Sets the moment the pending next CA becomes current ([`to_activate`]).
    fn activate_next_ca(&self, at: u64) -> Result<Activation, StoreError>;

    /// The last CRL number handed out for `issuer` and its newest CRL.
    fn issuer_crl(&self, issuer: &IssuerId) -> Result<CrlState, StoreError>;

    /// Publishes `crl` for `issuer` when its number is exactly one more than the last one (as
    /// [`super::Store::publish_crl`] does for the original CA).
    fn publish_issuer_crl(&self, issuer: &IssuerId, crl: &StoredCrl) -> Result<bool, StoreError>;

    /// Marks a generation removed at `at` (`scepd ca remove`, once the service found it retired
    /// and its certificates expired); whether it was there and not removed yet.
    fn remove_ca_generation(&self, issuer: &IssuerId, at: u64) -> Result<bool, StoreError>;
}

/// One issuer's CRL state as the stores keep it (and `store copy` carries it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerCrl {
    pub issuer: IssuerId,
    pub last_number: u64,
    pub published: Option<StoredCrl>,
}

impl IssuerCrl {
    pub fn state(&self) -> CrlState {
        CrlState {
            last_number: self.last_number,
            published: self.published.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(byte: u8, activate_at: Option<u64>) -> CaGenerationRecord {
        let issuer = hex::encode([byte; 20]).parse().unwrap();
        CaGenerationRecord {
            issuer,
            ca_der: vec![byte],
            ra_der: None,
            added_at: 1,
            activate_at,
            removed_at: None,
            seq: u64::from(byte),
        }
    }

    #[test]
    fn one_next_ca_at_a_time() {
        let active = generation(1, Some(10));
        let scheduled = generation(2, Some(100));
        let new = generation(3, None);
        assert_eq!(may_add(std::slice::from_ref(&active), &new, 50), AddGeneration::Added);
        assert_eq!(
            may_add(&[active.clone(), scheduled.clone()], &new, 50),
            AddGeneration::NextExists
        );
        assert_eq!(may_add(&[active.clone(), scheduled], &new, 100), AddGeneration::Added);
        assert_eq!(may_add(std::slice::from_ref(&new), &new, 50), AddGeneration::Duplicate);
        assert_eq!(to_activate(&[active.clone(), new.clone()]), Some(&new));
        assert_eq!(to_activate(&[active]), None);
    }
}
