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
//! - `revoked`: serial → JSON [`RevokedRow`] (the CRL's source: no scan of all certificates).
//! - `superseded`: superseded_at (big-endian) ‖ serial → () (for `revoke_superseded_after`).
//! - `meta` also holds `crl_number`, `revocation_epoch` and `cert_seq`.
//! - `crl`: `latest` → JSON [`StoredCrl`] (the newest CRL published).
//! - `identity`: name → value (see [`Store::bind_identity`]).
//!
//! Every write is one redb transaction with immediate durability (fsync before commit returns),
//! except minting a challenge (see [`Store::insert_challenge`]).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use scepd_ca::Serial;

use super::{
    AuditEntry, CertFilter, CertRecord, CertStatus, ChallengeHash, ChallengeRecord, ChallengeState, CrlState, Issuance,
    IssuanceOutcome, MdmClient, RevokeOutcome, RevokedRow, Store, StoreError, StoreItem, StoredCrl, Supersede,
};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
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

/// redb's page cache. Its default (a large share of memory) is not what a small service wants;
/// the working set (indexes, recent challenges) fits well within this.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// The schema this build writes. Opening a newer one is refused rather than misread.
pub const SCHEMA_VERSION: u64 = 1;

pub struct RedbStore {
    db: Database,
    path: std::path::PathBuf,
    /// Set by a commit made without fsync; cleared by [`Store::flush`].
    unflushed: AtomicBool,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode_record(bytes: &[u8]) -> Result<CertRecord, StoreError> {
    decode(bytes)
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
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

fn device_key(device: &str, serial: &[u8]) -> Vec<u8> {
    [device.as_bytes(), &[0u8], serial].concat()
}

impl RedbStore {
    /// Opens (or creates) the store file and checks its schema version.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        // The store holds every certificate, challenge hash and the audit trail: only scepd's
        // user may read it, whatever the umask (redb would create it 0644).
        private_file(path, false).map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let found = meta.get("schema_version").map_err(backend)?.map(|v| be_u64(v.value()));
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew {
                        found: v,
                        supported: SCHEMA_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())
                        .map_err(backend)?;
                }
            }
            // Create every table up front so that readers never meet a missing one.
            txn.open_table(CERTS).map_err(backend)?;
            txn.open_table(CERT_DER).map_err(backend)?;
            txn.open_table(BY_TRANSACTION).map_err(backend)?;
            txn.open_table(BY_DEVICE).map_err(backend)?;
            txn.open_table(CHALLENGES).map_err(backend)?;
            txn.open_table(CHALLENGES_BY_EXPIRY).map_err(backend)?;
            txn.open_table(MDM_CLIENTS).map_err(backend)?;
            txn.open_table(REVOKED).map_err(backend)?;
            txn.open_table(SUPERSEDED).map_err(backend)?;
            txn.open_table(AUDIT).map_err(backend)?;
            txn.open_table(CRL).map_err(backend)?;
            txn.open_table(IDENTITY).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore {
            db,
            path: path.to_path_buf(),
            unflushed: AtomicBool::new(false),
        })
    }
}

impl Store for RedbStore {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let by_txn = txn.open_table(BY_TRANSACTION).map_err(backend)?;
        let Some(serial) = by_txn.get(transaction_id).map_err(backend)? else {
            return Ok(None);
        };
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let record = certs.get(serial.value()).map_err(backend)?;
        record.map(|r| decode_record(r.value())).transpose()
    }

    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let outcomes = batch
            .iter()
            .map(|issuance| record_one(&txn, issuance))
            .collect::<Result<Vec<_>, _>>()?;
        if outcomes.iter().any(|o| matches!(o, IssuanceOutcome::Stored { .. })) {
            txn.commit().map_err(backend)?;
        } else {
            txn.abort().map_err(backend)?;
        }
        Ok(outcomes)
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let Some(record) = certs.get(serial.0.as_slice()).map_err(backend)? else {
            return Ok(None);
        };
        let record = decode_record(record.value())?;
        let ders = txn.open_table(CERT_DER).map_err(backend)?;
        let der = ders
            .get(serial.0.as_slice())
            .map_err(backend)?
            .map(|d| d.value().to_vec())
            .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
        Ok(Some((record, der)))
    }

    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let mut out = Vec::new();
        if let Some(device) = &filter.device_id {
            // An index range: the device's keys share the prefix `device ‖ 0x00`.
            let by_device = txn.open_table(BY_DEVICE).map_err(backend)?;
            let start = device_key(device, &[]);
            let end = [device.as_bytes(), &[1u8]].concat();
            for entry in by_device.range(start.as_slice()..end.as_slice()).map_err(backend)? {
                let (key, _) = entry.map_err(backend)?;
                let serial = &key.value()[start.len()..];
                if let Some(r) = certs.get(serial).map_err(backend)? {
                    out.push(decode_record(r.value())?);
                }
            }
        } else {
            for entry in certs.iter().map_err(backend)? {
                let (_, r) = entry.map_err(backend)?;
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
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        {
            let mut challenges = txn.open_table(CHALLENGES).map_err(backend)?;
            let mut by_expiry = txn.open_table(CHALLENGES_BY_EXPIRY).map_err(backend)?;
            for (hash, record) in batch {
                challenges
                    .insert(hash.as_slice(), encode(record)?.as_slice())
                    .map_err(backend)?;
                by_expiry
                    .insert(expiry_key(record.expires_at, hash).as_slice(), ())
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    fn challenge(&self, hash: &ChallengeHash) -> Result<Option<ChallengeRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let challenges = txn.open_table(CHALLENGES).map_err(backend)?;
        let found = challenges.get(hash.as_slice()).map_err(backend)?;
        found.map(|r| decode(r.value())).transpose()
    }

    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut swept = 0;
        {
            let mut challenges = txn.open_table(CHALLENGES).map_err(backend)?;
            let mut by_expiry = txn.open_table(CHALLENGES_BY_EXPIRY).map_err(backend)?;
            let end = expiry_key(now, &[0u8; 32]);
            let expired: Vec<Vec<u8>> = by_expiry
                .range(..end.as_slice())
                .map_err(backend)?
                .map(|e| e.map(|(k, _)| k.value().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            for key in expired {
                by_expiry.remove(key.as_slice()).map_err(backend)?;
                challenges.remove(&key[8..]).map_err(backend)?;
                swept += 1;
            }
        }
        txn.commit().map_err(backend)?;
        Ok(swept)
    }

    fn challenge_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let challenges = txn.open_table(CHALLENGES).map_err(backend)?;
        challenges.len().map_err(backend)
    }

    fn put_mdm_client(&self, client: &MdmClient) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        txn.open_table(MDM_CLIENTS)
            .map_err(backend)?
            .insert(client.name.as_str(), encode(client)?.as_slice())
            .map_err(backend)?;
        txn.commit().map_err(backend)
    }

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let clients = txn.open_table(MDM_CLIENTS).map_err(backend)?;
        let found = clients.get(name).map_err(backend)?;
        found.map(|r| decode(r.value())).transpose()
    }

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let clients = txn.open_table(MDM_CLIENTS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in clients.iter().map_err(backend)? {
            let (_, v) = entry.map_err(backend)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let existed = txn
            .open_table(MDM_CLIENTS)
            .map_err(backend)?
            .remove(name)
            .map_err(backend)?
            .is_some();
        txn.commit().map_err(backend)?;
        Ok(existed)
    }

    fn revoke(&self, serial: &Serial, reason: &str, at: u64) -> Result<RevokeOutcome, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let outcome = match get_record(&txn, &serial.0)? {
            None => RevokeOutcome::NotFound,
            Some(r) if r.status == CertStatus::Revoked => RevokeOutcome::AlreadyRevoked(r),
            Some(_) => RevokeOutcome::Revoked(revoke_in(&txn, &serial.0, reason, at)?),
        };
        if matches!(outcome, RevokeOutcome::Revoked(_)) {
            txn.commit().map_err(backend)?;
        } else {
            txn.abort().map_err(backend)?;
        }
        Ok(outcome)
    }

    fn revoke_device(&self, device_id: &str, reason: &str, at: u64) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut revoked = Vec::new();
        for serial in device_serials(&txn, device_id)? {
            if get_record(&txn, &serial)?.is_some_and(|r| r.status != CertStatus::Revoked) {
                revoked.push(revoke_in(&txn, &serial, reason, at)?.serial);
            }
        }
        txn.commit().map_err(backend)?;
        Ok(revoked)
    }

    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let end = cutoff.to_be_bytes();
        let due: Vec<Vec<u8>> = txn
            .open_table(SUPERSEDED)
            .map_err(backend)?
            .range(..end.as_slice())
            .map_err(backend)?
            .map(|e| e.map(|(k, _)| k.value().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(backend)?;
        let mut revoked = Vec::new();
        for key in due {
            let serial = &key[8..];
            let Some(record) = get_record(&txn, serial)? else {
                continue;
            };
            if superseded_by_bound(&txn, &record)? {
                revoked.push(revoke_in(&txn, serial, "superseded", at)?.serial);
            } else {
                // Superseded by an unbound request: never due (its successor stays unbound).
                txn.open_table(SUPERSEDED)
                    .map_err(backend)?
                    .remove(key.as_slice())
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        Ok(revoked)
    }

    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(REVOKED).map_err(backend)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(backend)? {
            let (_, v) = entry.map_err(backend)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn revocation_epoch(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let value = meta
            .get("revocation_epoch")
            .map_err(backend)?
            .map(|v| be_u64(v.value()));
        Ok(value.unwrap_or(0))
    }

    fn latest_crl(&self) -> Result<CrlState, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let last_number = counter(&txn.open_table(META).map_err(backend)?, "crl_number")?;
        let published = txn
            .open_table(CRL)
            .map_err(backend)?
            .get("latest")
            .map_err(backend)?
            .map(|v| decode(v.value()))
            .transpose()?;
        Ok(CrlState { last_number, published })
    }

    fn publish_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        if counter(&txn.open_table(META).map_err(backend)?, "crl_number")? + 1 != crl.number {
            txn.abort().map_err(backend)?;
            return Ok(false);
        }
        bump(&txn, "crl_number")?;
        txn.open_table(CRL)
            .map_err(backend)?
            .insert("latest", encode(crl)?.as_slice())
            .map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(true)
    }

    fn bind_identity(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let recorded = {
            let mut identity = txn.open_table(IDENTITY).map_err(backend)?;
            let found = identity.get(name).map_err(backend)?.map(|v| v.value().to_string());
            match found {
                Some(recorded) => recorded,
                None => {
                    identity.insert(name, value).map_err(backend)?;
                    value.to_string()
                }
            }
        };
        txn.commit().map_err(backend)?;
        Ok(recorded)
    }

    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let (mut active, mut soonest) = (0u64, None::<u64>);
        for entry in certs.iter().map_err(backend)? {
            let (_, v) = entry.map_err(backend)?;
            let r = decode_record(v.value())?;
            if r.status_at(now) == CertStatus::Active {
                active += 1;
                soonest = Some(soonest.map_or(r.not_after, |s| s.min(r.not_after)));
            }
        }
        Ok((active, soonest))
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        {
            let mut audit = txn.open_table(AUDIT).map_err(backend)?;
            let mut next = audit
                .last()
                .map_err(backend)?
                .map(|(k, _)| be_u64(k.value()))
                .unwrap_or(0);
            for entry in entries {
                next += 1;
                let row = AuditEntry {
                    seq: next,
                    ..entry.clone()
                };
                audit
                    .insert(next.to_be_bytes().as_slice(), encode(&row)?.as_slice())
                    .map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let audit = txn.open_table(AUDIT).map_err(backend)?;
        // Nothing comes after the last possible number (and `after + 1` would wrap to the start).
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let start = start.to_be_bytes();
        let mut out = Vec::new();
        for entry in audit.range(start.as_slice()..).map_err(backend)?.take(limit) {
            let (_, v) = entry.map_err(backend)?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::None).map_err(backend)?;
        txn.commit().map_err(backend)?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        // Make everything durable, then copy the file while holding the write lock: no commit
        // can change it under the copy, and readers are not held up.
        self.unflushed.store(true, Ordering::Release);
        self.flush()?;
        let txn = self.db.begin_write().map_err(backend)?;
        let copied = std::fs::File::open(&self.path)
            .and_then(|mut from| {
                let mut to = private_file(out, true)?;
                std::io::copy(&mut from, &mut to)?;
                to.sync_all()
            })
            .map_err(|e| StoreError::Backend(format!("{}: {e}", out.display())));
        txn.abort().map_err(backend)?;
        copied
    }

    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let ders = txn.open_table(CERT_DER).map_err(backend)?;
        for entry in txn.open_table(CERTS).map_err(backend)?.iter().map_err(backend)? {
            let (serial, record) = entry.map_err(backend)?;
            let der = ders
                .get(serial.value())
                .map_err(backend)?
                .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
            sink(StoreItem::Certificate(
                decode_record(record.value())?,
                der.value().to_vec(),
            ))?;
        }
        for entry in txn.open_table(CHALLENGES).map_err(backend)?.iter().map_err(backend)? {
            let (hash, record) = entry.map_err(backend)?;
            let hash = hash
                .value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("challenge key".into()))?;
            sink(StoreItem::Challenge(hash, decode(record.value())?))?;
        }
        for entry in txn.open_table(MDM_CLIENTS).map_err(backend)?.iter().map_err(backend)? {
            sink(StoreItem::MdmClient(decode(entry.map_err(backend)?.1.value())?))?;
        }
        for entry in txn.open_table(AUDIT).map_err(backend)?.iter().map_err(backend)? {
            sink(StoreItem::Audit(decode(entry.map_err(backend)?.1.value())?))?;
        }
        let meta = txn.open_table(META).map_err(backend)?;
        for name in COUNTERS {
            sink(StoreItem::Counter(name.into(), counter(&meta, name)?))?;
        }
        if let Some(crl) = txn.open_table(CRL).map_err(backend)?.get("latest").map_err(backend)? {
            sink(StoreItem::Crl(decode(crl.value())?))?;
        }
        for entry in txn.open_table(IDENTITY).map_err(backend)?.iter().map_err(backend)? {
            let (name, value) = entry.map_err(backend)?;
            sink(StoreItem::Identity(name.value().into(), value.value().into()))?;
        }
        Ok(())
    }

    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        for item in items {
            match item {
                StoreItem::Certificate(record, der) => insert_certificate(&txn, record, der)?,
                StoreItem::Challenge(hash, record) => {
                    txn.open_table(CHALLENGES)
                        .map_err(backend)?
                        .insert(hash.as_slice(), encode(record)?.as_slice())
                        .map_err(backend)?;
                    txn.open_table(CHALLENGES_BY_EXPIRY)
                        .map_err(backend)?
                        .insert(expiry_key(record.expires_at, hash).as_slice(), ())
                        .map_err(backend)?;
                }
                StoreItem::MdmClient(client) => {
                    txn.open_table(MDM_CLIENTS)
                        .map_err(backend)?
                        .insert(client.name.as_str(), encode(client)?.as_slice())
                        .map_err(backend)?;
                }
                StoreItem::Audit(entry) => {
                    txn.open_table(AUDIT)
                        .map_err(backend)?
                        .insert(entry.seq.to_be_bytes().as_slice(), encode(entry)?.as_slice())
                        .map_err(backend)?;
                }
                // The audit trail's next number follows from its last entry here.
                StoreItem::Counter(name, _) if name == "audit_seq" => {}
                StoreItem::Counter(name, value) => {
                    txn.open_table(META)
                        .map_err(backend)?
                        .insert(name.as_str(), value.to_be_bytes().as_slice())
                        .map_err(backend)?;
                }
                StoreItem::Crl(crl) => {
                    txn.open_table(CRL)
                        .map_err(backend)?
                        .insert("latest", encode(crl)?.as_slice())
                        .map_err(backend)?;
                }
                StoreItem::Identity(name, value) => {
                    txn.open_table(IDENTITY)
                        .map_err(backend)?
                        .insert(name.as_str(), value.as_str())
                        .map_err(backend)?;
                }
            }
        }
        txn.commit().map_err(backend)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        Ok(txn.open_table(CERTS).map_err(backend)?.is_empty().map_err(backend)?
            && txn
                .open_table(CHALLENGES)
                .map_err(backend)?
                .is_empty()
                .map_err(backend)?
            && txn
                .open_table(MDM_CLIENTS)
                .map_err(backend)?
                .is_empty()
                .map_err(backend)?
            && txn.open_table(AUDIT).map_err(backend)?.is_empty().map_err(backend)?
            && txn.open_table(CRL).map_err(backend)?.is_empty().map_err(backend)?)
    }

    fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    fn flush(&self) -> Result<(), StoreError> {
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // An empty durable commit persists every earlier non-durable one.
        let txn = self.db.begin_write().map_err(backend)?;
        txn.commit().map_err(|e| {
            self.unflushed.store(true, Ordering::Release);
            backend(e)
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
    Ok(meta.get(key).map_err(backend)?.map(|v| be_u64(v.value())).unwrap_or(0))
}

/// Increments a counter in `meta` and returns its new value.
fn bump(txn: &redb::WriteTransaction, key: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let next = meta.get(key).map_err(backend)?.map(|v| be_u64(v.value())).unwrap_or(0) + 1;
    meta.insert(key, next.to_be_bytes().as_slice()).map_err(backend)?;
    Ok(next)
}

fn get_record(txn: &redb::WriteTransaction, serial: &[u8]) -> Result<Option<CertRecord>, StoreError> {
    let certs = txn.open_table(CERTS).map_err(backend)?;
    let found = certs.get(serial).map_err(backend)?;
    found.map(|r| decode_record(r.value())).transpose()
}

fn put_record(txn: &redb::WriteTransaction, serial: &[u8], record: &CertRecord) -> Result<(), StoreError> {
    txn.open_table(CERTS)
        .map_err(backend)?
        .insert(serial, encode(record)?.as_slice())
        .map_err(backend)?;
    Ok(())
}

fn device_serials(txn: &redb::WriteTransaction, device: &str) -> Result<Vec<Vec<u8>>, StoreError> {
    let start = device_key(device, &[]);
    let end = [device.as_bytes(), &[1u8]].concat();
    let by_device = txn.open_table(BY_DEVICE).map_err(backend)?;
    let keys = by_device
        .range(start.as_slice()..end.as_slice())
        .map_err(backend)?
        .map(|e| e.map(|(k, _)| k.value()[start.len()..].to_vec()))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    Ok(keys)
}

/// Revokes one certificate inside `txn` (the caller checked it exists and is not revoked).
fn revoke_in(txn: &redb::WriteTransaction, serial: &[u8], reason: &str, at: u64) -> Result<CertRecord, StoreError> {
    let mut record =
        get_record(txn, serial)?.ok_or_else(|| StoreError::Corrupt("revoking a missing certificate".into()))?;
    if let (CertStatus::Superseded, Some(when)) = (record.status, record.superseded_at) {
        txn.open_table(SUPERSEDED)
            .map_err(backend)?
            .remove([&when.to_be_bytes()[..], serial].concat().as_slice())
            .map_err(backend)?;
    }
    record.status = CertStatus::Revoked;
    record.revoked_at = Some(at);
    record.revocation_reason = Some(reason.to_string());
    put_record(txn, serial, &record)?;
    let row = RevokedRow {
        serial: record.serial.clone(),
        revoked_at: at,
        reason: reason.to_string(),
        not_after: record.not_after,
    };
    txn.open_table(REVOKED)
        .map_err(backend)?
        .insert(serial, encode(&row)?.as_slice())
        .map_err(backend)?;
    bump(txn, "revocation_epoch")?;
    Ok(record)
}

/// Applies the issuance's [`Supersede`] to the device's earlier certificates: marks them
/// superseded by the one being issued and, for a vouched-for device id, enforces
/// `max_valid` by revoking the oldest valid ones.
fn supersede_device(
    txn: &redb::WriteTransaction,
    device: &str,
    issuance: &Issuance,
    now: u64,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let mut superseded = Vec::new();
    let mut valid = Vec::new();
    if issuance.supersede == Supersede::Nothing {
        return Ok((Vec::new(), Vec::new()));
    }
    for serial in device_serials(txn, device)? {
        let Some(mut record) = get_record(txn, &serial)? else {
            continue;
        };
        let targeted = match &issuance.supersede {
            Supersede::Only(only) => record.serial.eq_ignore_ascii_case(only),
            _ => true,
        };
        if targeted && record.status == CertStatus::Active && record.not_after > now {
            record.status = CertStatus::Superseded;
            record.superseded_by = Some(issuance.record.serial.clone());
            record.superseded_at = Some(now);
            put_record(txn, &serial, &record)?;
            txn.open_table(SUPERSEDED)
                .map_err(backend)?
                .insert([&now.to_be_bytes()[..], &serial].concat().as_slice(), ())
                .map_err(backend)?;
            superseded.push(record.serial.clone());
        }
        if matches!(record.status, CertStatus::Active | CertStatus::Superseded) && record.not_after > now {
            valid.push((record.seq, serial));
        }
    }
    let mut revoked = Vec::new();
    if let Supersede::Device { max_valid: Some(max) } = issuance.supersede {
        // The new certificate counts as one of the `max`.
        let keep = (max as usize).saturating_sub(1);
        valid.sort();
        let excess = valid.len().saturating_sub(keep);
        for (_, serial) in valid.into_iter().take(excess) {
            revoked.push(revoke_in(txn, &serial, "superseded", now)?.serial);
        }
    }
    Ok((superseded, revoked))
}

/// Whether the certificate that superseded `record` has a vouched-for device id: only then may
/// `revoke_superseded_after` revoke `record`.
fn superseded_by_bound(txn: &redb::WriteTransaction, record: &CertRecord) -> Result<bool, StoreError> {
    let Some(successor) = record.superseded_by.as_deref().and_then(|s| hex::decode(s).ok()) else {
        return Ok(false);
    };
    Ok(get_record(txn, &successor)?.is_some_and(|s| s.device_bound))
}

/// One issuance inside `txn`; only the `Stored` outcome writes anything.
fn record_one(txn: &redb::WriteTransaction, issuance: &Issuance) -> Result<IssuanceOutcome, StoreError> {
    let serial = issuance.serial.0;
    let existing = txn
        .open_table(BY_TRANSACTION)
        .map_err(backend)?
        .get(issuance.record.transaction_id.as_str())
        .map_err(backend)?
        .map(|s| s.value().to_vec());
    let outcome = if let Some(existing_serial) = existing {
        let record = get_record(txn, &existing_serial)?
            .ok_or_else(|| StoreError::Corrupt("transaction index points nowhere".into()))?;
        if record.csr_sha256 != issuance.record.csr_sha256 {
            IssuanceOutcome::TransactionConflict
        } else {
            let der = txn
                .open_table(CERT_DER)
                .map_err(backend)?
                .get(existing_serial.as_slice())
                .map_err(backend)?
                .map(|d| d.value().to_vec())
                .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
            IssuanceOutcome::AlreadyIssued(record, der)
        }
    } else if get_record(txn, &serial)?.is_some() {
        IssuanceOutcome::SerialTaken
    } else if !issuance
        .redeems
        .as_ref()
        .map(|h| redeem(txn, h))
        .transpose()?
        .unwrap_or(true)
    {
        IssuanceOutcome::ChallengeUnavailable
    } else {
        let now = issuance.record.issued_at;
        let (superseded, revoked) = match &issuance.record.device_id {
            Some(device) => supersede_device(txn, device, issuance, now)?,
            None => (Vec::new(), Vec::new()),
        };
        let mut record = issuance.record.clone();
        record.seq = bump(txn, "cert_seq")?;
        insert_certificate(txn, &record, &issuance.der)?;
        IssuanceOutcome::Stored { superseded, revoked }
    };
    Ok(outcome)
}

/// Writes a certificate and its index entries (a new one, or one copied from another store).
fn insert_certificate(txn: &redb::WriteTransaction, record: &CertRecord, der: &[u8]) -> Result<(), StoreError> {
    let serial = hex::decode(&record.serial).map_err(|_| StoreError::Corrupt(format!("serial {}", record.serial)))?;
    put_record(txn, &serial, record)?;
    txn.open_table(CERT_DER)
        .map_err(backend)?
        .insert(serial.as_slice(), der)
        .map_err(backend)?;
    txn.open_table(BY_TRANSACTION)
        .map_err(backend)?
        .insert(record.transaction_id.as_str(), serial.as_slice())
        .map_err(backend)?;
    if let Some(device) = &record.device_id {
        txn.open_table(BY_DEVICE)
            .map_err(backend)?
            .insert(device_key(device, &serial).as_slice(), ())
            .map_err(backend)?;
    }
    match (record.status, record.superseded_at, record.revoked_at) {
        (CertStatus::Superseded, Some(when), _) => {
            txn.open_table(SUPERSEDED)
                .map_err(backend)?
                .insert([&when.to_be_bytes()[..], &serial].concat().as_slice(), ())
                .map_err(backend)?;
        }
        (CertStatus::Revoked, _, Some(at)) => {
            let reason = record.revocation_reason.clone().unwrap_or_else(|| "unspecified".into());
            let row = RevokedRow {
                serial: record.serial.clone(),
                revoked_at: at,
                reason,
                not_after: record.not_after,
            };
            txn.open_table(REVOKED)
                .map_err(backend)?
                .insert(serial.as_slice(), encode(&row)?.as_slice())
                .map_err(backend)?;
        }
        _ => {}
    }
    Ok(())
}

/// Marks a usable challenge redeemed inside `txn`; false when it is unknown, used or expired.
fn redeem(txn: &redb::WriteTransaction, hash: &ChallengeHash) -> Result<bool, StoreError> {
    let mut challenges = txn.open_table(CHALLENGES).map_err(backend)?;
    let Some(mut record) = challenges
        .get(hash.as_slice())
        .map_err(backend)?
        .map(|r| decode::<ChallengeRecord>(r.value()))
        .transpose()?
    else {
        return Ok(false);
    };
    let now = scepd_ca::time::unix_now();
    if record.state_at(now) != ChallengeState::Usable {
        return Ok(false);
    }
    record.redeemed_at = Some(now);
    challenges
        .insert(hash.as_slice(), encode(&record)?.as_slice())
        .map_err(backend)?;
    Ok(true)
}
