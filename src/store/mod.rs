//! The store: every issued certificate (and later challenge and revocation), durably.
//!
//! [`Store`] is the unit of atomicity: each method is one transaction, committed (fsync)
//! before it returns. The embedded implementation, and the default, is redb ([`redb_store`]);
//! several nodes share one PostgreSQL (or CockroachDB) database instead ([`postgres`]).

pub mod ca_state;
pub mod console;
pub mod issuance;
pub mod location;
pub mod outbox;
pub mod postgres;
pub mod record;
pub mod redb_open;
pub mod redb_outbox;
pub mod redb_store;
mod reopening;

pub use ca_state::{Activation, AddGeneration, CaGenerationRecord, CaStore, IssuerCrl};
pub use location::StoreLocation;
pub use postgres::PgStore;
pub use postgres::DEFAULT_POOL_SIZE;
pub use record::{
    AuditEntry, AuditEvent, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, ChallengeState,
    ChallengeUsed, CrlState, Issuance, IssuanceKind, IssuanceOutcome, MdmClient, RevokeOutcome, RevokedRow, StoreItem,
    StoredCrl, Supersede,
};
pub use reopening::RedbStore;

use scepd_ca::{Reason, Serial};
use thiserror::Error;

/// What a networked store reports for the metrics: work done again, not failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A transaction ran again after a conflict with another (a serialization failure).
    Retried,
    /// A connection the server had closed was replaced.
    Reconnected,
    /// The store failed (an I/O error, a full disk, a read-only filesystem or database).
    Failed,
    /// The embedded store's file was opened again after a failure.
    Reopened,
}

impl StoreEvent {
    /// The label of a retry (`conflict`, `reconnect`); failures and reopenings have their own
    /// counters.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreEvent::Retried => "conflict",
            StoreEvent::Reconnected => "reconnect",
            StoreEvent::Failed => "failed",
            StoreEvent::Reopened => "reopened",
        }
    }
}

/// Called for each [`StoreEvent`].
pub type StoreObserver = std::sync::Arc<dyn Fn(StoreEvent) + Send + Sync>;

/// What the store reports. Each variant keeps its cause ([`std::error::Error::source`]); the
/// message names the layer and repeats the cause's text, so a log line needs only `{}`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded store (redb) failed: I/O, a full disk, a damaged file.
    #[error("embedded store: {0}")]
    Redb(#[source] redb::Error),
    /// The database failed or could not be reached.
    #[error("PostgreSQL: {}", postgres::describe(.0))]
    Postgres(#[source] ::postgres::Error),
    /// No database connection was free (or could be opened) in time.
    #[error("PostgreSQL connection pool: {0}")]
    Pool(#[source] r2d2::Error),
    /// A file the store reads or writes (a backup, a root certificate).
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The store's location or settings are wrong (a bad URL, a bad TLS setting).
    #[error("store configuration: {0}")]
    Config(String),
    /// Nodes migrating one database at the same moment kept conflicting.
    #[error("schema migration kept conflicting with another node")]
    MigrationContention,
    #[error("store schema version {found} is newer than this scepd supports ({supported})")]
    SchemaTooNew { found: u64, supported: u64 },
    /// A record that does not decode, or an index that points nowhere.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// What this kind of store does not do (a backup of a networked store).
    #[error("{0}")]
    Unsupported(String),
    /// A background writer (issuance committer, challenge or audit batches) has stopped.
    #[error("the {0} has stopped")]
    WriterStopped(&'static str),
    /// A batching writer's last batch failed a moment ago (its cause was logged): new work is
    /// refused for a second rather than queued behind a failing store.
    #[error("the {0} could not store its last batch; retry shortly")]
    WriterFailing(&'static str),
    /// The embedded store's file is damaged (it was closed cleanly, yet does not verify). It was
    /// left untouched: the operator restores the data directory from a backup.
    #[error(
        "{} is damaged ({detail}); it was left as it is: restore the data directory from a `scepd backup` \
         (scepd restore --data NEW_DIR BACKUP_DIR)",
        path.display()
    )]
    Damaged { path: std::path::PathBuf, detail: String },
    /// A write shared by several callers (a group commit) failed: each caller gets the cause.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    /// The embedded store's file is closed after an I/O error and being opened again; the text
    /// is why the last attempt failed.
    #[error("embedded store unavailable after an I/O error (reopening): {0}")]
    Reopening(String),
}

impl StoreError {
    /// An I/O failure of the embedded store: its file must be closed and opened again.
    pub fn is_io(&self) -> bool {
        match self {
            StoreError::Redb(redb::Error::Io(_) | redb::Error::PreviousIo) => true,
            StoreError::Shared(inner) => inner.is_io(),
            _ => false,
        }
    }
}

/// redb's error types, each converted with its cause kept, so that `?` works on every call.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError,
    redb::SetDurabilityError
);

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> StoreError {
        StoreError::Postgres(e)
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> StoreError {
        StoreError::Pool(e)
    }
}

/// Every operation is atomic and durable when it returns `Ok`.
pub trait Store: outbox::WebhookStore + CaStore + Send + Sync {
    /// The certificate issued for a transactionID, if any (a retried request).
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError>;

    /// Records an issued certificate. In one transaction: a transactionID already issued with the
    /// same CSR returns that certificate instead (the caller sends it again); a serial already
    /// taken is refused (the caller draws a new one); the redeemed challenge is consumed; the
    /// device's earlier active certificates become `superseded`.
    fn record_issuance(&self, issuance: &Issuance) -> Result<IssuanceOutcome, StoreError> {
        let mut outcomes = self.record_issuances(std::slice::from_ref(issuance))?;
        outcomes.pop().ok_or_else(|| StoreError::Corrupt("no outcome".into()))
    }

    /// Records several issuances in one transaction and one fsync (group commit), each with the
    /// semantics of [`Store::record_issuance`], in order: a later one sees the earlier ones.
    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError>;

    /// One certificate with its DER.
    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError>;

    /// Certificates matching `filter`, newest first.
    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError>;

    /// Stores minted challenges (a batch: see `service::challenges`), durably, one transaction a
    /// batch; a challenge already stored is left as it is (a batch written again after a failure
    /// never brings back a redeemed one). The MDM has the challenge before it is committed: one
    /// minted an instant before a crash can be lost (the MDM fetches another), but a batch the
    /// store refused is kept and written again once the store recovers.
    fn insert_challenges(&self, batch: &[(ChallengeHash, ChallengeRecord)]) -> Result<(), StoreError>;

    fn challenge(&self, hash: &ChallengeHash) -> Result<Option<ChallengeRecord>, StoreError>;

    /// Deletes challenges that expired before `now` (redeemed ones included); returns how many.
    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError>;

    /// Challenges stored (outstanding and redeemed-but-not-yet-expired).
    fn challenge_count(&self) -> Result<u64, StoreError>;

    /// Creates an MDM client unless one of that name exists (then nothing is written and the
    /// answer is false): of two concurrent adds of one name, exactly one succeeds.
    fn add_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError>;

    /// Replaces an existing MDM client (a rotated password); false, writing nothing, when there
    /// is none of that name (a rotation never brings back a removed client).
    fn replace_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError>;

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError>;

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError>;

    /// Returns whether it existed.
    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError>;

    /// Revokes one certificate (idempotent).
    fn revoke(&self, serial: &Serial, reason: Reason, at: u64) -> Result<RevokeOutcome, StoreError>;

    /// Revokes every active or superseded certificate of a device; returns their serials.
    fn revoke_device(&self, device_id: &str, reason: Reason, at: u64) -> Result<Vec<Serial>, StoreError>;

    /// Revokes (reason `superseded`) the certificates superseded before `cutoff` by a
    /// certificate whose device id is vouched for (`device_bound`): an unbound request never
    /// causes another certificate's revocation.
    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<Serial>, StoreError>;

    /// Every revoked certificate (the CRL's entries before the expiry filter).
    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError>;

    /// Counts revocations: a node's CRL is stale when this moved since it was built.
    fn revocation_epoch(&self) -> Result<u64, StoreError>;

    /// The last CRL number handed out and the newest CRL published (by any node).
    fn latest_crl(&self) -> Result<CrlState, StoreError>;

    /// Publishes `crl` as the newest CRL when its number is exactly one more than the last one
    /// handed out; false (nothing written) when another node published first. CRL numbers so
    /// never repeat or go back, across nodes.
    fn publish_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError>;

    /// Records `value` under `name` if nothing is recorded yet, and returns what is recorded:
    /// the nodes sharing a store check with it that they hold the same CA and secrets.
    fn bind_identity(&self, name: &str, value: &str) -> Result<String, StoreError>;

    /// Active certificates as of `now` and the soonest notAfter among them (a scan: for the
    /// metrics, off the request path).
    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError>;

    /// Size of the store's file in bytes (0 for a networked store).
    fn size_bytes(&self) -> u64;

    /// Proves the store takes writes (an empty write transaction, not made durable).
    fn ping(&self) -> Result<(), StoreError>;

    /// Writes a consistent copy of the whole store to `out` (a file), while the store stays in
    /// use: every commit made before the call is in the copy. A networked store refuses
    /// ([`StoreError::Unsupported`]): its own tools back it up.
    fn backup_to(&self, out: &std::path::Path) -> Result<(), StoreError>;

    /// Hands every item of the store to `sink`, from one consistent snapshot.
    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError>;

    /// Writes exported items as they were (sequence numbers and counters included), in one
    /// transaction per call. Only for an empty store ([`Store::is_empty`]).
    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError>;

    /// Whether the store holds no certificate, challenge, MDM client, audit entry or CRL.
    fn is_empty(&self) -> Result<bool, StoreError>;

    /// Appends to the audit trail (committed like minted challenges: durable within a second).
    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError>;

    /// Audit entries after sequence number `after`, oldest first, at most `limit`.
    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The web console's accounts, sessions and paged reads (see [`console`]).
    fn console(&self) -> &dyn console::ConsoleStore;

    /// Makes every earlier commit durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Sets who hears of retries and reconnects (the embedded store has neither).
    fn observe(&self, _observer: StoreObserver) {}
}
