//! Recording an issuance: the policy, once for every store.
//!
//! What happens when a certificate is recorded (a retried transaction, a serial already taken,
//! the challenge redeemed, the device's earlier certificates superseded and, past the per-device
//! limit, revoked) is decided here, over what a backend reads inside its transaction. A backend
//! implements [`IssuanceTx`]: it only reads and writes.

use scepd_ca::{Reason, Serial};

use super::outbox::{CertFacts, Event, RevokedBy};
use super::{CertRecord, CertStatus, ChallengeHash, Issuance, IssuanceOutcome, StoreError, Supersede};

/// What one store transaction offers the issuance policy.
pub trait IssuanceTx {
    /// The backend's error; a store error (a corrupt record) converts into it.
    type Error: From<StoreError>;

    /// The certificate already recorded for `transaction_id`, with its DER.
    fn by_transaction(&mut self, transaction_id: &str) -> Result<Option<(CertRecord, Vec<u8>)>, Self::Error>;

    /// Whether a certificate with this serial exists.
    fn serial_taken(&mut self, serial: &Serial) -> Result<bool, Self::Error>;

    /// Marks a usable challenge redeemed at `now`; false when it is unknown, used or expired.
    fn redeem(&mut self, hash: &ChallengeHash, now: u64) -> Result<bool, Self::Error>;

    /// The certificates recorded for `device`: at least every one that is active or superseded
    /// and unexpired at `now` (the others do not count, so a backend may leave them out).
    fn device_certificates(&mut self, device: &str, now: u64) -> Result<Vec<CertRecord>, Self::Error>;

    /// Marks an active certificate superseded by `by` at `at`.
    fn supersede(&mut self, serial: &Serial, by: &Serial, at: u64) -> Result<(), Self::Error>;

    /// Revokes a certificate that is not revoked yet (it may have been superseded an instant
    /// ago, in this transaction).
    fn revoke(&mut self, serial: &Serial, reason: Reason, at: u64) -> Result<(), Self::Error>;

    /// Writes a new certificate; the backend assigns its issuance order (`seq`).
    fn insert_new(&mut self, record: &CertRecord, der: &[u8]) -> Result<(), Self::Error>;

    /// Writes `events` to the webhook outbox, in this transaction.
    fn emit(&mut self, events: &[Event], now: u64) -> Result<(), Self::Error>;
}

/// What recording an issuance does to the device's earlier certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePlan {
    /// Active certificates that become superseded, in serial order.
    pub supersede: Vec<Serial>,
    /// Valid certificates revoked (reason `superseded`) to keep within `max_valid_per_device`,
    /// oldest first.
    pub revoke: Vec<Serial>,
}

/// The device's earlier certificates, as of `now`, under `how`: the unexpired active ones it
/// targets are superseded (all of them, only the renewed one, or none); with a vouched-for
/// device id and `max_valid`, the oldest valid (active or superseded, unexpired) ones are revoked
/// so that at most `max_valid` remain counting the new one. Nothing else ever revokes: an
/// unbound request never causes another certificate's revocation.
pub fn plan_for_device(earlier: &[CertRecord], how: &Supersede, now: u64) -> DevicePlan {
    let max_valid = match how {
        Supersede::Nothing => return DevicePlan::default(),
        Supersede::Device { max_valid } => *max_valid,
        Supersede::DeviceWithoutRevocation | Supersede::Only(_) => None,
    };
    let targeted = |r: &&CertRecord| !matches!(how, Supersede::Only(only) if *only != r.serial);
    let unexpired = |r: &&CertRecord| r.not_after > now;
    let mut supersede: Vec<Serial> = earlier
        .iter()
        .filter(unexpired)
        .filter(targeted)
        .filter(|r| r.status == CertStatus::Active)
        .map(|r| r.serial)
        .collect();
    supersede.sort();
    let mut valid: Vec<&CertRecord> = earlier
        .iter()
        .filter(unexpired)
        .filter(|r| matches!(r.status, CertStatus::Active | CertStatus::Superseded))
        .collect();
    valid.sort_by_key(|r| r.seq);
    let revoke = match max_valid {
        Some(max) => {
            let keep = (max as usize).saturating_sub(1);
            let excess = valid.len().saturating_sub(keep);
            valid.iter().take(excess).map(|r| r.serial).collect()
        }
        None => Vec::new(),
    };
    DevicePlan { supersede, revoke }
}

/// One issuance inside `tx`; only the `Stored` outcome writes anything.
pub fn record_one<T: IssuanceTx>(tx: &mut T, issuance: &Issuance) -> Result<IssuanceOutcome, T::Error> {
    let record = &issuance.record;
    if let Some((found, der)) = tx.by_transaction(&record.transaction_id)? {
        return Ok(if found.csr_sha256 != record.csr_sha256 {
            IssuanceOutcome::TransactionConflict
        } else {
            IssuanceOutcome::AlreadyIssued(found, der)
        });
    }
    if tx.serial_taken(&issuance.serial)? {
        return Ok(IssuanceOutcome::SerialTaken);
    }
    if let Some(hash) = &issuance.redeems {
        if !tx.redeem(hash, scepd_ca::time::steady_unix_now())? {
            return Ok(IssuanceOutcome::ChallengeUnavailable);
        }
    }
    let now = record.issued_at;
    let mut events = vec![Event::CertificateIssued {
        cert: CertFacts::from(record),
        kind: record.kind,
    }];
    let plan = match &record.device_id {
        Some(device) => {
            let earlier = tx.device_certificates(device, now)?;
            let plan = plan_for_device(&earlier, &issuance.supersede, now);
            let facts = |serial: &Serial| earlier.iter().find(|r| r.serial == *serial).map(CertFacts::from);
            for serial in &plan.supersede {
                tx.supersede(serial, &issuance.serial, now)?;
                events.extend(facts(serial).map(|cert| Event::CertificateSuperseded {
                    cert,
                    superseded_by: issuance.serial,
                }));
            }
            for serial in &plan.revoke {
                tx.revoke(serial, Reason::SUPERSEDED, now)?;
                events.extend(facts(serial).map(|cert| Event::CertificateRevoked {
                    cert,
                    reason: Reason::SUPERSEDED,
                    by: RevokedBy::Policy,
                }));
            }
            plan
        }
        None => DevicePlan::default(),
    };
    tx.insert_new(record, &issuance.der)?;
    // The events commit with the certificate, or not at all.
    tx.emit(&events, now)?;
    Ok(IssuanceOutcome::Stored {
        superseded: plan.supersede,
        revoked: plan.revoke,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(byte: u8, status: CertStatus, not_after: u64, seq: u64) -> CertRecord {
        let serial: Serial = format!("{byte:02X}").repeat(16).parse().unwrap();
        CertRecord {
            seq,
            status,
            ..CertRecord::issued(&serial, String::new(), 0, not_after, 0)
        }
    }

    #[test]
    fn active_ones_are_superseded_and_expired_ones_left_alone() {
        let earlier = [
            cert(0x41, CertStatus::Active, 100, 1),
            cert(0x42, CertStatus::Active, 50, 2),
            cert(0x43, CertStatus::Revoked, 100, 3),
        ];
        let plan = plan_for_device(&earlier, &Supersede::Device { max_valid: None }, 60);
        assert_eq!(plan.supersede, vec![earlier[0].serial]);
        assert!(plan.revoke.is_empty());
    }

    #[test]
    fn the_limit_counts_the_new_certificate_and_revokes_the_oldest() {
        let earlier = [
            cert(0x45, CertStatus::Superseded, 100, 1),
            cert(0x44, CertStatus::Superseded, 100, 2),
            cert(0x46, CertStatus::Active, 100, 3),
        ];
        let capped = |max| plan_for_device(&earlier, &Supersede::Device { max_valid: Some(max) }, 10);
        let plan = capped(2);
        assert_eq!(plan.supersede, vec![earlier[2].serial]);
        assert_eq!(plan.revoke, vec![earlier[0].serial, earlier[1].serial]);
        assert_eq!(capped(1).revoke.len(), 3);
        assert!(capped(4).revoke.is_empty());
    }

    #[test]
    fn unbound_requests_revoke_nothing() {
        let earlier = [
            cert(0x45, CertStatus::Superseded, 100, 1),
            cert(0x46, CertStatus::Active, 100, 2),
            cert(0x47, CertStatus::Active, 100, 3),
        ];
        assert_eq!(
            plan_for_device(&earlier, &Supersede::Nothing, 10),
            DevicePlan::default()
        );
        let allowed = plan_for_device(&earlier, &Supersede::DeviceWithoutRevocation, 10);
        assert_eq!(allowed.supersede, vec![earlier[1].serial, earlier[2].serial]);
        assert!(allowed.revoke.is_empty());
        let renewal = plan_for_device(&earlier, &Supersede::Only(earlier[2].serial), 10);
        assert_eq!(renewal.supersede, vec![earlier[2].serial]);
        assert!(renewal.revoke.is_empty());
    }
}
