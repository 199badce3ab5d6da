//! Webhook endpoints and the outbox in PostgreSQL (migration 4).
//!
//! Each delivery is a row: its JSON record, and beside it the columns the claims select on
//! (status, next attempt, lease), which are authoritative. A claim is one conditional UPDATE in
//! a SERIALIZABLE transaction: two nodes claiming at once conflict, the loser runs again and
//! finds the rows taken (no advisory lock, so CockroachDB runs it unchanged). A claim moves the
//! next attempt to the lease's end, so a node that dies leaves its claims due again then.

use postgres::GenericClient;
use scepd_ca::Serial;

use super::super::outbox::{
    fan_out, wants_expiring, Announcement, CertFacts, Claim, Delivery, DeliveryId, DeliveryStatus, Event, OutboxStats,
    RevokedBy, WebhookEndpoint, WebhookId, WebhookStore,
};
use super::super::{StoreError, StoreItem};
use super::pool::Session;
use super::rows::{self, int, CERT_COLUMNS};
use super::{PgStore, Tx, TxError};

fn encode<T: serde::Serialize>(value: &T) -> Result<String, TxError> {
    serde_json::to_string(value).map_err(|e| TxError::Store(StoreError::Corrupt(e.to_string())))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TxError> {
    serde_json::from_str(text).map_err(|e| TxError::Store(StoreError::Corrupt(e.to_string())))
}

const DELIVERY_COLUMNS: &str = "record, status, next_attempt_at, lease_until, lease_owner";

/// A delivery row: the record, with the authoritative columns laid over it.
fn delivery(row: &postgres::Row) -> Result<Delivery, TxError> {
    let mut d: Delivery = decode(row.get::<_, &str>(0))?;
    let status: &str = row.get(1);
    d.status = DeliveryStatus::from_name(status)
        .ok_or_else(|| TxError::Store(StoreError::Corrupt(format!("delivery status {status:?}"))))?;
    d.next_attempt_at = row.get::<_, i64>(2) as u64;
    d.lease_until = row.get::<_, i64>(3) as u64;
    d.lease_owner = row.get(4);
    Ok(d)
}

fn endpoints_in(c: &mut Session<'_, impl GenericClient>) -> Result<Vec<WebhookEndpoint>, TxError> {
    let rows = c.query("SELECT record FROM webhook_endpoints ORDER BY id", &[])?;
    rows.iter().map(|r| decode(r.get::<_, &str>(0))).collect()
}

/// Writes `events` to the outbox inside `tx` (the transaction of what caused them).
pub(super) fn emit_in(tx: &mut Tx<'_, '_>, events: &[Event], now: u64) -> Result<(), TxError> {
    if events.is_empty() {
        return Ok(());
    }
    let endpoints = endpoints_in(tx)?;
    for d in fan_out(&endpoints, events, now) {
        tx.execute(
            "INSERT INTO webhook_deliveries (id, seq, status, next_attempt_at, lease_until, lease_owner, occurred_at, record)
             VALUES ($1, nextval('webhook_delivery_seq'), 'pending', $2, 0, NULL, $3, $4)",
            &[&d.id.as_str(), &int(d.next_attempt_at), &int(d.occurred_at), &encode(&d)?],
        )?;
    }
    Ok(())
}

/// Writes the revocation events of `serials` (just revoked in `tx`, `by` whom).
pub(super) fn emit_revoked(tx: &mut Tx<'_, '_>, serials: &[Serial], by: RevokedBy, at: u64) -> Result<(), TxError> {
    if serials.is_empty() {
        return Ok(());
    }
    let hex: Vec<String> = serials.iter().map(Serial::to_hex).collect();
    let found = tx.query(
        &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = ANY($1) ORDER BY serial"),
        &[&hex],
    )?;
    let events = found
        .iter()
        .map(|r| rows::certificate(r).map(|record| Event::revoked(&record, by)))
        .collect::<Result<Vec<_>, _>>()?;
    emit_in(tx, &events, at)
}

fn update_delivery(
    tx: &mut Tx<'_, '_>,
    d: &Delivery,
    condition: &str,
    extra: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<bool, TxError> {
    let record = encode(d)?;
    let (next, lease) = (int(d.next_attempt_at), int(d.lease_until));
    let (id, status) = (d.id.as_str(), d.status.as_str());
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        vec![&id, &status, &next, &lease, &d.lease_owner, &record];
    params.extend_from_slice(extra);
    let updated = tx.execute(
        &format!(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, lease_until = $4, lease_owner = $5,
             record = $6 WHERE id = $1 {condition}"
        ),
        &params,
    )?;
    Ok(updated > 0)
}

impl WebhookStore for PgStore {
    fn add_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO webhook_endpoints (id, record) VALUES ($1, $2)",
                &[&endpoint.id.as_str(), &encode(endpoint)?],
            )?;
            Ok(())
        })
    }

    fn replace_webhook(&self, previous: &WebhookEndpoint, new: &WebhookEndpoint) -> Result<bool, StoreError> {
        self.write(|tx| {
            let id = new.id.as_str();
            let Some(row) = tx.query_opt("SELECT record FROM webhook_endpoints WHERE id = $1 FOR UPDATE", &[&id])?
            else {
                return Ok(false);
            };
            // Compared as values, not as JSON text (a record written by an older build may
            // lack a field that now has a default).
            if decode::<WebhookEndpoint>(row.get::<_, &str>(0))? != *previous {
                return Ok(false);
            }
            tx.execute(
                "UPDATE webhook_endpoints SET record = $2 WHERE id = $1",
                &[&id, &encode(new)?],
            )?;
            Ok(true)
        })
    }

    fn remove_webhook(&self, id: &WebhookId) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id.as_str()])? > 0))
    }

    fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.read(endpoints_in)
    }

    fn enqueue_events(&self, events: &[Event], now: u64) -> Result<(), StoreError> {
        self.write(|tx| emit_in(tx, events, now))
    }

    fn claim_deliveries(&self, claim: &Claim<'_>) -> Result<Vec<Delivery>, StoreError> {
        let (now, until, limit) = (int(claim.now), int(claim.lease_until), claim.limit.min(10_000) as i64);
        // One statement in its own implicit transaction (`read` runs it outside BEGIN, again on
        // a conflict), not a SERIALIZABLE transaction: its read of the pending range would
        // conflict with every issuance writing an event. Under PostgreSQL's READ COMMITTED a
        // row another node claimed meanwhile is re-checked after its lock is released and no
        // longer matches (its next attempt moved to the lease's end), so claims stay disjoint;
        // CockroachDB runs it serializably and retries it by itself.
        self.read(|c| {
            let rows = c.query(
                &format!(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2, lease_until = $2, lease_owner = $3
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND id IN (
                         SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                         ORDER BY next_attempt_at LIMIT $4)
                     RETURNING {DELIVERY_COLUMNS}"
                ),
                &[&now, &until, &claim.owner, &limit],
            )?;
            rows.iter().map(delivery).collect()
        })
    }

    fn finish_deliveries(&self, deliveries: &[Delivery], owner: &str) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut held = 0;
            for d in deliveries {
                let released = Delivery {
                    lease_until: 0,
                    lease_owner: None,
                    ..d.clone()
                };
                let lease = int(d.lease_until);
                let condition = "AND lease_owner = $7 AND lease_until = $8";
                held += usize::from(update_delivery(tx, &released, condition, &[&owner, &lease])?);
            }
            Ok(held)
        })
    }

    fn deliveries(&self, status: Option<DeliveryStatus>, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let status = status.map(DeliveryStatus::as_str);
        let limit = limit.min(100_000) as i64;
        self.read(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE ($1::TEXT IS NULL OR status = $1)
                     ORDER BY seq DESC LIMIT $2"
                ),
                &[&status, &limit],
            )?;
            rows.iter().map(delivery).collect()
        })
    }

    fn retry_delivery(&self, id: &DeliveryId, now: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(row) = tx.query_opt(
                &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"),
                &[&id.as_str()],
            )?
            else {
                return Ok(false);
            };
            let d = Delivery {
                status: DeliveryStatus::Pending,
                next_attempt_at: now,
                lease_until: 0,
                lease_owner: None,
                ..delivery(&row)?
            };
            update_delivery(tx, &d, "", &[])
        })
    }

    fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT count(*), min(occurred_at) FROM webhook_deliveries WHERE status = 'pending'",
                &[],
            )?;
            Ok(OutboxStats {
                pending: row.get::<_, i64>(0) as u64,
                oldest_pending: row.get::<_, Option<i64>>(1).map(|v| v as u64),
            })
        })
    }

    fn emit_expiring(&self, now: u64, horizon: u64, limit: usize) -> Result<usize, StoreError> {
        let limit = limit.min(100_000) as i64;
        self.write(|tx| {
            if !wants_expiring(&endpoints_in(tx)?) {
                return Ok(0);
            }
            // Two nodes announcing at once conflict (SERIALIZABLE): the one run again finds the
            // certificates marked.
            let due = tx.query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates c
                     WHERE status = 'active' AND not_after > $1 AND not_after <= $2
                     AND NOT EXISTS (SELECT 1 FROM webhook_expiring_announced a WHERE a.serial = c.serial)
                     ORDER BY not_after LIMIT $3"
                ),
                &[&int(now), &int(horizon), &limit],
            )?;
            let records = due.iter().map(rows::certificate).collect::<Result<Vec<_>, _>>()?;
            for record in &records {
                tx.execute(
                    "INSERT INTO webhook_expiring_announced (serial, announced_at) VALUES ($1, $2)",
                    &[&record.serial.to_hex(), &int(now)],
                )?;
            }
            let events: Vec<Event> = records
                .iter()
                .map(|r| Event::CertificateExpiring {
                    cert: CertFacts::from(r),
                })
                .collect();
            emit_in(tx, &events, now)?;
            Ok(records.len())
        })
    }

    fn prune_deliveries(&self, before: u64, limit: usize) -> Result<usize, StoreError> {
        let limit = limit.min(100_000) as i64;
        self.write(|tx| {
            let deleted = tx.execute(
                "DELETE FROM webhook_deliveries WHERE id IN (
                     SELECT id FROM webhook_deliveries WHERE status = 'delivered' AND occurred_at < $1 LIMIT $2)",
                &[&int(before), &limit],
            )?;
            Ok(deleted as usize)
        })
    }

    fn announce_once(&self, key: &str, event: &Event, now: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            if !endpoints_in(tx)?.iter().any(|e| e.wants(event.event_type())) {
                return Ok(false);
            }
            let inserted = tx.execute(
                "INSERT INTO webhook_announced (key, announced_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &int(now)],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            emit_in(tx, std::slice::from_ref(event), now)?;
            Ok(true)
        })
    }
}

/// The webhook part of a `store copy`: endpoints, every delivery (oldest first) and what was
/// announced once.
pub(super) fn export(
    session: &mut Session<'_, impl GenericClient>,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for endpoint in endpoints_in(session)? {
        sink(StoreItem::WebhookEndpoint(endpoint))?;
    }
    let deliveries = session.query(
        &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries ORDER BY seq"),
        &[],
    )?;
    for row in &deliveries {
        sink(StoreItem::WebhookDelivery(delivery(row)?))?;
    }
    for row in session.query("SELECT serial, announced_at FROM webhook_expiring_announced", &[])? {
        let serial = rows::serial(&row, "serial")?;
        sink(StoreItem::Announced(
            Announcement::Expiring(serial),
            row.get::<_, i64>(1) as u64,
        ))?;
    }
    for row in session.query("SELECT key, announced_at FROM webhook_announced", &[])? {
        sink(StoreItem::Announced(
            Announcement::Once(row.get(0)),
            row.get::<_, i64>(1) as u64,
        ))?;
    }
    Ok(())
}

/// Writes one webhook item of a `store copy`; a delivery gets the next sequence number here.
pub(super) fn import(tx: &mut Tx<'_, '_>, item: &StoreItem) -> Result<(), TxError> {
    match item {
        StoreItem::WebhookEndpoint(endpoint) => {
            tx.execute(
                "INSERT INTO webhook_endpoints (id, record) VALUES ($1, $2)",
                &[&endpoint.id.as_str(), &encode(endpoint)?],
            )?;
        }
        StoreItem::WebhookDelivery(d) => {
            tx.execute(
                "INSERT INTO webhook_deliveries (id, seq, status, next_attempt_at, lease_until, lease_owner, occurred_at, record)
                 VALUES ($1, nextval('webhook_delivery_seq'), $2, $3, $4, $5, $6, $7)",
                &[
                    &d.id.as_str(),
                    &d.status.as_str(),
                    &int(d.next_attempt_at),
                    &int(d.lease_until),
                    &d.lease_owner,
                    &int(d.occurred_at),
                    &encode(d)?,
                ],
            )?;
        }
        StoreItem::Announced(Announcement::Expiring(serial), at) => {
            tx.execute(
                "INSERT INTO webhook_expiring_announced (serial, announced_at) VALUES ($1, $2)",
                &[&serial.to_hex(), &int(*at)],
            )?;
        }
        StoreItem::Announced(Announcement::Once(key), at) => {
            tx.execute(
                "INSERT INTO webhook_announced (key, announced_at) VALUES ($1, $2)",
                &[key, &int(*at)],
            )?;
        }
        _ => {}
    }
    Ok(())
}
