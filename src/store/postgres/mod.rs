//! The shared store, on PostgreSQL, for several scepd nodes behind a load balancer.
//!
//! Only SQL that CockroachDB and YugabyteDB also run: no advisory locks, no LISTEN/NOTIFY, no
//! PL/pgSQL. Every write is one SERIALIZABLE transaction, retried when the database reports a
//! serialization failure; that is what makes "a challenge is redeemed once" and "serials are
//! unique" hold across nodes. Counters (the CRL number, the revocation epoch, the audit trail's
//! sequence) are rows of `counters`, updated inside those transactions. Commits are durable
//! when they return (the server's `synchronous_commit`, on by default).

mod pool;
mod rows;
pub mod schema;
mod tls;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel, Transaction};
use scepd_ca::Serial;

use super::{
    AuditEntry, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, CrlState, Issuance, IssuanceOutcome,
    MdmClient, RevokeOutcome, RevokedRow, Store, StoreError, StoreItem, StoredCrl,
};
use rows::{int, opt_int, AUDIT_COLUMNS, CERT_COLUMNS, CHALLENGE_COLUMNS, MDM_COLUMNS};

use pool::{Manager, Session};

/// A transaction whose queries use the connection's prepared statements.
type Tx<'a, 'b> = Session<'a, Transaction<'b>>;

/// Connections per node: enough for the blocking pool's store calls to rarely wait, few enough
/// for three nodes to stay well inside PostgreSQL's default `max_connections` (100).
const POOL_SIZE: u32 = 16;
/// How long a request waits for a connection (or a new one to open) before it is answered 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Serialization failures retried before the operation fails.
const TRANSACTION_ATTEMPTS: u32 = 16;
/// Rows per multi-row INSERT (PostgreSQL allows 65535 parameters per statement).
const ROWS_PER_INSERT: usize = 500;
/// Rows per page of a store copy.
const EXPORT_PAGE: i64 = 1000;

pub struct PgStore {
    pool: r2d2::Pool<Manager>,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Sleeps before retry `attempt` (1-based): exponential with jitter, at most ~100 ms, so nodes
/// that collided do not collide again in lockstep.
fn pause(attempt: u32) {
    let mut jitter = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut jitter);
    let base = 1u64 << attempt.min(6);
    std::thread::sleep(Duration::from_millis(base + u64::from(jitter[0]) % (base + 1)));
}

/// An error inside a transaction: the database's (maybe a retryable conflict) or the store's.
enum TxError {
    Db(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for TxError {
    fn from(e: postgres::Error) -> TxError {
        TxError::Db(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> TxError {
        TxError::Store(e)
    }
}

impl From<TxError> for StoreError {
    fn from(e: TxError) -> StoreError {
        match e {
            TxError::Db(e) => backend(describe(&e)),
            TxError::Store(e) => e,
        }
    }
}

/// The database's message where there is one (postgres::Error's Display alone says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => e.to_string(),
    }
}

/// A connection error with its cause (a TLS failure says why, not only "error performing TLS handshake").
fn describe_connect(e: &postgres::Error) -> String {
    let mut message = describe(e);
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Conflicts another transaction caused: the whole transaction is run again. A unique
/// violation is among them: two nodes inserting the same key at once may see it instead of a
/// serialization failure, and the retry then reads the row the winner wrote.
fn is_conflict(e: &TxError) -> bool {
    let TxError::Db(e) = e else { return false };
    let conflicts = [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED, SqlState::UNIQUE_VIOLATION];
    e.code().is_some_and(|code| conflicts.contains(code))
}

impl PgStore {
    /// Connects, brings the schema up to date and opens the pool.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let (url, tls) = tls::split_url(url)?;
        let config = connection_config(&url)?;
        let tls = tls::connector(&tls)?;
        let mut client =
            config.connect(tls.clone()).map_err(|e| backend(format!("connecting to PostgreSQL: {}", describe_connect(&e))))?;
        for migration in schema::migrate(&mut client)? {
            tracing::info!(version = migration.version, name = migration.name, "store schema migrated");
        }
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(2))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // No test query at checkout: a connection the server closed (a restart, a failover)
            // fails its first statement, and `write`/`read` then retry on a fresh one.
            .test_on_check_out(false)
            .build_unchecked(Manager { config, tls });
        Ok(PgStore { pool })
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| backend(format!("no PostgreSQL connection: {e}")))
    }

    /// Runs `body` in a SERIALIZABLE transaction, again while it conflicts with another.
    fn write<T>(&self, mut body: impl FnMut(&mut Tx<'_, '_>) -> Result<T, TxError>) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        let (mut attempt, mut reconnects) = (0, 0);
        loop {
            match run_once(&mut conn, &mut body) {
                Ok(value) => return Ok(value),
                // The server closed this idle connection: nothing of the transaction reached it,
                // so another connection may try (after a restart every idle one is dead: each is
                // dropped in turn, then a new one is opened).
                Err(Failed::Begin(e)) if conn.check_lost(&e) && reconnects < POOL_SIZE => {
                    reconnects += 1;
                    conn = self.connection()?;
                }
                Err(Failed::Begin(e)) => return Err(TxError::Db(e).into()),
                Err(Failed::Body(e)) if is_conflict(&e) && attempt < TRANSACTION_ATTEMPTS => {
                    attempt += 1;
                    pause(attempt);
                }
                Err(Failed::Body(e)) => {
                    if let TxError::Db(db) = &e {
                        conn.check_lost(db);
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// Runs `body` on a connection outside any explicit transaction (one statement, one
    /// snapshot); again on a fresh connection if the server had closed this one.
    fn read<T>(&self, body: impl Fn(&mut Session<'_, postgres::Client>) -> Result<T, TxError>) -> Result<T, StoreError> {
        let mut reconnects = 0;
        loop {
            let mut conn = self.connection()?;
            let pool::Connection { client, statements, .. } = &mut *conn;
            match body(&mut Session { client, statements }) {
                // As in `write`: a read is safe to run again on another connection.
                Err(TxError::Db(e)) if conn.check_lost(&e) && reconnects < POOL_SIZE => reconnects += 1,
                other => return other.map_err(StoreError::from),
            }
        }
    }
}

/// Where one run of a transaction failed.
enum Failed {
    /// BEGIN itself: nothing of the transaction reached the server.
    Begin(postgres::Error),
    Body(TxError),
}

fn run_once<T>(conn: &mut pool::Connection, body: &mut impl FnMut(&mut Tx<'_, '_>) -> Result<T, TxError>) -> Result<T, Failed> {
    let pool::Connection { client, statements, .. } = conn;
    let mut tx = client.build_transaction().isolation_level(IsolationLevel::Serializable).start().map_err(Failed::Begin)?;
    let value = body(&mut Session { client: &mut tx, statements }).map_err(Failed::Body)?;
    tx.commit().map_err(|e| Failed::Body(e.into()))?;
    Ok(value)
}

/// The connection settings of `url`, with a connect timeout and an application name unless the
/// URL sets them.
pub fn connection_config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Backend(format!("store URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CHECKOUT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("scepd");
    }
    Ok(config)
}

/// Adds `by` to a counter and returns its new value.
fn bump(tx: &mut Tx<'_, '_>, name: &str, by: u64) -> Result<u64, TxError> {
    let row = tx.query_one(
        "INSERT INTO counters (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value RETURNING value",
        &[&name, &int(by)],
    )?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn set_counter(tx: &mut Tx<'_, '_>, name: &str, value: u64) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&name, &int(value)],
    )?;
    Ok(())
}

fn counter(client: &mut Session<'_, impl GenericClient>, name: &str) -> Result<u64, TxError> {
    let row = client.query_opt("SELECT value FROM counters WHERE name = $1", &[&name])?;
    Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
}

/// INSERTs `rows` (each one value per column) in as few statements as the parameter limit allows.
fn insert_rows(tx: &mut Tx<'_, '_>, table: &str, columns: &str, rows: &[Vec<&(dyn ToSql + Sync)>], suffix: &str) -> Result<(), TxError> {
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
fn insert_certificate(tx: &mut Tx<'_, '_>, record: &CertRecord, der: &[u8], seq: Option<u64>) -> Result<(), TxError> {
    let values: [&(dyn ToSql + Sync); 15] = [
        &record.serial,
        &record.subject,
        &int(record.not_before),
        &int(record.not_after),
        &record.status.as_str(),
        &record.device_id,
        &record.transaction_id,
        &record.csr_sha256,
        &int(record.issued_at),
        &record.kind,
        &record.superseded_by,
        &opt_int(record.superseded_at),
        &opt_int(record.revoked_at),
        &record.revocation_reason,
        &der,
    ];
    let columns = "serial, subject, not_before, not_after, status, device_id, transaction_id, csr_sha256, issued_at, kind, \
                   superseded_by, superseded_at, revoked_at, revocation_reason, der, seq";
    let placeholders = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15";
    match seq {
        None => tx.execute(&format!("INSERT INTO certificates ({columns}) VALUES ({placeholders}, nextval('certificate_seq'))"), &values)?,
        Some(seq) => {
            let seq = int(seq);
            let mut with_seq = values.to_vec();
            with_seq.push(&seq);
            tx.execute(&format!("INSERT INTO certificates ({columns}) VALUES ({placeholders}, $16)"), &with_seq)?
        }
    };
    Ok(())
}

/// Revokes one certificate that is not revoked yet; returns it as revoked.
fn revoke_in(tx: &mut Tx<'_, '_>, serial: &str, reason: &str, at: u64) -> Result<CertRecord, TxError> {
    let row = tx.query_one(
        &format!(
            "UPDATE certificates SET status = 'revoked', revoked_at = $2, revocation_reason = $3 WHERE serial = $1 RETURNING {CERT_COLUMNS}"
        ),
        &[&serial, &int(at), &reason],
    )?;
    bump(tx, "revocation_epoch", 1)?;
    Ok(rows::certificate(&row)?)
}

/// Revokes the certificates an UPDATE's WHERE clause selects (`$1` is the time, `$2` the
/// reason, `$3` the clause's own parameter); returns their serials.
fn revoke_where(tx: &mut Tx<'_, '_>, clause: &str, at: u64, reason: &str, param: &(dyn ToSql + Sync)) -> Result<Vec<String>, TxError> {
    let revoked: Vec<String> = tx
        .query(
            &format!("UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 WHERE {clause} RETURNING serial"),
            &[&int(at), &reason, param],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !revoked.is_empty() {
        bump(tx, "revocation_epoch", revoked.len() as u64)?;
    }
    Ok(revoked)
}

/// Supersedes the device's active certificates and enforces `max_valid_per_device` (as the
/// embedded store does).
fn supersede_device(tx: &mut Tx<'_, '_>, device: &str, issuance: &Issuance, now: u64) -> Result<(Vec<String>, Vec<String>), TxError> {
    let valid_rows = tx.query(
        "SELECT serial, status FROM certificates
         WHERE device_id = $1 AND status IN ('active', 'superseded') AND not_after > $2 ORDER BY seq",
        &[&device, &int(now)],
    )?;
    let mut superseded = Vec::new();
    let mut valid = Vec::new();
    for row in valid_rows {
        let serial: String = row.get(0);
        if row.get::<_, &str>(1) == "active" {
            tx.execute(
                "UPDATE certificates SET status = 'superseded', superseded_by = $2, superseded_at = $3 WHERE serial = $1",
                &[&serial, &issuance.record.serial, &int(now)],
            )?;
            superseded.push(serial.clone());
        }
        valid.push(serial);
    }
    let mut revoked = Vec::new();
    if let Some(max) = issuance.max_valid_per_device {
        // The new certificate counts as one of the `max`; `valid` is oldest first.
        let excess = valid.len().saturating_sub((max as usize).saturating_sub(1));
        for serial in valid.into_iter().take(excess) {
            revoked.push(revoke_in(tx, &serial, "superseded", now)?.serial);
        }
    }
    Ok((superseded, revoked))
}

/// One issuance inside `tx`; only the `Stored` outcome writes anything.
fn record_one(tx: &mut Tx<'_, '_>, issuance: &Issuance) -> Result<IssuanceOutcome, TxError> {
    let record = &issuance.record;
    let existing =
        tx.query_opt(&format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE transaction_id = $1"), &[&record.transaction_id])?;
    if let Some(row) = existing {
        let found = rows::certificate(&row)?;
        return Ok(if found.csr_sha256 != record.csr_sha256 {
            IssuanceOutcome::TransactionConflict
        } else {
            IssuanceOutcome::AlreadyIssued(found, row.get("der"))
        });
    }
    // The serial drawn is the key (as in the embedded store); the record carries its hex form.
    if tx.query_opt("SELECT 1 FROM certificates WHERE serial = $1", &[&issuance.serial.to_hex()])?.is_some() {
        return Ok(IssuanceOutcome::SerialTaken);
    }
    if let Some(hash) = &issuance.redeems {
        let now = int(scepd_ca::time::unix_now());
        let redeemed = tx.execute(
            "UPDATE challenges SET redeemed_at = $2 WHERE hash = $1 AND redeemed_at IS NULL AND expires_at > $2",
            &[&hash.as_slice(), &now],
        )?;
        if redeemed == 0 {
            return Ok(IssuanceOutcome::ChallengeUnavailable);
        }
    }
    let (superseded, revoked) = match &record.device_id {
        Some(device) => supersede_device(tx, device, issuance, record.issued_at)?,
        None => (Vec::new(), Vec::new()),
    };
    insert_certificate(tx, record, &issuance.der, None)?;
    Ok(IssuanceOutcome::Stored { superseded, revoked })
}

fn insert_challenges_in(tx: &mut Tx<'_, '_>, batch: &[(ChallengeHash, ChallengeRecord)]) -> Result<(), TxError> {
    let owned: Vec<(i64, i64, Option<bool>, Option<i64>)> =
        batch.iter().map(|(_, r)| (int(r.expires_at), int(r.created_at), r.okta_device_access, opt_int(r.redeemed_at))).collect();
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
    insert_rows(tx, "challenges", CHALLENGE_COLUMNS, &values, "ON CONFLICT (hash) DO NOTHING")
}

fn insert_audit_in(tx: &mut Tx<'_, '_>, entries: &[AuditEntry]) -> Result<(), TxError> {
    let owned: Vec<(i64, i64, Option<i64>)> = entries.iter().map(|e| (int(e.seq), int(e.at), opt_int(e.request_id))).collect();
    let values: Vec<Vec<&(dyn ToSql + Sync)>> = entries
        .iter()
        .zip(&owned)
        .map(|(e, (seq, at, request_id))| vec![seq as &(dyn ToSql + Sync), at, &e.event, &e.actor, request_id, &e.serial, &e.device_id, &e.detail])
        .collect();
    insert_rows(tx, "audit", AUDIT_COLUMNS, &values, "")
}

fn put_mdm_client_in(tx: &mut Tx<'_, '_>, client: &MdmClient) -> Result<(), TxError> {
    tx.execute(
        &format!(
            "INSERT INTO mdm_clients ({MDM_COLUMNS}) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET
             password_hmac = excluded.password_hmac, created_at = excluded.created_at, challenge_ttl_seconds = excluded.challenge_ttl_seconds"
        ),
        &[&client.name, &client.password_hmac, &int(client.created_at), &opt_int(client.challenge_ttl_seconds)],
    )?;
    Ok(())
}

fn published_crl(client: &mut Session<'_, impl GenericClient>) -> Result<Option<StoredCrl>, TxError> {
    let row = client.query_opt("SELECT number, epoch, this_update, next_update, der FROM crl WHERE id = 1", &[])?;
    Ok(row.map(|r| StoredCrl {
        number: r.get::<_, i64>(0) as u64,
        epoch: r.get::<_, i64>(1) as u64,
        this_update: r.get::<_, i64>(2) as u64,
        next_update: r.get::<_, i64>(3) as u64,
        der: r.get(4),
    }))
}

fn put_crl_in(tx: &mut Tx<'_, '_>, crl: &StoredCrl) -> Result<(), TxError> {
    tx.execute(
        "INSERT INTO crl (id, number, epoch, this_update, next_update, der) VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET number = excluded.number, epoch = excluded.epoch,
         this_update = excluded.this_update, next_update = excluded.next_update, der = excluded.der",
        &[&int(crl.number), &int(crl.epoch), &int(crl.this_update), &int(crl.next_update), &crl.der],
    )?;
    Ok(())
}

/// The stored statuses a filtered status can come from (expired is derived from notAfter).
fn stored_statuses(status: CertStatus) -> Vec<&'static str> {
    match status {
        CertStatus::Expired => vec!["active", "superseded"],
        other => vec![other.as_str()],
    }
}

impl Store for PgStore {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(&format!("SELECT {CERT_COLUMNS} FROM certificates WHERE transaction_id = $1"), &[&transaction_id])?;
            Ok(row.map(|r| rows::certificate(&r)).transpose()?)
        })
    }

    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError> {
        self.write(|tx| batch.iter().map(|issuance| record_one(tx, issuance)).collect())
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(&format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE serial = $1"), &[&serial.to_hex()])?;
            Ok(row.map(|r| rows::certificate(&r).map(|record| (record, r.get("der")))).transpose()?)
        })
    }

    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let statuses = filter.status.map_or_else(|| vec!["active", "superseded", "revoked"], stored_statuses);
        let mut found = self.read(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE ($1::TEXT IS NULL OR device_id = $1) AND status = ANY($2) ORDER BY seq DESC"
                ),
                &[&filter.device_id, &statuses],
            )?;
            Ok(rows.iter().map(rows::certificate).collect::<Result<Vec<_>, _>>()?)
        })?;
        if let Some(status) = filter.status {
            let now = scepd_ca::time::unix_now();
            found.retain(|r| r.status_at(now) == status);
        }
        Ok(found)
    }

    fn insert_challenges(&self, batch: &[(ChallengeHash, ChallengeRecord)]) -> Result<(), StoreError> {
        self.write(|tx| insert_challenges_in(tx, batch))
    }

    fn challenge(&self, hash: &ChallengeHash) -> Result<Option<ChallengeRecord>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(&format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE hash = $1"), &[&hash.as_slice()])?;
            Ok(row.as_ref().map(rows::challenge))
        })
    }

    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM challenges WHERE expires_at < $1", &[&int(now)])?))
    }

    fn challenge_count(&self) -> Result<u64, StoreError> {
        self.read(|c| Ok(c.query_one("SELECT count(*) FROM challenges", &[])?.get::<_, i64>(0) as u64))
    }

    fn put_mdm_client(&self, client: &MdmClient) -> Result<(), StoreError> {
        self.write(|tx| put_mdm_client_in(tx, client))
    }

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError> {
        self.read(|c| Ok(c.query_opt(&format!("SELECT {MDM_COLUMNS} FROM mdm_clients WHERE name = $1"), &[&name])?.as_ref().map(rows::mdm_client)))
    }

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError> {
        self.read(|c| Ok(c.query(&format!("SELECT {MDM_COLUMNS} FROM mdm_clients ORDER BY name"), &[])?.iter().map(rows::mdm_client).collect()))
    }

    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM mdm_clients WHERE name = $1", &[&name])? > 0))
    }

    fn revoke(&self, serial: &Serial, reason: &str, at: u64) -> Result<RevokeOutcome, StoreError> {
        let serial = serial.to_hex();
        self.write(|tx| {
            let row = tx.query_opt(&format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1"), &[&serial])?;
            Ok(match row.map(|r| rows::certificate(&r)).transpose()? {
                None => RevokeOutcome::NotFound,
                Some(r) if r.status == CertStatus::Revoked => RevokeOutcome::AlreadyRevoked(r),
                Some(_) => RevokeOutcome::Revoked(revoke_in(tx, &serial, reason, at)?),
            })
        })
    }

    fn revoke_device(&self, device_id: &str, reason: &str, at: u64) -> Result<Vec<String>, StoreError> {
        self.write(|tx| revoke_where(tx, "device_id = $3 AND status <> 'revoked'", at, reason, &device_id))
    }

    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<String>, StoreError> {
        self.write(|tx| revoke_where(tx, "status = 'superseded' AND superseded_at < $3", at, "superseded", &int(cutoff)))
    }

    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError> {
        self.read(|c| {
            let rows = c.query("SELECT serial, revoked_at, revocation_reason, not_after FROM certificates WHERE status = 'revoked'", &[])?;
            Ok(rows
                .iter()
                .map(|r| RevokedRow {
                    serial: r.get(0),
                    revoked_at: r.get::<_, Option<i64>>(1).unwrap_or(0) as u64,
                    reason: r.get::<_, Option<String>>(2).unwrap_or_else(|| "unspecified".into()),
                    not_after: r.get::<_, i64>(3) as u64,
                })
                .collect())
        })
    }

    fn revocation_epoch(&self) -> Result<u64, StoreError> {
        self.read(|c| counter(c, "revocation_epoch"))
    }

    fn latest_crl(&self) -> Result<CrlState, StoreError> {
        self.read(|c| {
            let last_number = counter(c, "crl_number")?;
            let published = published_crl(c)?;
            Ok(CrlState { last_number, published })
        })
    }

    fn publish_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError> {
        self.write(|tx| {
            if counter(tx, "crl_number")? + 1 != crl.number {
                return Ok(false);
            }
            set_counter(tx, "crl_number", crl.number)?;
            put_crl_in(tx, crl)?;
            Ok(true)
        })
    }

    fn bind_identity(&self, name: &str, value: &str) -> Result<String, StoreError> {
        self.write(|tx| {
            tx.execute("INSERT INTO identity (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &value])?;
            Ok(tx.query_one("SELECT value FROM identity WHERE name = $1", &[&name])?.get(0))
        })
    }

    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError> {
        self.read(|c| {
            let row = c.query_one("SELECT count(*), min(not_after) FROM certificates WHERE status = 'active' AND not_after > $1", &[&int(now)])?;
            Ok((row.get::<_, i64>(0) as u64, row.get::<_, Option<i64>>(1).map(|v| v as u64)))
        })
    }

    fn size_bytes(&self) -> u64 {
        0
    }

    /// A write (that changes nothing): a read-only standby fails it.
    fn ping(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("INSERT INTO counters (name, value) VALUES ('ping', 0) ON CONFLICT (name) DO NOTHING", &[])?;
            Ok(())
        })
    }

    fn backup_to(&self, _out: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "the store is PostgreSQL: back it up with the database's own tools (pg_dump), or `scepd store copy` it to redb".into(),
        ))
    }

    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        let pool::Connection { client, statements, .. } = &mut *conn;
        // One snapshot for every page (on CockroachDB REPEATABLE READ is SERIALIZABLE).
        let mut tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().map_err(backend)?;
        let mut tx = Session { client: &mut tx, statements };
        let mut last_seq = -1i64;
        loop {
            let page = tx
                .query(
                    &format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2"),
                    &[&last_seq, &EXPORT_PAGE],
                )
                .map_err(backend)?;
            for row in &page {
                let record = rows::certificate(row)?;
                last_seq = int(record.seq);
                sink(StoreItem::Certificate(record, row.get("der")))?;
            }
            if (page.len() as i64) < EXPORT_PAGE {
                break;
            }
        }
        let mut last_hash: Vec<u8> = Vec::new();
        loop {
            let page = tx
                .query(&format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE hash > $1 ORDER BY hash LIMIT $2"), &[&last_hash, &EXPORT_PAGE])
                .map_err(backend)?;
            for row in &page {
                let hash = rows::challenge_hash(row)?;
                last_hash = hash.to_vec();
                sink(StoreItem::Challenge(hash, rows::challenge(row)))?;
            }
            if (page.len() as i64) < EXPORT_PAGE {
                break;
            }
        }
        for row in tx.query(&format!("SELECT {MDM_COLUMNS} FROM mdm_clients"), &[]).map_err(backend)? {
            sink(StoreItem::MdmClient(rows::mdm_client(&row)))?;
        }
        let mut last_seq = 0i64;
        loop {
            let page = tx
                .query(&format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"), &[&last_seq, &EXPORT_PAGE])
                .map_err(backend)?;
            for row in &page {
                let entry = rows::audit(row);
                last_seq = int(entry.seq);
                sink(StoreItem::Audit(entry))?;
            }
            if (page.len() as i64) < EXPORT_PAGE {
                break;
            }
        }
        for row in tx.query("SELECT name, value FROM counters WHERE name <> 'ping'", &[]).map_err(backend)? {
            sink(StoreItem::Counter(row.get(0), row.get::<_, i64>(1) as u64))?;
        }
        let cert_seq: Option<i64> = tx.query_one("SELECT max(seq) FROM certificates", &[]).map_err(backend)?.get(0);
        sink(StoreItem::Counter("cert_seq".into(), cert_seq.unwrap_or(0) as u64))?;
        if let Some(crl) = published_crl(&mut tx)? {
            sink(StoreItem::Crl(crl))?;
        }
        for row in tx.query("SELECT name, value FROM identity", &[]).map_err(backend)? {
            sink(StoreItem::Identity(row.get(0), row.get(1)))?;
        }
        Ok(())
    }

    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut challenges = Vec::new();
            let mut audit = Vec::new();
            for item in items {
                match item {
                    // A record from before issuance order was kept (seq 0) takes the next number.
                    StoreItem::Certificate(record, der) => insert_certificate(tx, record, der, Some(record.seq).filter(|s| *s > 0))?,
                    StoreItem::Challenge(hash, record) => challenges.push((*hash, record.clone())),
                    StoreItem::MdmClient(client) => put_mdm_client_in(tx, client)?,
                    StoreItem::Audit(entry) => audit.push(entry.clone()),
                    // The certificates' sequence continues after the highest copied.
                    StoreItem::Counter(name, value) if name == "cert_seq" => {
                        tx.query_one(
                            "SELECT setval('certificate_seq', GREATEST($1, (SELECT COALESCE(max(seq), 1) FROM certificates)))",
                            &[&int(*value)],
                        )?;
                    }
                    StoreItem::Counter(name, value) => set_counter(tx, name, *value)?,
                    StoreItem::Crl(crl) => put_crl_in(tx, crl)?,
                    StoreItem::Identity(name, value) => {
                        tx.execute("INSERT INTO identity (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value", &[name, value])?;
                    }
                }
            }
            insert_challenges_in(tx, &challenges)?;
            insert_audit_in(tx, &audit)?;
            if let Some(last) = audit.last() {
                // A copy from redb carries no audit counter: the trail continues after its last entry.
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES ('audit_seq', $1) ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)",
                    &[&int(last.seq)],
                )?;
            }
            Ok(())
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM certificates) AND NOT EXISTS (SELECT 1 FROM challenges)
                 AND NOT EXISTS (SELECT 1 FROM mdm_clients) AND NOT EXISTS (SELECT 1 FROM audit) AND NOT EXISTS (SELECT 1 FROM crl)",
                &[],
            )?;
            Ok(row.get(0))
        })
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let last = bump(tx, "audit_seq", entries.len() as u64)?;
            let first = last + 1 - entries.len() as u64;
            let numbered: Vec<AuditEntry> =
                entries.iter().zip(first..).map(|(e, seq)| AuditEntry { seq, ..e.clone() }).collect();
            insert_audit_in(tx, &numbered)
        })
    }

    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            let rows = c.query(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&int(after), &(limit.min(i64::MAX as usize) as i64)],
            )?;
            Ok(rows.iter().map(rows::audit).collect())
        })
    }

    /// Every commit is durable when it returns.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
