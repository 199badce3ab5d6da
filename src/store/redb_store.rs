//! The embedded store, on redb (stable file format, ACID, pure Rust; sled was rejected: no
//! stable release since 2021 and an unstable on-disk format).
//!
//! Tables (keys are bytes so that ordering is explicit):
//! - `meta`: `schema_version` → u64 (big-endian).
//! - `certs`: serial (16 bytes) → JSON [`CertRecord`].
//! - `cert_der`: serial → certificate DER.
//! - `certs_by_transaction`: transactionID → serial.
//! - `certs_by_device`: device id ‖ 0x00 ‖ serial → () (prefix range per device).
//!
//! Every write is one redb transaction with immediate durability (fsync before commit returns).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use scepd_ca::Serial;

use super::{CertFilter, CertRecord, Issuance, IssuanceOutcome, Store, StoreError};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");
const CERT_DER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("cert_der");
const BY_TRANSACTION: TableDefinition<&str, &[u8]> = TableDefinition::new("certs_by_transaction");
const BY_DEVICE: TableDefinition<&[u8], ()> = TableDefinition::new("certs_by_device");

/// The schema this build writes. Opening a newer one is refused rather than misread.
pub const SCHEMA_VERSION: u64 = 1;

pub struct RedbStore {
    db: Database,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn decode_record(bytes: &[u8]) -> Result<CertRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn device_key(device: &str, serial: &[u8]) -> Vec<u8> {
    [device.as_bytes(), &[0u8], serial].concat()
}

impl RedbStore {
    /// Opens (or creates) the store file and checks its schema version.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = Database::create(path).map_err(backend)?;
        let txn = db.begin_write().map_err(backend)?;
        {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let found = meta.get("schema_version").map_err(backend)?.map(|v| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&v.value()[..8.min(v.value().len())]);
                u64::from_be_bytes(b)
            });
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::SchemaTooNew { found: v, supported: SCHEMA_VERSION })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice()).map_err(backend)?;
                }
            }
            // Create every table up front so that readers never meet a missing one.
            txn.open_table(CERTS).map_err(backend)?;
            txn.open_table(CERT_DER).map_err(backend)?;
            txn.open_table(BY_TRANSACTION).map_err(backend)?;
            txn.open_table(BY_DEVICE).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl Store for RedbStore {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let by_txn = txn.open_table(BY_TRANSACTION).map_err(backend)?;
        let Some(serial) = by_txn.get(transaction_id).map_err(backend)? else { return Ok(None) };
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let record = certs.get(serial.value()).map_err(backend)?;
        record.map(|r| decode_record(r.value())).transpose()
    }

    fn record_issuance(&self, issuance: &Issuance) -> Result<IssuanceOutcome, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let outcome = {
            let mut certs = txn.open_table(CERTS).map_err(backend)?;
            let mut ders = txn.open_table(CERT_DER).map_err(backend)?;
            let mut by_txn = txn.open_table(BY_TRANSACTION).map_err(backend)?;
            let mut by_device = txn.open_table(BY_DEVICE).map_err(backend)?;
            let serial = issuance.serial.0;
            let existing = by_txn
                .get(issuance.record.transaction_id.as_str())
                .map_err(backend)?
                .map(|s| s.value().to_vec());
            if let Some(existing_serial) = existing {
                let record = certs
                    .get(existing_serial.as_slice())
                    .map_err(backend)?
                    .map(|r| decode_record(r.value()))
                    .transpose()?
                    .ok_or_else(|| StoreError::Corrupt("transaction index points nowhere".into()))?;
                if record.csr_sha256 != issuance.record.csr_sha256 {
                    IssuanceOutcome::TransactionConflict
                } else {
                    let der = ders
                        .get(existing_serial.as_slice())
                        .map_err(backend)?
                        .map(|d| d.value().to_vec())
                        .ok_or_else(|| StoreError::Corrupt("certificate without DER".into()))?;
                    IssuanceOutcome::AlreadyIssued(record, der)
                }
            } else if certs.get(serial.as_slice()).map_err(backend)?.is_some() {
                IssuanceOutcome::SerialTaken
            } else {
                let json = serde_json::to_vec(&issuance.record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                certs.insert(serial.as_slice(), json.as_slice()).map_err(backend)?;
                ders.insert(serial.as_slice(), issuance.der.as_slice()).map_err(backend)?;
                by_txn.insert(issuance.record.transaction_id.as_str(), serial.as_slice()).map_err(backend)?;
                if let Some(device) = &issuance.record.device_id {
                    by_device.insert(device_key(device, &serial).as_slice(), ()).map_err(backend)?;
                }
                IssuanceOutcome::Stored
            }
        };
        if outcome == IssuanceOutcome::Stored {
            txn.commit().map_err(backend)?;
        } else {
            txn.abort().map_err(backend)?;
        }
        Ok(outcome)
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let certs = txn.open_table(CERTS).map_err(backend)?;
        let Some(record) = certs.get(serial.0.as_slice()).map_err(backend)? else { return Ok(None) };
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
        out.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then_with(|| b.serial.cmp(&a.serial)));
        Ok(out)
    }
}
