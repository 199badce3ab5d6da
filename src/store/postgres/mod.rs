//! The shared store, on PostgreSQL, for several scepd nodes behind a load balancer.
//!
//! Only SQL that CockroachDB and YugabyteDB also run: no advisory locks, no LISTEN/NOTIFY, no
//! PL/pgSQL. Every write is one SERIALIZABLE transaction, retried when the database reports a
//! serialization failure; that is what makes "a challenge is redeemed once" and "serials are
//! unique" hold across nodes. Counters (the CRL number, the revocation epoch, the audit trail's
//! sequence) are rows of `counters`, updated inside those transactions. Commits are durable
//! when they return (the server's `synchronous_commit`, on by default).

mod ca;
mod console;
mod copy;
mod outbox;
mod pool;
mod records;
mod rows;
pub mod schema;
mod tls;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{IsolationLevel, Transaction};
use scepd_ca::{Reason, Serial};

use super::issuance;
use super::outbox::RevokedBy;
use super::{
    AuditEntry, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, CrlState, Issuance,
    IssuanceOutcome, MdmClient, RevokeOutcome, RevokedRow, Store, StoreError, StoreItem, StoredCrl,
};
use rows::{int, AUDIT_COLUMNS, CERT_COLUMNS, CHALLENGE_COLUMNS, MDM_COLUMNS};

use pool::{Manager, Session};
use records::{
    bump, counter, crl_state, insert_audit_in, insert_challenges_in, insert_mdm_client_in, put_crl_in, revoke_in,
    revoke_where, set_counter, stored_statuses, PgIssuance,
};

/// A transaction whose queries use the connection's prepared statements.
type Tx<'a, 'b> = Session<'a, Transaction<'b>>;

/// Connections per node unless configured: enough for the blocking pool's store calls to rarely
/// wait, few enough for three nodes to stay well inside PostgreSQL's default `max_connections` (100).
pub const DEFAULT_POOL_SIZE: u32 = 16;
/// How long a request waits for a connection (or a new one to open) before it is answered 503.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Serialization failures retried before the operation fails.
const TRANSACTION_ATTEMPTS: u32 = 16;
/// Unique-key violations retried: a race between two nodes inserting one key resolves on the
/// first retry (it then reads the winner's row); one that persists is not a race.
const UNIQUE_VIOLATION_ATTEMPTS: u32 = 2;
/// How long the network may leave a connection silent before it counts as dead.
const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(15);

pub struct PgStore {
    pool: r2d2::Pool<Manager>,
    observer: std::sync::OnceLock<super::StoreObserver>,
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
            TxError::Db(e) => StoreError::Postgres(e),
            TxError::Store(e) => e,
        }
    }
}

/// The database's message where there is one (postgres::Error's Display alone says only "db
/// error"), and the causes of a connection error (a TLS failure says why, not only "error
/// performing TLS handshake").
pub(super) fn describe(e: &postgres::Error) -> String {
    let mut message = match e.as_db_error() {
        Some(db) => format!("{e}: {}", db.message()),
        None => e.to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if e.as_db_error().is_none() {
            message.push_str(&format!(": {cause}"));
        }
        source = cause.source();
    }
    message
}

/// Conflicts another transaction caused: the whole transaction is run again. A unique
/// violation is among them: two nodes inserting the same key at once may see it instead of a
/// serialization failure, and the retry then reads the row the winner wrote.
fn is_conflict(e: &TxError, attempt: u32) -> bool {
    let TxError::Db(e) = e else { return false };
    match e.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => attempt < UNIQUE_VIOLATION_ATTEMPTS,
        Some(code) => {
            [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED].contains(code)
                && attempt < TRANSACTION_ATTEMPTS
        }
        None => false,
    }
}

impl PgStore {
    /// Connects, brings the schema up to date and opens a pool of the default size.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_pooled(url, DEFAULT_POOL_SIZE)
    }

    /// Connects, brings the schema up to date and opens a pool of up to `pool_size` connections.
    pub fn connect_pooled(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        let (url, tls) = tls::split_url(url)?;
        let config = connection_config(&url)?;
        let tls = tls::connector(&tls)?;
        let mut client = config.connect(tls.clone())?;
        for migration in schema::migrate(&mut client)? {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "store schema migrated"
            );
        }
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(pool_size.clamp(1, 2)))
            .connection_timeout(CHECKOUT_TIMEOUT)
            // No test query at checkout: a connection the server closed (a restart, a failover)
            // fails its first statement, and `write`/`read` then retry on a fresh one.
            .test_on_check_out(false)
            .build_unchecked(Manager { config, tls });
        Ok(PgStore {
            pool,
            observer: std::sync::OnceLock::new(),
        })
    }

    fn report(&self, event: super::StoreEvent) {
        if let Some(observer) = self.observer.get() {
            observer(event);
        }
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
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
                Err(Failed::Begin(e)) if conn.check_lost(&e) && reconnects < self.pool.max_size() => {
                    reconnects += 1;
                    self.report(super::StoreEvent::Reconnected);
                    // Back to the pool (which drops it) before taking another: a pool of one
                    // would otherwise wait for itself.
                    drop(conn);
                    conn = self.connection()?;
                }
                Err(Failed::Begin(e)) => return Err(TxError::Db(e).into()),
                Err(Failed::Body(e)) if is_conflict(&e, attempt) => {
                    attempt += 1;
                    self.report(super::StoreEvent::Retried);
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
    fn read<T>(
        &self,
        body: impl Fn(&mut Session<'_, postgres::Client>) -> Result<T, TxError>,
    ) -> Result<T, StoreError> {
        let (mut attempt, mut reconnects) = (0, 0);
        loop {
            let mut conn = self.connection()?;
            let pool::Connection { client, statements, .. } = &mut *conn;
            match body(&mut Session { client, statements }) {
                // As in `write`: a read is safe to run again on another connection.
                Err(TxError::Db(e)) if conn.check_lost(&e) && reconnects < self.pool.max_size() => {
                    reconnects += 1;
                    self.report(super::StoreEvent::Reconnected);
                }
                // CockroachDB may restart a long read (40001) where PostgreSQL never does.
                Err(e) if is_conflict(&e, attempt) => {
                    attempt += 1;
                    self.report(super::StoreEvent::Retried);
                    pause(attempt);
                }
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

fn run_once<T>(
    conn: &mut pool::Connection,
    body: &mut impl FnMut(&mut Tx<'_, '_>) -> Result<T, TxError>,
) -> Result<T, Failed> {
    let pool::Connection { client, statements, .. } = conn;
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .map_err(Failed::Begin)?;
    let value = body(&mut Session {
        client: &mut tx,
        statements,
    })
    .map_err(Failed::Body)?;
    tx.commit().map_err(|e| Failed::Body(e.into()))?;
    Ok(value)
}

/// The connection settings of `url`, with a connect timeout and an application name unless the
/// URL sets them.
pub fn connection_config(url: &str) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Config(format!("store URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CHECKOUT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("scepd");
    }
    // A connection the network dropped without closing must fail, not hang a request (or the
    // issuance committer) forever: unacknowledged data times out, an idle link is probed.
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(DEAD_PEER_TIMEOUT);
    }
    if config.get_keepalives_interval().is_none() {
        config
            .keepalives_idle(DEAD_PEER_TIMEOUT)
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
    }
    Ok(config)
}

impl Store for PgStore {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE transaction_id = $1"),
                &[&transaction_id],
            )?;
            Ok(row.map(|r| rows::certificate(&r)).transpose()?)
        })
    }

    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError> {
        self.write(|tx| {
            batch
                .iter()
                .map(|issuance| issuance::record_one(&mut PgIssuance(tx), issuance))
                .collect()
        })
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(
                &format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE serial = $1"),
                &[&serial.to_hex()],
            )?;
            Ok(row
                .map(|r| rows::certificate(&r).map(|record| (record, r.get("der"))))
                .transpose()?)
        })
    }

    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let statuses = filter
            .status
            .map_or_else(|| vec!["active", "superseded", "revoked"], stored_statuses);
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
            let row = c.query_opt(
                &format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE hash = $1"),
                &[&hash.as_slice()],
            )?;
            Ok(row.as_ref().map(rows::challenge))
        })
    }

    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM challenges WHERE expires_at < $1", &[&int(now)])?))
    }

    fn challenge_count(&self) -> Result<u64, StoreError> {
        self.read(|c| Ok(c.query_one("SELECT count(*) FROM challenges", &[])?.get::<_, i64>(0) as u64))
    }

    fn add_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.write(|tx| insert_mdm_client_in(tx, client, "ON CONFLICT (name) DO NOTHING"))
    }

    fn replace_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.write(|tx| {
            let updated = tx.execute(
                "UPDATE mdm_clients SET password_hmac = $2, created_at = $3, challenge_ttl_seconds = $4 WHERE name = $1",
                &[&client.name, &client.password_hmac, &int(client.created_at), &rows::opt_int(client.challenge_ttl_seconds)],
            )?;
            Ok(updated > 0)
        })
    }

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError> {
        self.read(|c| {
            Ok(c.query_opt(
                &format!("SELECT {MDM_COLUMNS} FROM mdm_clients WHERE name = $1"),
                &[&name],
            )?
            .as_ref()
            .map(rows::mdm_client))
        })
    }

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError> {
        // Sorted here, bytewise as the embedded store is, whatever the database's collation.
        let mut clients: Vec<MdmClient> = self.read(|c| {
            Ok(c.query(&format!("SELECT {MDM_COLUMNS} FROM mdm_clients"), &[])?
                .iter()
                .map(rows::mdm_client)
                .collect())
        })?;
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(clients)
    }

    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| Ok(tx.execute("DELETE FROM mdm_clients WHERE name = $1", &[&name])? > 0))
    }

    fn revoke(&self, serial: &Serial, reason: Reason, at: u64) -> Result<RevokeOutcome, StoreError> {
        self.write(|tx| {
            let row = tx.query_opt(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1"),
                &[&serial.to_hex()],
            )?;
            Ok(match row.map(|r| rows::certificate(&r)).transpose()? {
                None => RevokeOutcome::NotFound,
                Some(r) if r.status == CertStatus::Revoked => RevokeOutcome::AlreadyRevoked(r),
                Some(_) => {
                    let record = revoke_in(tx, serial, reason, at)?;
                    outbox::emit_in(tx, &[super::outbox::Event::revoked(&record, RevokedBy::Admin)], at)?;
                    RevokeOutcome::Revoked(record)
                }
            })
        })
    }

    fn revoke_device(&self, device_id: &str, reason: Reason, at: u64) -> Result<Vec<Serial>, StoreError> {
        self.write(|tx| {
            let revoked = revoke_where(tx, "device_id = $3 AND status <> 'revoked'", at, reason, &device_id)?;
            outbox::emit_revoked(tx, &revoked, RevokedBy::Admin, at)?;
            Ok(revoked)
        })
    }

    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<Serial>, StoreError> {
        self.write(|tx| {
            let revoked = revoke_where(
                tx,
                // Only when the successor's device id is vouched for (see `Store`).
                "status = 'superseded' AND superseded_at < $3 \
                 AND superseded_by IN (SELECT serial FROM certificates WHERE device_bound)",
                at,
                Reason::SUPERSEDED,
                &int(cutoff),
            )?;
            outbox::emit_revoked(tx, &revoked, RevokedBy::Policy, at)?;
            Ok(revoked)
        })
    }

    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError> {
        self.read(|c| {
            let rows = c.query("SELECT serial, revoked_at, revocation_reason, not_after, issuer FROM certificates WHERE status = 'revoked' AND revoked_at IS NOT NULL", &[])?;
            let mut revoked = Vec::with_capacity(rows.len());
            for r in &rows {
                let reason: Option<&str> = r.get(2);
                // The entry is encoded as it is read here: the rows are columns, not kept bytes.
                revoked.push(RevokedRow::new(
                    rows::serial(r, "serial")?,
                    r.get::<_, Option<i64>>(1).unwrap_or(0) as u64,
                    reason.and_then(Reason::from_name).unwrap_or(Reason::UNSPECIFIED),
                    r.get::<_, i64>(3) as u64,
                    r.get::<_, Option<&str>>(4)
                        .map(|t| t.parse().map_err(|_| StoreError::Corrupt(format!("issuer {t:?}"))))
                        .transpose()?,
                )?);
            }
            Ok(revoked)
        })
    }

    fn revocation_epoch(&self) -> Result<u64, StoreError> {
        self.read(|c| counter(c, "revocation_epoch"))
    }

    fn latest_crl(&self) -> Result<CrlState, StoreError> {
        self.read(crl_state)
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
            tx.execute(
                "INSERT INTO identity (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &value],
            )?;
            Ok(tx
                .query_one("SELECT value FROM identity WHERE name = $1", &[&name])?
                .get(0))
        })
    }

    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError> {
        self.read(|c| {
            let row = c.query_one(
                "SELECT count(*), min(not_after) FROM certificates WHERE status = 'active' AND not_after > $1",
                &[&int(now)],
            )?;
            Ok((
                row.get::<_, i64>(0) as u64,
                row.get::<_, Option<i64>>(1).map(|v| v as u64),
            ))
        })
    }

    fn size_bytes(&self) -> u64 {
        0
    }

    /// A write (that changes nothing): a read-only standby fails it.
    fn ping(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO counters (name, value) VALUES ('ping', 0) ON CONFLICT (name) DO NOTHING",
                &[],
            )?;
            Ok(())
        })
    }

    fn backup_to(&self, _out: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported(
            "the store is PostgreSQL: back it up with the database's own tools (pg_dump), or `scepd store copy` it to redb".into(),
        ))
    }

    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError> {
        copy::export(&mut *self.connection()?, sink)
    }

    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        self.write(|tx| copy::import(tx, items))
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
            let numbered: Vec<AuditEntry> = entries
                .iter()
                .zip(first..)
                .map(|(e, seq)| AuditEntry { seq, ..e.clone() })
                .collect();
            insert_audit_in(tx, &numbered)
        })
    }

    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        // Nothing comes after the largest sequence number PostgreSQL can hold.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        self.read(|c| {
            let rows = c.query(
                &format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &(limit.min(i64::MAX as usize) as i64)],
            )?;
            Ok(rows.iter().map(rows::audit).collect::<Result<_, _>>()?)
        })
    }

    fn console(&self) -> &dyn super::console::ConsoleStore {
        self
    }

    /// Every commit is durable when it returns.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn observe(&self, observer: super::StoreObserver) {
        let _ = self.observer.set(observer);
    }
}
