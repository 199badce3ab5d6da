//! Webhook endpoints and the outbox in the embedded store.
//!
//! Tables:
//! - `webhook_endpoints`: id → JSON [`WebhookEndpoint`].
//! - `outbox_deliveries`: sequence number (big-endian) → JSON [`Delivery`] (newest last).
//! - `outbox_delivery_ids`: delivery id → sequence number.
//! - `outbox_due`: next attempt (big-endian) ‖ sequence number → (), pending deliveries only.
//!   A claim moves a delivery's key to its lease's end, so a claimed one is skipped until the
//!   lease runs out and found again if its node died.
//! - `outbox_expiring_announced`: serial → announced at (big-endian): `certificate.expiring`
//!   was written for it.
//! - `outbox_announced`: key → announced at: what [`WebhookStore::announce_once`] announced.
//! - `meta` holds `outbox_seq`.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use scepd_ca::Serial;

use super::outbox::{
    fan_out, wants_expiring, Announcement, CertFacts, Claim, Delivery, DeliveryId, DeliveryStatus, Event, OutboxStats,
    WebhookEndpoint, WebhookId, WebhookStore,
};
use super::redb_store::{bump, decode, decode_record, encode, RedbFile, CERTS};
use super::{CertStatus, RedbStore, StoreError, StoreItem};

const ENDPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhook_endpoints");
const DELIVERIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("outbox_deliveries");
const DELIVERY_IDS: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_delivery_ids");
const DUE: TableDefinition<&[u8], ()> = TableDefinition::new("outbox_due");
const EXPIRING_ANNOUNCED: TableDefinition<&[u8], u64> = TableDefinition::new("outbox_expiring_announced");
const ANNOUNCED: TableDefinition<&str, u64> = TableDefinition::new("outbox_announced");

/// Creates the tables (at open, so that readers never meet a missing one).
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ENDPOINTS)?;
    txn.open_table(DELIVERIES)?;
    txn.open_table(DELIVERY_IDS)?;
    txn.open_table(DUE)?;
    txn.open_table(EXPIRING_ANNOUNCED)?;
    txn.open_table(ANNOUNCED)?;
    Ok(())
}

fn due_key(at: u64, seq: &[u8]) -> Vec<u8> {
    [&at.to_be_bytes()[..], seq].concat()
}

fn endpoints_in(txn: &WriteTransaction) -> Result<Vec<WebhookEndpoint>, StoreError> {
    let table = txn.open_table(ENDPOINTS)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}

/// Writes `events` to the outbox inside `txn` (the transaction of what caused them).
pub(super) fn emit_in(txn: &WriteTransaction, events: &[Event], now: u64) -> Result<(), StoreError> {
    let endpoints = endpoints_in(txn)?;
    if endpoints.is_empty() {
        return Ok(());
    }
    for delivery in fan_out(&endpoints, events, now) {
        let seq = bump(txn, "outbox_seq")?.to_be_bytes();
        txn.open_table(DELIVERIES)?
            .insert(seq.as_slice(), encode(&delivery)?.as_slice())?;
        txn.open_table(DELIVERY_IDS)?
            .insert(delivery.id.as_str(), seq.as_slice())?;
        txn.open_table(DUE)?
            .insert(due_key(delivery.next_attempt_at, &seq).as_slice(), ())?;
    }
    Ok(())
}

/// A delivery and its sequence number, by id.
fn find(txn: &WriteTransaction, id: &DeliveryId) -> Result<Option<(Vec<u8>, Delivery)>, StoreError> {
    let Some(seq) = txn
        .open_table(DELIVERY_IDS)?
        .get(id.as_str())?
        .map(|s| s.value().to_vec())
    else {
        return Ok(None);
    };
    let delivery = txn
        .open_table(DELIVERIES)?
        .get(seq.as_slice())?
        .map(|d| decode::<Delivery>(d.value()))
        .transpose()?
        .ok_or_else(|| StoreError::Corrupt("delivery index points nowhere".into()))?;
    Ok(Some((seq, delivery)))
}

/// Replaces `old` by `new` (same sequence number), keeping the due index in step.
fn put(txn: &WriteTransaction, seq: &[u8], old: &Delivery, new: &Delivery) -> Result<(), StoreError> {
    let mut due = txn.open_table(DUE)?;
    if old.status == DeliveryStatus::Pending {
        due.remove(due_key(old.next_attempt_at, seq).as_slice())?;
    }
    if new.status == DeliveryStatus::Pending {
        due.insert(due_key(new.next_attempt_at, seq).as_slice(), ())?;
    }
    txn.open_table(DELIVERIES)?.insert(seq, encode(new)?.as_slice())?;
    Ok(())
}

impl RedbFile {
    /// Writes `endpoint` when the stored one is `expected` (None: there is none yet).
    fn write_endpoint(
        &self,
        endpoint: &WebhookEndpoint,
        expected: Option<&WebhookEndpoint>,
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let written = {
            let mut table = txn.open_table(ENDPOINTS)?;
            let stored: Option<WebhookEndpoint> = table
                .get(endpoint.id.as_str())?
                .map(|v| decode(v.value()))
                .transpose()?;
            let matches = stored.as_ref() == expected;
            if matches {
                table.insert(endpoint.id.as_str(), encode(endpoint)?.as_slice())?;
            }
            matches
        };
        txn.commit()?;
        Ok(written)
    }
}

impl WebhookStore for RedbFile {
    fn add_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        if self.write_endpoint(endpoint, None)? {
            Ok(())
        } else {
            Err(StoreError::Corrupt("webhook id already taken".into()))
        }
    }

    fn replace_webhook(&self, previous: &WebhookEndpoint, new: &WebhookEndpoint) -> Result<bool, StoreError> {
        self.write_endpoint(new, Some(previous))
    }

    fn remove_webhook(&self, id: &WebhookId) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(ENDPOINTS)?.remove(id.as_str())?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ENDPOINTS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    fn enqueue_events(&self, events: &[Event], now: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        emit_in(&txn, events, now)?;
        txn.commit()?;
        Ok(())
    }

    fn claim_deliveries(&self, claim: &Claim<'_>) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.db.begin_write()?;
        let end = due_key(claim.now.saturating_add(1), &[]);
        let due: Vec<Vec<u8>> = txn
            .open_table(DUE)?
            .range(..end.as_slice())?
            .take(claim.limit)
            .map(|e| e.map(|(k, _)| k.value()[8..].to_vec()))
            .collect::<Result<_, _>>()?;
        let mut claimed = Vec::with_capacity(due.len());
        for seq in due {
            let old: Delivery = txn
                .open_table(DELIVERIES)?
                .get(seq.as_slice())?
                .map(|d| decode(d.value()))
                .transpose()?
                .ok_or_else(|| StoreError::Corrupt("due index points nowhere".into()))?;
            let new = Delivery {
                next_attempt_at: claim.lease_until,
                lease_until: claim.lease_until,
                lease_owner: Some(claim.owner.to_string()),
                ..old.clone()
            };
            put(&txn, &seq, &old, &new)?;
            claimed.push(new);
        }
        if claimed.is_empty() {
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(claimed)
    }

    fn finish_deliveries(&self, deliveries: &[Delivery], owner: &str) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let mut held = 0;
        for delivery in deliveries {
            let Some((seq, old)) = find(&txn, &delivery.id)? else {
                continue;
            };
            if old.lease_owner.as_deref() == Some(owner) && old.lease_until == delivery.lease_until {
                let new = Delivery {
                    lease_until: 0,
                    lease_owner: None,
                    ..delivery.clone()
                };
                put(&txn, &seq, &old, &new)?;
                held += 1;
            }
        }
        txn.commit()?;
        Ok(held)
    }

    fn deliveries(&self, status: Option<DeliveryStatus>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for entry in table.iter()?.rev() {
            let d: Delivery = decode(entry?.1.value())?;
            if status.is_none_or(|s| s == d.status) {
                out.push(d);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn retry_delivery(&self, id: &DeliveryId, now: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let Some((seq, old)) = find(&txn, id)? else {
            txn.abort()?;
            return Ok(false);
        };
        let new = Delivery {
            status: DeliveryStatus::Pending,
            next_attempt_at: now,
            lease_until: 0,
            lease_owner: None,
            ..old.clone()
        };
        put(&txn, &seq, &old, &new)?;
        txn.commit()?;
        Ok(true)
    }

    fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let txn = self.db.begin_read()?;
        let due = txn.open_table(DUE)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut stats = OutboxStats {
            pending: due.len()?,
            ..OutboxStats::default()
        };
        for entry in due.iter()? {
            let key = entry?.0;
            if let Some(d) = deliveries.get(&key.value()[8..])? {
                let d: Delivery = decode(d.value())?;
                stats.oldest_pending = Some(stats.oldest_pending.map_or(d.occurred_at, |o| o.min(d.occurred_at)));
            }
        }
        Ok(stats)
    }

    fn emit_expiring(&self, now: u64, horizon: u64, limit: usize) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        if !wants_expiring(&endpoints_in(&txn)?) {
            txn.abort()?;
            return Ok(0);
        }
        // A scan of every certificate (run once a minute, off the request path).
        let mut due = Vec::new();
        {
            let certs = txn.open_table(CERTS)?;
            let announced = txn.open_table(EXPIRING_ANNOUNCED)?;
            for entry in certs.iter()? {
                let (key, value) = entry?;
                let record = decode_record(value.value())?;
                if record.status_at(now) == CertStatus::Active
                    && record.not_after <= horizon
                    && announced.get(key.value())?.is_none()
                {
                    due.push(record);
                }
            }
        }
        due.sort_by_key(|r| r.not_after);
        due.truncate(limit);
        let events: Vec<Event> = due
            .iter()
            .map(|r| Event::CertificateExpiring {
                cert: CertFacts::from(r),
            })
            .collect();
        {
            let mut announced = txn.open_table(EXPIRING_ANNOUNCED)?;
            for record in &due {
                announced.insert(record.serial.as_bytes().as_slice(), now)?;
            }
        }
        emit_in(&txn, &events, now)?;
        txn.commit()?;
        Ok(due.len())
    }

    fn prune_deliveries(&self, before: u64, limit: usize) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        // Oldest first (sequence order is event order): stop at the first event not old enough.
        let mut doomed = Vec::new();
        for entry in txn.open_table(DELIVERIES)?.iter()? {
            let (seq, value) = entry?;
            let d: Delivery = decode(value.value())?;
            if d.occurred_at >= before || doomed.len() >= limit {
                break;
            }
            if d.status == DeliveryStatus::Delivered {
                doomed.push((seq.value().to_vec(), d.id));
            }
        }
        for (seq, id) in &doomed {
            txn.open_table(DELIVERIES)?.remove(seq.as_slice())?;
            txn.open_table(DELIVERY_IDS)?.remove(id.as_str())?;
        }
        txn.commit()?;
        Ok(doomed.len())
    }

    fn announce_once(&self, key: &str, event: &Event, now: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let wanted = endpoints_in(&txn)?.iter().any(|e| e.wants(event.event_type()));
        if !wanted || txn.open_table(ANNOUNCED)?.get(key)?.is_some() {
            txn.abort()?;
            return Ok(false);
        }
        txn.open_table(ANNOUNCED)?.insert(key, now)?;
        emit_in(&txn, std::slice::from_ref(event), now)?;
        txn.commit()?;
        Ok(true)
    }
}

impl WebhookStore for RedbStore {
    fn add_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        self.with(|f| f.add_webhook(endpoint))
    }

    fn replace_webhook(&self, previous: &WebhookEndpoint, new: &WebhookEndpoint) -> Result<bool, StoreError> {
        self.with(|f| f.replace_webhook(previous, new))
    }

    fn remove_webhook(&self, id: &WebhookId) -> Result<bool, StoreError> {
        self.with(|f| f.remove_webhook(id))
    }

    fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.with(|f| f.webhooks())
    }

    fn enqueue_events(&self, events: &[Event], now: u64) -> Result<(), StoreError> {
        self.with(|f| f.enqueue_events(events, now))
    }

    fn claim_deliveries(&self, claim: &Claim<'_>) -> Result<Vec<Delivery>, StoreError> {
        self.with(|f| f.claim_deliveries(claim))
    }

    fn finish_deliveries(&self, deliveries: &[Delivery], owner: &str) -> Result<usize, StoreError> {
        self.with(|f| f.finish_deliveries(deliveries, owner))
    }

    fn deliveries(&self, status: Option<DeliveryStatus>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.with(|f| f.deliveries(status, limit))
    }

    fn retry_delivery(&self, id: &DeliveryId, now: u64) -> Result<bool, StoreError> {
        self.with(|f| f.retry_delivery(id, now))
    }

    fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.with(|f| f.outbox_stats())
    }

    fn emit_expiring(&self, now: u64, horizon: u64, limit: usize) -> Result<usize, StoreError> {
        self.with(|f| f.emit_expiring(now, horizon, limit))
    }

    fn announce_once(&self, key: &str, event: &Event, now: u64) -> Result<bool, StoreError> {
        self.with(|f| f.announce_once(key, event, now))
    }

    fn prune_deliveries(&self, before: u64, limit: usize) -> Result<usize, StoreError> {
        self.with(|f| f.prune_deliveries(before, limit))
    }
}

/// The webhook part of a `store copy`: endpoints, every delivery (oldest first) and what was
/// announced once.
pub(super) fn export(
    txn: &redb::ReadTransaction,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for entry in txn.open_table(ENDPOINTS)?.iter()? {
        sink(StoreItem::WebhookEndpoint(decode(entry?.1.value())?))?;
    }
    for entry in txn.open_table(DELIVERIES)?.iter()? {
        sink(StoreItem::WebhookDelivery(decode(entry?.1.value())?))?;
    }
    for entry in txn.open_table(EXPIRING_ANNOUNCED)?.iter()? {
        let (serial, at) = entry?;
        let serial = Serial::try_from(serial.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sink(StoreItem::Announced(Announcement::Expiring(serial), at.value()))?;
    }
    for entry in txn.open_table(ANNOUNCED)?.iter()? {
        let (key, at) = entry?;
        sink(StoreItem::Announced(Announcement::Once(key.value().into()), at.value()))?;
    }
    Ok(())
}

/// Writes one webhook item of a `store copy`; a delivery gets the next sequence number here.
pub(super) fn import(txn: &WriteTransaction, item: &StoreItem) -> Result<(), StoreError> {
    match item {
        StoreItem::WebhookEndpoint(endpoint) => {
            txn.open_table(ENDPOINTS)?
                .insert(endpoint.id.as_str(), encode(endpoint)?.as_slice())?;
        }
        StoreItem::WebhookDelivery(delivery) => {
            let seq = bump(txn, "outbox_seq")?.to_be_bytes();
            txn.open_table(DELIVERIES)?
                .insert(seq.as_slice(), encode(delivery)?.as_slice())?;
            txn.open_table(DELIVERY_IDS)?
                .insert(delivery.id.as_str(), seq.as_slice())?;
            if delivery.status == DeliveryStatus::Pending {
                txn.open_table(DUE)?
                    .insert(due_key(delivery.next_attempt_at, &seq).as_slice(), ())?;
            }
        }
        StoreItem::Announced(Announcement::Expiring(serial), at) => {
            txn.open_table(EXPIRING_ANNOUNCED)?
                .insert(serial.as_bytes().as_slice(), *at)?;
        }
        StoreItem::Announced(Announcement::Once(key), at) => {
            txn.open_table(ANNOUNCED)?.insert(key.as_str(), *at)?;
        }
        _ => {}
    }
    Ok(())
}
