//! The statements on the store's records, inside a transaction (or, for the reads shared with
//! `Store` methods, on any session): what each `Store` write does, in SQL.

use postgres::types::ToSql;
use postgres::GenericClient;

use scepd_ca::{Reason, Serial};

use super::super::issuance::IssuanceTx;
use super::super::{
    AuditEntry, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, CrlState, MdmClient, StoredCrl,
};
use super::pool::Session;
use super::rows::{self, int, opt_int, AUDIT_COLUMNS, CERT_COLUMNS, CHALLENGE_COLUMNS, MDM_COLUMNS};
use super::{Tx, TxError};

/// Rows per multi-row INSERT (PostgreSQL allows 65535 parameters per statement).
const ROWS_PER_INSERT: usize = 500;

/// Adds `by` to a counter and returns its new value.
pub(super) fn bump(tx: &mut Tx<'_, '_>, name: &str, by: u64) -> Result<u64, TxError> {
    let row = tx.query_one(
        "INSERT INTO counters (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value RETURNING value",
        &[&name, &int(by)],
    )?;
    Ok(row.get::<_, i64>(0) as u64)
}

pub(super) fn set_counter(tx: &mut Tx<'_, '_>, name: &str, value: u64) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&name, &int(value)],
    )?;
    Ok(())
}

pub(super) fn counter(client: &mut Session<'_, impl GenericClient>, name: &str) -> Result<u64, TxError> {
    let row = client.query_opt("SELECT value FROM counters WHERE name = $1", &[&name])?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
}

/// INSERTs `rows` (each one value per column) in as few statements as the parameter limit allows.
pub(super) fn insert_rows(
    tx: &mut Tx<'_, '_>,
    table: &str,
    columns: &str,
    rows: &[Vec<&(dyn ToSql + Sync)>],
    suffix: &str,
) -> Result<(), TxError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (i, row) in chunk.iter().enumerate() {
            let placeholders: Vec<String> = (1..=row.len()).map(|k| format!("${}", params.len() + k)).collect();
            sql.push_str(if i == 0 { "(" } else { ", (" });
            sql.push_str(&placeholders.join(", "));
            sql.push(')');
            params.extend(row.iter().copied());
        }
        sql.push(' ');
        sql.push_str(suffix);
        tx.execute_once(sql.as_str(), &params)?;
    }
    Ok(())
}

/// Writes a certificate: a new one (`seq` from the sequence) or a copied one (its own `seq`).
pub(super) fn insert_certificate(
    tx: &mut Tx<'_, '_>,
    record: &CertRecord,
    der: &[u8],
    seq: Option<u64>,
) -> Result<(), TxError> {
    // Serials are keys here, in the one case `Serial` prints.
    let serial = record.serial.to_hex();
    let superseded_by = record.superseded_by.map(|s| s.to_hex());
    let reason = record.revocation_reason.map(Reason::as_str);
    let issuer = record.issuer.map(|i| i.to_hex());
    let challenge = record
        .challenge
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| TxError::Store(crate::store::StoreError::Corrupt(e.to_string())))?;
    let values: [&(dyn ToSql + Sync); 18] = [
        &serial,
        &record.subject,
        &int(record.not_before),
        &int(record.not_after),
        &record.status.as_str(),
        &record.device_id,
        &record.transaction_id,
        &record.csr_sha256,
        &int(record.issued_at),
        &record.kind.as_str(),
        &superseded_by,
        &opt_int(record.superseded_at),
        &opt_int(record.revoked_at),
        &reason,
        &der,
        &record.device_bound,
        &issuer,
        &challenge,
    ];
    let columns =
        "serial, subject, not_before, not_after, status, device_id, transaction_id, csr_sha256, issued_at, kind, \
                   superseded_by, superseded_at, revoked_at, revocation_reason, der, device_bound, issuer, challenge, seq";
    let placeholders = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18";
    match seq {
        None => tx.execute(
            &format!("INSERT INTO certificates ({columns}) VALUES ({placeholders}, nextval('certificate_seq'))"),
            &values,
        )?,
        Some(seq) => {
            let seq = int(seq);
            let mut with_seq = values.to_vec();
            with_seq.push(&seq);
            tx.execute(
                &format!("INSERT INTO certificates ({columns}) VALUES ({placeholders}, $19)"),
                &with_seq,
            )?
        }
    };
    Ok(())
}

/// Revokes one certificate that is not revoked yet; returns it as revoked.
pub(super) fn revoke_in(tx: &mut Tx<'_, '_>, serial: &Serial, reason: Reason, at: u64) -> Result<CertRecord, TxError> {
    let row = tx.query_one(
        &format!(
            "UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3 WHERE serial = $1 RETURNING {CERT_COLUMNS}"
        ),
        &[&serial.to_hex(), &int(at), &reason.as_str()],
    )?;
    bump(tx, "revocation_epoch", 1)?;
    Ok(rows::certificate(&row)?)
}

/// Revokes the certificates an UPDATE's WHERE clause selects (`$1` is the time, `$2` the
/// reason, `$3` the clause's own parameter); returns their serials.
pub(super) fn revoke_where(
    tx: &mut Tx<'_, '_>,
    clause: &str,
    at: u64,
    reason: Reason,
    param: &(dyn ToSql + Sync),
) -> Result<Vec<Serial>, TxError> {
    let mut revoked: Vec<Serial> = tx
        .query(
            &format!("UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 WHERE {clause} RETURNING serial"),
            &[&int(at), &reason.as_str(), param],
        )?
        .iter()
        .map(|r| rows::serial(r, "serial"))
        .collect::<Result<_, _>>()?;
    // In serial order, as the embedded store returns them.
    revoked.sort();
    if !revoked.is_empty() {
        bump(tx, "revocation_epoch", revoked.len() as u64)?;
    }
    Ok(revoked)
}

/// The issuance policy's reads and writes, in SQL inside one transaction.
pub(super) struct PgIssuance<'a, 'c, 'p>(pub &'a mut Tx<'c, 'p>);

impl IssuanceTx for PgIssuance<'_, '_, '_> {
    type Error = TxError;

    fn by_transaction(&mut self, transaction_id: &str) -> Result<Option<(CertRecord, Vec<u8>)>, TxError> {
        let row = self.0.query_opt(
            &format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE transaction_id = $1"),
            &[&transaction_id],
        )?;
        Ok(match row {
            Some(row) => Some((rows::certificate(&row)?, row.get("der"))),
            None => None,
        })
    }

    fn serial_taken(&mut self, serial: &Serial) -> Result<bool, TxError> {
        Ok(self
            .0
            .query_opt("SELECT 1 FROM certificates WHERE serial = $1", &[&serial.to_hex()])?
            .is_some())
    }

    fn redeem(&mut self, hash: &ChallengeHash, now: u64) -> Result<bool, TxError> {
        let redeemed = self.0.execute(
            "UPDATE challenges SET redeemed_at = $2 WHERE hash = $1 AND redeemed_at IS NULL AND expires_at > $2",
            &[&hash.as_slice(), &int(now)],
        )?;
        Ok(redeemed > 0)
    }

    fn device_certificates(&mut self, device: &str, now: u64) -> Result<Vec<CertRecord>, TxError> {
        let found = self.0.query(
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates
                 WHERE device_id = $1 AND status IN ('active', 'superseded') AND not_after > $2"
            ),
            &[&device, &int(now)],
        )?;
        Ok(found.iter().map(rows::certificate).collect::<Result<_, _>>()?)
    }

    fn supersede(&mut self, serial: &Serial, by: &Serial, at: u64) -> Result<(), TxError> {
        self.0.execute(
            "UPDATE certificates SET status = 'superseded', superseded_by = $2, superseded_at = $3 WHERE serial = $1",
            &[&serial.to_hex(), &by.to_hex(), &int(at)],
        )?;
        Ok(())
    }

    fn revoke(&mut self, serial: &Serial, reason: Reason, at: u64) -> Result<(), TxError> {
        revoke_in(self.0, serial, reason, at).map(drop)
    }

    fn insert_new(&mut self, record: &CertRecord, der: &[u8]) -> Result<(), TxError> {
        insert_certificate(self.0, record, der, None)
    }

    fn emit(&mut self, events: &[super::super::outbox::Event], now: u64) -> Result<(), TxError> {
        super::outbox::emit_in(self.0, events, now)
    }
}

pub(super) fn insert_challenges_in(
    tx: &mut Tx<'_, '_>,
    batch: &[(ChallengeHash, ChallengeRecord)],
) -> Result<(), TxError> {
    let owned: Vec<(i64, i64, Option<bool>, Option<i64>)> = batch
        .iter()
        .map(|(_, r)| {
            (
                int(r.expires_at),
                int(r.created_at),
                r.okta_device_access,
                opt_int(r.redeemed_at),
            )
        })
        .collect();
    let hashes: Vec<&[u8]> = batch.iter().map(|(h, _)| h.as_slice()).collect();
    let values: Vec<Vec<&(dyn ToSql + Sync)>> = batch
        .iter()
        .zip(&owned)
        .zip(&hashes)
        .map(|(((_, r), (expires, created, okta, redeemed)), hash)| {
            vec![
                hash as &(dyn ToSql + Sync),
                expires,
                created,
                &r.minted_by,
                &r.endpoint,
                &r.device_id,
                &r.subject_cn,
                &r.san,
                &r.payload_identifier,
                okta,
                redeemed,
            ]
        })
        .collect();
    insert_rows(
        tx,
        "challenges",
        CHALLENGE_COLUMNS,
        &values,
        "ON CONFLICT (hash) DO NOTHING",
    )
}

/// An audit entry's values that are not stored as the entry holds them.
struct AuditColumns {
    seq: i64,
    at: i64,
    request_id: Option<i64>,
    event: &'static str,
    serial: Option<String>,
}

pub(super) fn insert_audit_in(tx: &mut Tx<'_, '_>, entries: &[AuditEntry]) -> Result<(), TxError> {
    let owned: Vec<AuditColumns> = entries
        .iter()
        .map(|e| AuditColumns {
            seq: int(e.seq),
            at: int(e.at),
            request_id: opt_int(e.request_id),
            event: e.event.as_str(),
            serial: e.serial.map(|s| s.to_hex()),
        })
        .collect();
    let values: Vec<Vec<&(dyn ToSql + Sync)>> = entries
        .iter()
        .zip(&owned)
        .map(|(e, c)| {
            vec![
                &c.seq as &(dyn ToSql + Sync),
                &c.at,
                &c.event,
                &e.actor,
                &c.request_id,
                &c.serial,
                &e.device_id,
                &e.detail,
            ]
        })
        .collect();
    insert_rows(tx, "audit", AUDIT_COLUMNS, &values, "")
}

/// INSERTs an MDM client with `on_conflict` (`DO NOTHING`, or what a copy does); whether a row
/// was written.
pub(super) fn insert_mdm_client_in(
    tx: &mut Tx<'_, '_>,
    client: &MdmClient,
    on_conflict: &str,
) -> Result<bool, TxError> {
    let written = tx.execute(
        &format!("INSERT INTO mdm_clients ({MDM_COLUMNS}) VALUES ($1, $2, $3, $4) {on_conflict}"),
        &[
            &client.name,
            &client.password_hmac,
            &int(client.created_at),
            &opt_int(client.challenge_ttl_seconds),
        ],
    )?;
    Ok(written > 0)
}

/// The last CRL number and the published CRL, in one statement (one snapshot: they agree).
pub(super) fn crl_state(client: &mut Session<'_, impl GenericClient>) -> Result<CrlState, TxError> {
    let row = client.query_one(
        "SELECT (SELECT value FROM counters WHERE name = 'crl_number'), crl.number, crl.epoch, crl.this_update,
                crl.next_update, crl.der
         FROM (SELECT 1) AS one LEFT JOIN crl ON crl.id = 1",
        &[],
    )?;
    let last_number = row.get::<_, Option<i64>>(0).unwrap_or(0) as u64;
    let published = row.get::<_, Option<i64>>(1).map(|number| StoredCrl {
        number: number as u64,
        epoch: row.get::<_, i64>(2) as u64,
        this_update: row.get::<_, i64>(3) as u64,
        next_update: row.get::<_, i64>(4) as u64,
        der: row.get(5),
    });
    Ok(CrlState { last_number, published })
}

pub(super) fn put_crl_in(tx: &mut Tx<'_, '_>, crl: &StoredCrl) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO crl (id, number, epoch, this_update, next_update, der) VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET number = excluded.number, epoch = excluded.epoch,
         this_update = excluded.this_update, next_update = excluded.next_update, der = excluded.der",
        &[
            &int(crl.number),
            &int(crl.epoch),
            &int(crl.this_update),
            &int(crl.next_update),
            &crl.der,
        ],
    )?;
    Ok(())
}

/// The stored statuses a filtered status can come from (expired is derived from notAfter).
pub(super) fn stored_statuses(status: CertStatus) -> Vec<&'static str> {
    match status {
        CertStatus::Expired => vec!["active", "superseded"],
        other => vec![other.as_str()],
    }
}
