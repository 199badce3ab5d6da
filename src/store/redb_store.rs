//! The embedded store, on redb (stable file format, ACID, pure Rust; sled was rejected: no
//! stable release since 2021 and an unstable on-disk format).
//!
//! Tables (keys are bytes so that ordering is explicit):
//! - `meta`: `schema_version` → u64 (big-endian).
//! - `certs`: serial (16 bytes) → JSON [`CertRecord`].
//! - `cert_der`: serial → certificate DER.
//! - `certs_by_transaction`: transactionID → serial.
//! - `certs_by_device`: device id ‖ 0x00 ‖ serial → () (prefix range per device).
//! - `challenges`: HMAC of the challenge → JSON [`ChallengeRecord`].
//! - `challenges_by_expiry`: expires_at (big-endian) ‖ HMAC → () (the sweeper's range).
//! - `mdm_clients`: name → JSON [`MdmClient`].
//! - `revoked`: serial → [`RevokedRow`] with its CRL entry encoded (`revoked.rs`; the CRL's
//!   source: no scan of all certificates).
//! - `superseded`: superseded_at (big-endian) ‖ serial → () (for `revoke_superseded_after`).
//! - `meta` also holds `crl_number`, `revocation_epoch` and `cert_seq`.
//! - `crl`: `latest` → JSON [`StoredCrl`] (the newest CRL published).
//! - `identity`: name → value (see [`Store::bind_identity`]).
//!
//! Every write is one redb transaction with immediate durability (fsync before commit returns),
//! except minting a challenge (see [`Store::insert_challenge`]).

#[path = "console_redb.rs"]
mod console_redb;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use scepd_ca::{Reason, Serial};

use super::issuance::{self, IssuanceTx};
use super::outbox::{Event, RevokedBy};
use super::{
    AuditEntry, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, ChallengeState, CrlState, Issuance,
    IssuanceOutcome, MdmClient, RevokeOutcome, RevokedRow, Store, StoreError, StoreItem, StoredCrl,
};

mod ca;
mod revoked;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
const CERT_DER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cert_der");
const BY_TRANSACTION: TableDefinition<&str, &[u8]> = TableDefinition::new("certs_by_transaction");
const BY_DEVICE: TableDefinition<&[u8], ()> = TableDefinition::new("certs_by_device");
const CHALLENGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("challenges");
const CHALLENGES_BY_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("challenges_by_expiry");
const MDM_CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("mdm_clients");
const REVOKED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("revoked");
const SUPERSEDED: TableDefinition<&[u8], ()> = TableDefinition::new("superseded");
/// Append-only: sequence number (big-endian) → JSON [`AuditEntry`]; nothing deletes from it.
const AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit");
const CRL: TableDefinition<&str, &[u8]> = TableDefinition::new("crl");
const IDENTITY: TableDefinition<&str, &str> = TableDefinition::new("identity");

/// The counters in `meta` that a store copy carries over.
const COUNTERS: [&str; 3] = ["revocation_epoch", "crl_number", "cert_seq"];

/// redb's page cache. Its default (a large share of memory) is not what a small service wants.
/// The working set is the trees' upper levels (at 1,000,000 certificates, a few MB): an
/// issuance's leaf pages are random and miss a cache of any size that fits. Measured at that
/// scale (BENCHMARKS.md, issue 16): 32 MiB against 64 MiB, enrollment and challenge minting
/// cost the same, and the server's peak RSS fell from 226 to 133 MB.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// The schema this build writes. Opening a newer one is refused rather than misread.
pub const SCHEMA_VERSION: u64 = 1;

/// One open redb file. [`super::RedbStore`] wraps it to reopen it after an I/O error.
pub struct RedbFile {
    pub(super) db: Database,
    path: std::path::PathBuf,
    /// Set by a commit made without fsync; cleared by [`Store::flush`].
    unflushed: AtomicBool,
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<CertRecord, StoreError> {
    decode(bytes)
}

pub(super) fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// [`encode`] for a value that holds a CRL of `crl_len` bytes (as base64): written into a
/// buffer of about its final size rather than one that doubles as it grows (a CRL of 100,000
/// entries is 5 MB; a doubling buffer briefly holds 12).
pub(super) fn encode_with_crl<T: serde::Serialize>(value: &T, crl_len: usize) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(crl_len.div_ceil(3) * 4 + 512);
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(out)
}

fn expiry_key(expires_at: u64, hash: &ChallengeHash) -> Vec<u8> {
    [&expires_at.to_be_bytes()[..], hash].concat()
}

/// Opens `path` for writing as a file of mode 0600, creating it (`new`: it must not exist yet);
/// an existing file that group or others could read is made private.
fn private_file(path: &Path, new: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(!new)
        .create_new(new)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Whether the certificate that superseded `record` has a vouched-for device id: only then may
/// `revoke_superseded_after` revoke `record`.
fn superseded_by_bound(txn: &redb::WriteTransaction, record: &CertRecord) -> Result<bool, StoreError> {
    let Some(successor) = &record.superseded_by else {
        return Ok(false);
    };
    Ok(get_record(txn, successor)?.is_some_and(|s| s.device_bound))
}

fn device_key(device: &str, serial: &[u8]) -> Vec<u8> {
    [device.as_bytes(), &[0u8], serial].concat()
}

impl RedbFile {
    /// Opens (or creates) the store file and checks its schema version.
    pub fn open(path: &Path) -> Result<RedbFile, StoreError> {
        // The store holds every certificate, challenge hash and the audit trail: only scepd's
        // user may read it, whatever the umask (redb would create it 0644).
        private_file(path, false).map_err(|source| StoreError::File {
            path: path.to_path_buf(),
            source,
        })?;
        Self::with_database(path, super::redb_open::open_database(path, CACHE_BYTES)?)
    }

    /// Opens the file again after an I/O error while serving. The start-up integrity check
    /// (which reads the whole file) is not repeated: the file verified when scepd started, and
    /// what an interrupted commit left is redb's own crash recovery's to roll back, as after a
    /// power cut.
    pub fn reopen(path: &Path) -> Result<RedbFile, StoreError> {
        Self::with_database(path, Database::builder().set_cache_size(CACHE_BYTES).create(path)?)
    }

    /// Checks the schema version and creates the tables of a freshly opened file.
    fn with_database(path: &Path, db: Database) -> Result<RedbFile, StoreError> {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| be_u64(v.value()));
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew {
                        found: v,
                        supported: SCHEMA_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
            }
            // Create every table up front so that readers never meet a missing one.
            txn.open_table(CERTS)?;
            txn.open_table(CERT_DER)?;
            txn.open_table(BY_TRANSACTION)?;
            txn.open_table(BY_DEVICE)?;
            txn.open_table(CHALLENGES)?;
            txn.open_table(CHALLENGES_BY_EXPIRY)?;
            txn.open_table(MDM_CLIENTS)?;
            txn.open_table(REVOKED)?;
            txn.open_table(SUPERSEDED)?;
            txn.open_table(AUDIT)?;
            txn.open_table(CRL)?;
            txn.open_table(IDENTITY)?;
            ca::create_tables(&txn)?;
            super::redb_outbox::create_tables(&txn)?;
            console_redb::create_tables(&txn)?;
        }
        txn.commit()?;
        Ok(RedbFile {
            db,
            path: path.to_path_buf(),
            unflushed: AtomicBool::new(false),
        })
    }
}

impl RedbFile {
    /// Writes `client` when a client of its name exists exactly when `existing` says.
    fn write_mdm_client(&self, client: &MdmClient, existing: bool) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let written = {
            let mut clients = txn.open_table(MDM_CLIENTS)?;
            let exists = clients.get(client.name.as_str())?.is_some();
            if exists == existing {
                clients.insert(client.name.as_str(), encode(client)?.as_slice())?;
            }
            exists == existing
        };
        if written {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(written)
    }
}

impl Store for RedbFile {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_txn = txn.open_table(BY_TRANSACTION)?;
        let Some(serial) = by_txn.get(transaction_id)? else {
            return Ok(None);
        };
        let certs = txn.open_table(CERTS)?;
        let record = certs.get(serial.value())?;
        record.map(|r| decode_record(r.value())).transpose()
    }

    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError> {
        let txn = self.db.begin_write()?;
        let outcomes = batch
            .iter()
            .map(|issuance| issuance::record_one(&mut RedbIssuance(&txn), issuance))
            .collect::<Result<Vec<_>, _>>()?;
        if outcomes.iter().any(|o| matches!(o, IssuanceOutcome::Stored { .. })) {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(outcomes)
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let certs = txn.open_table(CERTS)?;
        let Some(record) = certs.get(serial.as_bytes().as_slice())? else {
            return Ok(None);
        };
        let record = decode_record(record.value())?;
        let ders = txn.open_table(CERT_DER)?;
        let der = ders
            .get(serial.as_bytes().as_slice())?
            .map(|d| d.value().to_vec())
            .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
        Ok(Some((record, der)))
    }

    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let certs = txn.open_table(CERTS)?;
        let mut out = Vec::new();
        if let Some(device) = &filter.device_id {
            // An index range: the device's keys share the prefix `device ‖ 0x00`.
            let by_device = txn.open_table(BY_DEVICE)?;
            let start = device_key(device, &[]);
            let end = [device.as_bytes(), &[1u8]].concat();
            for entry in by_device.range(start.as_slice()..end.as_slice())? {
                let (key, _) = entry?;
                let serial = &key.value()[start.len()..];
                if let Some(r) = certs.get(serial)? {
                    out.push(decode_record(r.value())?);
                }
            }
        } else {
            for entry in certs.iter()? {
                let (_, r) = entry?;
                out.push(decode_record(r.value())?);
            }
        }
        let now = scepd_ca::time::unix_now();
        if let Some(status) = filter.status {
            out.retain(|r| r.status_at(now) == status);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        Ok(out)
    }

    fn insert_challenges(&self, batch: &[(ChallengeHash, ChallengeRecord)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut challenges = txn.open_table(CHALLENGES)?;
            let mut by_expiry = txn.open_table(CHALLENGES_BY_EXPIRY)?;
            for (hash, record) in batch {
                // A batch written again after a failure never overwrites a redeemed challenge.
                if challenges.get(hash.as_slice())?.is_some() {
                    continue;
                }
                challenges.insert(hash.as_slice(), encode(record)?.as_slice())?;
                by_expiry.insert(expiry_key(record.expires_at, hash).as_slice(), ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn challenge(&self, hash: &ChallengeHash) -> Result<Option<ChallengeRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let challenges = txn.open_table(CHALLENGES)?;
        let found = challenges.get(hash.as_slice())?;
        found.map(|r| decode(r.value())).transpose()
    }

    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut swept = 0;
        {
            let mut challenges = txn.open_table(CHALLENGES)?;
            let mut by_expiry = txn.open_table(CHALLENGES_BY_EXPIRY)?;
            let end = expiry_key(now, &[0u8; 32]);
            let expired: Vec<Vec<u8>> = by_expiry
                .range(..end.as_slice())?
                .map(|e| e.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()?;
            for key in expired {
                by_expiry.remove(key.as_slice())?;
                challenges.remove(&key[8..])?;
                swept += 1;
            }
        }
        txn.commit()?;
        Ok(swept)
    }

    fn challenge_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let challenges = txn.open_table(CHALLENGES)?;
        challenges.len().map_err(StoreError::from)
    }

    fn add_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.write_mdm_client(client, false)
    }

    fn replace_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.write_mdm_client(client, true)
    }

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError> {
        let txn = self.db.begin_read()?;
        let clients = txn.open_table(MDM_CLIENTS)?;
        let found = clients.get(name)?;
        found.map(|r| decode(r.value())).transpose()
    }

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError> {
        let txn = self.db.begin_read()?;
        let clients = txn.open_table(MDM_CLIENTS)?;
        let mut out = Vec::new();
        for entry in clients.iter()? {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(MDM_CLIENTS)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    fn revoke(&self, serial: &Serial, reason: Reason, at: u64) -> Result<RevokeOutcome, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = match get_record(&txn, serial)? {
            None => RevokeOutcome::NotFound,
            Some(r) if r.status == CertStatus::Revoked => RevokeOutcome::AlreadyRevoked(r),
            Some(_) => RevokeOutcome::Revoked(revoke_in(&txn, serial, reason, at)?),
        };
        if let RevokeOutcome::Revoked(record) = &outcome {
            super::redb_outbox::emit_in(&txn, &[Event::revoked(record, RevokedBy::Admin)], at)?;
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(outcome)
    }

    fn revoke_device(&self, device_id: &str, reason: Reason, at: u64) -> Result<Vec<Serial>, StoreError> {
        let txn = self.db.begin_write()?;
        let (mut revoked, mut events) = (Vec::new(), Vec::new());
        for serial in device_serials(&txn, device_id)? {
            if get_record(&txn, &serial)?.is_some_and(|r| r.status != CertStatus::Revoked) {
                let record = revoke_in(&txn, &serial, reason, at)?;
                events.push(Event::revoked(&record, RevokedBy::Admin));
                revoked.push(record.serial);
            }
        }
        super::redb_outbox::emit_in(&txn, &events, at)?;
        txn.commit()?;
        Ok(revoked)
    }

    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<Serial>, StoreError> {
        let txn = self.db.begin_write()?;
        let end = cutoff.to_be_bytes();
        let mut due = Vec::new();
        for entry in txn.open_table(SUPERSEDED)?.range(..end.as_slice())? {
            let key = entry?.0.value().to_vec();
            due.push((serial_from_key(&key[8..])?, key));
        }
        let (mut revoked, mut events) = (Vec::new(), Vec::new());
        for (serial, key) in due {
            let Some(record) = get_record(&txn, &serial)? else {
                continue;
            };
            if superseded_by_bound(&txn, &record)? {
                let record = revoke_in(&txn, &serial, Reason::SUPERSEDED, at)?;
                events.push(Event::revoked(&record, RevokedBy::Policy));
                revoked.push(record.serial);
            } else {
                // Superseded by an unbound request: never due (its successor stays unbound).
                txn.open_table(SUPERSEDED)?.remove(key.as_slice())?;
            }
        }
        super::redb_outbox::emit_in(&txn, &events, at)?;
        txn.commit()?;
        Ok(revoked)
    }

    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(REVOKED)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (serial, row) = entry?;
            out.push(revoked::decode(serial.value(), row.value())?);
        }
        Ok(out)
    }

    fn revocation_epoch(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let value = meta.get("revocation_epoch")?.map(|v| be_u64(v.value()));
        Ok(value.unwrap_or(0))
    }

    fn latest_crl(&self) -> Result<CrlState, StoreError> {
        let txn = self.db.begin_read()?;
        let last_number = counter(&txn.open_table(META)?, "crl_number")?;
        let published = txn
            .open_table(CRL)?
            .get("latest")?
            .map(|v| decode(v.value()))
            .transpose()?;
        Ok(CrlState { last_number, published })
    }

    fn publish_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        if counter(&txn.open_table(META)?, "crl_number")? + 1 != crl.number {
            txn.abort()?;
            return Ok(false);
        }
        bump(&txn, "crl_number")?;
        txn.open_table(CRL)?
            .insert("latest", encode_with_crl(crl, crl.der.len())?.as_slice())?;
        txn.commit()?;
        Ok(true)
    }

    fn bind_identity(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let txn = self.db.begin_write()?;
        let recorded = {
            let mut identity = txn.open_table(IDENTITY)?;
            let found = identity.get(name)?.map(|v| v.value().to_string());
            match found {
                Some(recorded) => recorded,
                None => {
                    identity.insert(name, value)?;
                    value.to_string()
                }
            }
        };
        txn.commit()?;
        Ok(recorded)
    }

    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError> {
        let txn = self.db.begin_read()?;
        let certs = txn.open_table(CERTS)?;
        let (mut active, mut soonest) = (0u64, None::<u64>);
        for entry in certs.iter()? {
            let (_, v) = entry?;
            let r = decode_record(v.value())?;
            if r.status_at(now) == CertStatus::Active {
                active += 1;
                soonest = Some(soonest.map_or(r.not_after, |s| s.min(r.not_after)));
            }
        }
        Ok((active, soonest))
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        {
            let mut audit = txn.open_table(AUDIT)?;
            let mut next = audit.last()?.map(|(k, _)| be_u64(k.value())).unwrap_or(0);
            for entry in entries {
                next += 1;
                let row = AuditEntry {
                    seq: next,
                    ..entry.clone()
                };
                audit.insert(next.to_be_bytes().as_slice(), encode(&row)?.as_slice())?;
            }
        }
        txn.commit()?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db.begin_read()?;
        let audit = txn.open_table(AUDIT)?;
        // Nothing comes after the last possible number (and `after + 1` would wrap to the start).
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let start = start.to_be_bytes();
        let mut out = Vec::new();
        for entry in audit.range(start.as_slice()..)?.take(limit) {
            let (_, v) = entry?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        txn.commit()?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        // Make everything durable, then copy the file while holding the write lock: no commit
        // can change it under the copy, and readers are not held up.
        self.unflushed.store(true, Ordering::Release);
        self.flush()?;
        let txn = self.db.begin_write()?;
        let copied = std::fs::File::open(&self.path)
            .and_then(|mut from| {
                let mut to = private_file(out, true)?;
                std::io::copy(&mut from, &mut to)?;
                to.sync_all()
            })
            .map_err(|source| StoreError::File {
                path: out.to_path_buf(),
                source,
            });
        txn.abort()?;
        copied
    }

    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let ders = txn.open_table(CERT_DER)?;
        for entry in txn.open_table(CERTS)?.iter()? {
            let (serial, record) = entry?;
            let der = ders
                .get(serial.value())?
                .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
            sink(StoreItem::Certificate(
                decode_record(record.value())?,
                der.value().to_vec(),
            ))?;
        }
        for entry in txn.open_table(CHALLENGES)?.iter()? {
            let (hash, record) = entry?;
            let hash = hash
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("challenge key".into()))?;
            sink(StoreItem::Challenge(hash, decode(record.value())?))?;
        }
        for entry in txn.open_table(MDM_CLIENTS)?.iter()? {
            sink(StoreItem::MdmClient(decode(entry?.1.value())?))?;
        }
        for entry in txn.open_table(AUDIT)?.iter()? {
            sink(StoreItem::Audit(decode(entry?.1.value())?))?;
        }
        let meta = txn.open_table(META)?;
        for name in COUNTERS {
            sink(StoreItem::Counter(name.into(), counter(&meta, name)?))?;
        }
        if let Some(crl) = txn.open_table(CRL)?.get("latest")? {
            sink(StoreItem::Crl(decode(crl.value())?))?;
        }
        for entry in txn.open_table(IDENTITY)?.iter()? {
            let (name, value) = entry?;
            sink(StoreItem::Identity(name.value().into(), value.value().into()))?;
        }
        ca::export(&txn, sink)?;
        super::redb_outbox::export(&txn, sink)?;
        console_redb::export(&txn, sink)?;
        Ok(())
    }

    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        for item in items {
            match item {
                StoreItem::Certificate(record, der) => insert_certificate(&txn, record, der)?,
                StoreItem::Challenge(hash, record) => {
                    txn.open_table(CHALLENGES)?
                        .insert(hash.as_slice(), encode(record)?.as_slice())?;
                    txn.open_table(CHALLENGES_BY_EXPIRY)?
                        .insert(expiry_key(record.expires_at, hash).as_slice(), ())?;
                }
                StoreItem::MdmClient(client) => {
                    txn.open_table(MDM_CLIENTS)?
                        .insert(client.name.as_str(), encode(client)?.as_slice())?;
                }
                StoreItem::Audit(entry) => {
                    txn.open_table(AUDIT)?
                        .insert(entry.seq.to_be_bytes().as_slice(), encode(entry)?.as_slice())?;
                }
                // The audit trail's next number follows from its last entry here.
                StoreItem::Counter(name, _) if name == "audit_seq" => {}
                StoreItem::Counter(name, value) => {
                    txn.open_table(META)?
                        .insert(name.as_str(), value.to_be_bytes().as_slice())?;
                }
                StoreItem::Crl(crl) => {
                    txn.open_table(CRL)?
                        .insert("latest", encode_with_crl(crl, crl.der.len())?.as_slice())?;
                }
                StoreItem::Identity(name, value) => {
                    txn.open_table(IDENTITY)?.insert(name.as_str(), value.as_str())?;
                }
                StoreItem::CaGeneration(_) | StoreItem::IssuerCrl(_) => ca::import(&txn, item)?,
                StoreItem::WebhookEndpoint(_) | StoreItem::WebhookDelivery(_) | StoreItem::Announced(..) => {
                    super::redb_outbox::import(&txn, item)?
                }
                StoreItem::ConsoleAccount(account) => console_redb::import(&txn, account)?,
            }
        }
        txn.commit().map_err(StoreError::from)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(CERTS)?.is_empty()?
            && txn.open_table(CHALLENGES)?.is_empty()?
            && txn.open_table(MDM_CLIENTS)?.is_empty()?
            && txn.open_table(AUDIT)?.is_empty()?
            && txn.open_table(CRL)?.is_empty()?)
    }

    fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn console(&self) -> &dyn super::console::ConsoleStore {
        self
    }

    fn flush(&self) -> Result<(), StoreError> {
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // An empty durable commit persists every earlier non-durable one.
        let txn = self.db.begin_write()?;
        txn.commit().map_err(|e| {
            self.unflushed.store(true, Ordering::Release);
            StoreError::from(e)
        })
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

fn counter(meta: &impl ReadableTable<&'static str, &'static [u8]>, key: &str) -> Result<u64, StoreError> {
    Ok(meta.get(key)?.map(|v| be_u64(v.value())).unwrap_or(0))
}

/// Increments a counter in `meta` and returns its new value.
pub(super) fn bump(txn: &redb::WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(key)?.map(|v| be_u64(v.value())).unwrap_or(0) + 1;
    meta.insert(key, next.to_be_bytes().as_slice())?;
    Ok(next)
}

fn get_record(txn: &redb::WriteTransaction, serial: &Serial) -> Result<Option<CertRecord>, StoreError> {
    let certs = txn.open_table(CERTS)?;
    let found = certs.get(serial.as_bytes().as_slice())?;
    found.map(|r| decode_record(r.value())).transpose()
}

fn put_record(txn: &redb::WriteTransaction, record: &CertRecord) -> Result<(), StoreError> {
    txn.open_table(CERTS)?
        .insert(record.serial.as_bytes().as_slice(), encode(record)?.as_slice())?;
    Ok(())
}

/// The key of the `superseded` index.
fn superseded_key(at: u64, serial: &Serial) -> Vec<u8> {
    [&at.to_be_bytes()[..], serial.as_bytes()].concat()
}

fn device_serials(txn: &redb::WriteTransaction, device: &str) -> Result<Vec<Serial>, StoreError> {
    let start = device_key(device, &[]);
    let end = [device.as_bytes(), &[1u8]].concat();
    let by_device = txn.open_table(BY_DEVICE)?;
    let mut serials = Vec::new();
    for entry in by_device.range(start.as_slice()..end.as_slice())? {
        let key = entry?.0;
        serials.push(serial_from_key(&key.value()[start.len()..])?);
    }
    Ok(serials)
}

fn serial_from_key(bytes: &[u8]) -> Result<Serial, StoreError> {
    Serial::try_from(bytes).map_err(|e| StoreError::Corrupt(format!("serial key: {e}")))
}

/// Revokes one certificate inside `txn` (the caller checked it exists and is not revoked).
fn revoke_in(txn: &redb::WriteTransaction, serial: &Serial, reason: Reason, at: u64) -> Result<CertRecord, StoreError> {
    let mut record =
        get_record(txn, serial)?.ok_or_else(|| StoreError::Corrupt("revoking a missing certificate".into()))?;
    if let (CertStatus::Superseded, Some(when)) = (record.status, record.superseded_at) {
        txn.open_table(SUPERSEDED)?
            .remove(superseded_key(when, serial).as_slice())?;
    }
    record.status = CertStatus::Revoked;
    record.revoked_at = Some(at);
    record.revocation_reason = Some(reason);
    put_record(txn, &record)?;
    let row = RevokedRow::new(*serial, at, reason, record.not_after, record.issuer)?;
    txn.open_table(REVOKED)?
        .insert(serial.as_bytes().as_slice(), revoked::encode(&row).as_slice())?;
    bump(txn, "revocation_epoch")?;
    Ok(record)
}

/// The issuance policy's reads and writes, on one redb write transaction.
struct RedbIssuance<'t>(&'t redb::WriteTransaction);

impl IssuanceTx for RedbIssuance<'_> {
    type Error = StoreError;

    fn by_transaction(&mut self, transaction_id: &str) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        let Some(serial) = self
            .0
            .open_table(BY_TRANSACTION)?
            .get(transaction_id)?
            .map(|s| serial_from_key(s.value()))
        else {
            return Ok(None);
        };
        let serial = serial?;
        let record = get_record(self.0, &serial)?
            .ok_or_else(|| StoreError::Corrupt("transaction index points nowhere".into()))?;
        let der = self
            .0
            .open_table(CERT_DER)?
            .get(serial.as_bytes().as_slice())?
            .map(|d| d.value().to_vec())
            .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
        Ok(Some((record, der)))
    }

    fn serial_taken(&mut self, serial: &Serial) -> Result<bool, StoreError> {
        Ok(self.0.open_table(CERTS)?.get(serial.as_bytes().as_slice())?.is_some())
    }

    fn redeem(&mut self, hash: &ChallengeHash, now: u64) -> Result<bool, StoreError> {
        let mut challenges = self.0.open_table(CHALLENGES)?;
        let Some(mut record) = challenges
            .get(hash.as_slice())?
            .map(|r| decode::<ChallengeRecord>(r.value()))
            .transpose()?
        else {
            return Ok(false);
        };
        if record.state_at(now) != ChallengeState::Usable {
            return Ok(false);
        }
        record.redeemed_at = Some(now);
        challenges.insert(hash.as_slice(), encode(&record)?.as_slice())?;
        Ok(true)
    }

    fn device_certificates(&mut self, device: &str, _now: u64) -> Result<Vec<CertRecord>, StoreError> {
        let mut records = Vec::new();
        for serial in device_serials(self.0, device)? {
            records.extend(get_record(self.0, &serial)?);
        }
        Ok(records)
    }

    fn supersede(&mut self, serial: &Serial, by: &Serial, at: u64) -> Result<(), StoreError> {
        let mut record = get_record(self.0, serial)?
            .ok_or_else(|| StoreError::Corrupt("superseding a missing certificate".into()))?;
        record.status = CertStatus::Superseded;
        record.superseded_by = Some(*by);
        record.superseded_at = Some(at);
        put_record(self.0, &record)?;
        self.0
            .open_table(SUPERSEDED)?
            .insert(superseded_key(at, serial).as_slice(), ())?;
        Ok(())
    }

    fn revoke(&mut self, serial: &Serial, reason: Reason, at: u64) -> Result<(), StoreError> {
        revoke_in(self.0, serial, reason, at).map(drop)
    }

    fn insert_new(&mut self, record: &CertRecord, der: &[u8]) -> Result<(), StoreError> {
        let record = CertRecord {
            seq: bump(self.0, "cert_seq")?,
            ..record.clone()
        };
        insert_certificate(self.0, &record, der)
    }

    fn emit(&mut self, events: &[Event], now: u64) -> Result<(), StoreError> {
        super::redb_outbox::emit_in(self.0, events, now)
    }
}

/// Writes a certificate and its index entries (a new one, or one copied from another store).
fn insert_certificate(txn: &redb::WriteTransaction, record: &CertRecord, der: &[u8]) -> Result<(), StoreError> {
    let serial = record.serial.as_bytes();
    put_record(txn, record)?;
    txn.open_table(CERT_DER)?.insert(serial.as_slice(), der)?;
    txn.open_table(BY_TRANSACTION)?
        .insert(record.transaction_id.as_str(), serial.as_slice())?;
    if let Some(device) = &record.device_id {
        txn.open_table(BY_DEVICE)?
            .insert(device_key(device, serial).as_slice(), ())?;
    }
    match (record.status, record.superseded_at, record.revoked_at) {
        (CertStatus::Superseded, Some(when), _) => {
            txn.open_table(SUPERSEDED)?
                .insert(superseded_key(when, &record.serial).as_slice(), ())?;
        }
        (CertStatus::Revoked, _, Some(at)) => {
            let reason = record.revocation_reason.unwrap_or(Reason::UNSPECIFIED);
            let row = RevokedRow::new(record.serial, at, reason, record.not_after, record.issuer)?;
            txn.open_table(REVOKED)?
                .insert(serial.as_slice(), revoked::encode(&row).as_slice())?;
        }
        _ => {}
    }
    Ok(())
}
