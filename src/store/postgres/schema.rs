//! The PostgreSQL schema and its migrations.
//!
//! Migrations are numbered and recorded in `scepd_schema`; each runs in its own transaction
//! together with the row that records it. Two nodes starting at once both try; the loser's
//! transaction fails (a duplicate table, a duplicate key or a serialization failure), and its
//! retry finds the migration recorded. No advisory lock is needed, so this runs unchanged on
//! CockroachDB and YugabyteDB.
//!
//! Times are Unix seconds in BIGINT; serials are the upper-case hex `openssl` prints.

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel};

use super::super::StoreError;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: "
        CREATE TABLE certificates (
            serial TEXT PRIMARY KEY,
            seq BIGINT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            not_before BIGINT NOT NULL,
            not_after BIGINT NOT NULL,
            status TEXT NOT NULL,
            device_id TEXT,
            transaction_id TEXT NOT NULL UNIQUE,
            csr_sha256 TEXT NOT NULL,
            issued_at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            superseded_by TEXT,
            superseded_at BIGINT,
            revoked_at BIGINT,
            revocation_reason TEXT,
            der BYTEA NOT NULL
        );
        CREATE INDEX certificates_by_device ON certificates (device_id);
        CREATE INDEX certificates_by_status ON certificates (status, superseded_at);
        CREATE SEQUENCE certificate_seq;
        CREATE TABLE challenges (
            hash BYTEA PRIMARY KEY,
            expires_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            minted_by TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            device_id TEXT,
            subject_cn TEXT,
            san TEXT,
            payload_identifier TEXT,
            okta_device_access BOOLEAN,
            redeemed_at BIGINT
        );
        CREATE INDEX challenges_by_expiry ON challenges (expires_at);
        CREATE TABLE mdm_clients (
            name TEXT PRIMARY KEY,
            password_hmac TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            challenge_ttl_seconds BIGINT
        );
        CREATE TABLE audit (
            seq BIGINT PRIMARY KEY,
            at BIGINT NOT NULL,
            event TEXT NOT NULL,
            actor TEXT NOT NULL,
            request_id BIGINT,
            serial TEXT,
            device_id TEXT,
            detail TEXT
        );
        CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
        CREATE TABLE crl (
            id INT PRIMARY KEY,
            number BIGINT NOT NULL,
            epoch BIGINT NOT NULL,
            this_update BIGINT NOT NULL,
            next_update BIGINT NOT NULL,
            der BYTEA NOT NULL
        );
        CREATE TABLE identity (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    ",
    },
    // Whether a certificate's device id is vouched for (a bound challenge, or the renewal of
    // such a certificate). Earlier certificates are not: they never cause a revocation.
    Migration {
        version: 2,
        name: "device_bound",
        sql: "ALTER TABLE certificates ADD COLUMN device_bound BOOLEAN NOT NULL DEFAULT FALSE;",
    },
    // CA rollover: the issuing CA of each certificate (NULL: the original CA, which issued
    // every certificate stored before), the later CA generations, and their CRLs.
    Migration {
        version: 3,
        name: "ca_rollover",
        sql: "
        ALTER TABLE certificates ADD COLUMN issuer TEXT;
        CREATE TABLE ca_generations (
            issuer TEXT PRIMARY KEY,
            ca_der BYTEA NOT NULL,
            ra_der BYTEA,
            added_at BIGINT NOT NULL,
            activate_at BIGINT
        );
        CREATE TABLE ca_crls (
            issuer TEXT PRIMARY KEY,
            last_number BIGINT NOT NULL,
            number BIGINT,
            epoch BIGINT,
            this_update BIGINT,
            next_update BIGINT,
            der BYTEA
        );
    ",
    },
    // Webhook endpoints and the outbox of deliveries (see `outbox.rs`).
    Migration {
        version: 4,
        name: "webhooks",
        sql: "
        CREATE TABLE webhook_endpoints (id TEXT PRIMARY KEY, record TEXT NOT NULL);
        CREATE SEQUENCE webhook_delivery_seq;
        CREATE TABLE webhook_deliveries (
            id TEXT PRIMARY KEY,
            seq BIGINT NOT NULL,
            status TEXT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            lease_until BIGINT NOT NULL,
            lease_owner TEXT,
            occurred_at BIGINT NOT NULL,
            record TEXT NOT NULL
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
        CREATE INDEX webhook_deliveries_by_seq ON webhook_deliveries (seq);
        CREATE TABLE webhook_expiring_announced (serial TEXT PRIMARY KEY, announced_at BIGINT NOT NULL);
        CREATE TABLE webhook_announced (key TEXT PRIMARY KEY, announced_at BIGINT NOT NULL);
    ",
    },
    // The web console: operator accounts and sign-in sessions (any node serves a session).
    Migration {
        version: 5,
        name: "console",
        sql: "
        CREATE TABLE console_accounts (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE TABLE console_sessions (
            id_hash BYTEA PRIMARY KEY,
            actor TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            last_seen BIGINT NOT NULL
        );
    ",
    },
    // The kind of challenge each certificate was issued with (JSON; NULL for renewals and for
    // certificates from before), which the console shows.
    Migration {
        version: 6,
        name: "certificate_challenge",
        sql: "ALTER TABLE certificates ADD COLUMN challenge TEXT;",
    },
    // `scepd ca remove`: a retired CA generation kept as removed, so that it is not recorded
    // again from a data directory that still holds its files; and the order generations were
    // recorded in (of two activated for the same second, the later is current).
    Migration {
        version: 7,
        name: "ca_generations_removed_and_order",
        sql: "
        ALTER TABLE ca_generations ADD COLUMN removed_at BIGINT;
        ALTER TABLE ca_generations ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
    ",
    },
];

/// The newest schema this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// How often a start-up race is retried before giving up.
const ATTEMPTS: u32 = 20;

/// Brings the schema up to date; returns the migrations this call applied.
pub fn migrate(client: &mut Client) -> Result<Vec<&'static Migration>, StoreError> {
    let mut attempt = 0;
    loop {
        match try_migrate(client) {
            Ok(applied) => return Ok(applied),
            Err(Attempt::Lost) if attempt < ATTEMPTS => {
                attempt += 1;
                super::pause(attempt);
            }
            Err(Attempt::Lost) => return Err(StoreError::MigrationContention),
            Err(Attempt::Failed(e)) => return Err(e),
        }
    }
}

enum Attempt {
    /// Another node was migrating at the same moment: try again.
    Lost,
    Failed(StoreError),
}

impl From<postgres::Error> for Attempt {
    fn from(e: postgres::Error) -> Attempt {
        let raced = [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::UNIQUE_VIOLATION,
            SqlState::DUPLICATE_TABLE,
            SqlState::DUPLICATE_OBJECT,
            // Two nodes adding the same column (migration 2) at once.
            SqlState::DUPLICATE_COLUMN,
        ];
        match e.code() {
            Some(code) if raced.contains(code) => Attempt::Lost,
            _ => Attempt::Failed(e.into()),
        }
    }
}

fn try_migrate(client: &mut Client) -> Result<Vec<&'static Migration>, Attempt> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS scepd_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )?;
    let found: Option<i64> = client.query_one("SELECT max(version) FROM scepd_schema", &[])?.get(0);
    let found = found.unwrap_or(0);
    if found > latest_version() {
        return Err(Attempt::Failed(StoreError::SchemaTooNew {
            found: found as u64,
            supported: latest_version() as u64,
        }));
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()?;
        if tx
            .query_opt("SELECT 1 FROM scepd_schema WHERE version = $1", &[&migration.version])?
            .is_some()
        {
            continue;
        }
        tx.batch_execute(migration.sql)?;
        tx.execute(
            "INSERT INTO scepd_schema (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                &migration.version,
                &migration.name,
                &(scepd_ca::time::unix_now() as i64),
            ],
        )?;
        tx.commit()?;
        applied.push(migration);
    }
    Ok(applied)
}
