//! The console's tables in the embedded store (a child of `redb_store`, whose file it shares).
//!
//! - `console_accounts`: name → JSON [`Account`].
//! - `console_sessions`: SHA-256 of the session id → JSON [`Session`].
//!
//! The paged reads use the store's own tables: `certs` (keyed by serial) for certificate
//! pages, `certs_by_device` for device search, `audit` (keyed by sequence) for the trail.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use scepd_ca::Serial;

use super::super::console::{
    audit_matches, matches, Account, AuditPage, AuditQuery, CertPage, CertQuery, CertSummary, ConsoleStore, DeviceRow,
    Session, SessionHash, SummaryBuilder, SCAN_BUDGET,
};
use super::super::{CertStatus, RedbStore, StoreError, StoreItem};
use super::{be_u64, decode, decode_record, encode, RedbFile, AUDIT, BY_DEVICE, CERTS, REVOKED};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("console_accounts");
const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("console_sessions");

/// Creates the console's tables (with the store's others, so that readers never meet a missing one).
pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(ACCOUNTS)?;
    txn.open_table(SESSIONS)?;
    Ok(())
}

/// The accounts, for a whole-store copy.
pub(super) fn export(
    txn: &redb::ReadTransaction,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for entry in txn.open_table(ACCOUNTS)?.iter()? {
        sink(StoreItem::ConsoleAccount(decode(entry?.1.value())?))?;
    }
    Ok(())
}

pub(super) fn import(txn: &redb::WriteTransaction, account: &Account) -> Result<(), StoreError> {
    txn.open_table(ACCOUNTS)?
        .insert(account.name.as_str(), encode(account)?.as_slice())?;
    Ok(())
}

impl ConsoleStore for RedbFile {
    fn add_account(&self, account: &Account) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let added = {
            let mut accounts = txn.open_table(ACCOUNTS)?;
            let exists = accounts.get(account.name.as_str())?.is_some();
            if !exists {
                accounts.insert(account.name.as_str(), encode(account)?.as_slice())?;
            }
            !exists
        };
        txn.commit()?;
        Ok(added)
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let txn = self.db.begin_read()?;
        let found = txn.open_table(ACCOUNTS)?.get(name)?;
        found.map(|v| decode(v.value())).transpose()
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(ACCOUNTS)?.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    fn remove_account(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(ACCOUNTS)?.remove(name)?.is_some();
        {
            // Its sessions end with it (a few hundred at most: a scan is fine).
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut ended = Vec::new();
            for entry in sessions.iter()? {
                let (key, value) = entry?;
                if decode::<Session>(value.value())?.actor == name {
                    ended.push(key.value().to_vec());
                }
            }
            for key in ended {
                sessions.remove(key.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(existed)
    }

    fn put_session(&self, hash: &SessionHash, session: &Session) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SESSIONS)?
            .insert(hash.as_slice(), encode(session)?.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn touch_session(&self, hash: &SessionHash, last_seen: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let touched = {
            let mut table = txn.open_table(SESSIONS)?;
            let found: Option<Session> = table.get(hash.as_slice())?.map(|v| decode(v.value())).transpose()?;
            match found {
                Some(session) => {
                    let touched = Session { last_seen, ..session };
                    table.insert(hash.as_slice(), encode(&touched)?.as_slice())?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(touched)
    }

    fn session(&self, hash: &SessionHash) -> Result<Option<Session>, StoreError> {
        let txn = self.db.begin_read()?;
        let found = txn.open_table(SESSIONS)?.get(hash.as_slice())?;
        found.map(|v| decode(v.value())).transpose()
    }

    fn remove_session(&self, hash: &SessionHash) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SESSIONS)?.remove(hash.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn sweep_sessions(&self, idle_before: u64, created_before: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let mut swept = 0;
        {
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut ended = Vec::new();
            for entry in sessions.iter()? {
                let (key, value) = entry?;
                let s: Session = decode(value.value())?;
                if s.last_seen < idle_before || s.created_at < created_before {
                    ended.push(key.value().to_vec());
                }
            }
            for key in ended {
                sessions.remove(key.as_slice())?;
                swept += 1;
            }
        }
        txn.commit()?;
        Ok(swept)
    }

    fn certificate_page(&self, query: &CertQuery, now: u64, limit: usize) -> Result<CertPage, StoreError> {
        let txn = self.db.begin_read()?;
        let certs = txn.open_table(CERTS)?;
        // Revoked certificates have their own index; every other filter scans in serial order.
        let revoked_only = query.status == Some(CertStatus::Revoked);
        let revoked = txn.open_table(REVOKED)?;
        let start = query.after.map(|s| s.as_bytes().to_vec());
        let keys: Box<dyn Iterator<Item = Result<Vec<u8>, redb::StorageError>>> = match (&start, revoked_only) {
            (Some(after), true) => Box::new(
                revoked
                    .range::<&[u8]>((std::ops::Bound::Excluded(after.as_slice()), std::ops::Bound::Unbounded))?
                    .map(|e| e.map(|(k, _)| k.value().to_vec())),
            ),
            (None, true) => Box::new(revoked.iter()?.map(|e| e.map(|(k, _)| k.value().to_vec()))),
            (Some(after), false) => Box::new(
                certs
                    .range::<&[u8]>((std::ops::Bound::Excluded(after.as_slice()), std::ops::Bound::Unbounded))?
                    .map(|e| e.map(|(k, _)| k.value().to_vec())),
            ),
            (None, false) => Box::new(certs.iter()?.map(|e| e.map(|(k, _)| k.value().to_vec()))),
        };
        let mut page = CertPage::default();
        let mut last = None;
        for (scanned, key) in keys.enumerate() {
            let key = key?;
            if scanned >= SCAN_BUDGET || page.records.len() >= limit {
                page.next = last;
                break;
            }
            last = Some(serial_of(&key)?);
            let Some(value) = certs.get(key.as_slice())? else {
                continue;
            };
            let record = decode_record(value.value())?;
            if matches(&record, query, now) {
                page.records.push(record);
            }
        }
        Ok(page)
    }

    fn device_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeviceRow>, StoreError> {
        let txn = self.db.begin_read()?;
        let by_device = txn.open_table(BY_DEVICE)?;
        // Keys are `device ‖ 0x00 ‖ serial`: start past every key of `after`.
        let start = match after {
            Some(a) => [a.as_bytes(), &[1u8]].concat(),
            None => prefix.as_bytes().to_vec(),
        };
        let mut rows: Vec<DeviceRow> = Vec::new();
        for (scanned, entry) in by_device.range(start.as_slice()..)?.enumerate() {
            let (key, _) = entry?;
            let key = key.value();
            if !key.starts_with(prefix.as_bytes()) || scanned >= SCAN_BUDGET {
                break;
            }
            let end = key.len().saturating_sub(17);
            let device = String::from_utf8_lossy(&key[..end]).into_owned();
            let full = rows.len() >= limit;
            match rows.last_mut() {
                Some(row) if row.device_id == device => row.certificates += 1,
                _ if full => break,
                _ => rows.push(DeviceRow {
                    device_id: device,
                    certificates: 1,
                }),
            }
        }
        Ok(rows)
    }

    fn audit_page(&self, query: &AuditQuery, limit: usize) -> Result<AuditPage, StoreError> {
        let txn = self.db.begin_read()?;
        let audit = txn.open_table(AUDIT)?;
        let end = query.before.unwrap_or(u64::MAX).to_be_bytes();
        let mut page = AuditPage::default();
        for (scanned, entry) in audit.range(..end.as_slice())?.rev().enumerate() {
            let (key, value) = entry?;
            let seq = be_u64(key.value());
            if scanned >= SCAN_BUDGET || page.entries.len() >= limit {
                page.next = Some(seq + 1);
                break;
            }
            let e = decode(value.value())?;
            if audit_matches(&e, query) {
                page.entries.push(e);
            }
        }
        Ok(page)
    }

    fn certificate_summary(&self, now: u64, days: u32, expiring_within: u64) -> Result<CertSummary, StoreError> {
        let txn = self.db.begin_read()?;
        let mut builder = SummaryBuilder::new(now, days, expiring_within);
        for entry in txn.open_table(CERTS)?.iter()? {
            builder.add(&decode_record(entry?.1.value())?);
        }
        Ok(builder.finish())
    }
}

fn serial_of(key: &[u8]) -> Result<Serial, StoreError> {
    Serial::try_from(key).map_err(|e| StoreError::Corrupt(format!("serial key: {e}")))
}

/// The embedded store reopens its file after an I/O error: every call goes through it.
impl ConsoleStore for RedbStore {
    fn add_account(&self, account: &Account) -> Result<bool, StoreError> {
        self.with(|f| f.add_account(account))
    }
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.with(|f| f.account(name))
    }
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.with(|f| f.accounts())
    }
    fn remove_account(&self, name: &str) -> Result<bool, StoreError> {
        self.with(|f| f.remove_account(name))
    }
    fn put_session(&self, hash: &SessionHash, session: &Session) -> Result<(), StoreError> {
        self.with(|f| f.put_session(hash, session))
    }
    fn session(&self, hash: &SessionHash) -> Result<Option<Session>, StoreError> {
        self.with(|f| f.session(hash))
    }
    fn touch_session(&self, hash: &SessionHash, last_seen: u64) -> Result<bool, StoreError> {
        self.with(|f| f.touch_session(hash, last_seen))
    }
    fn remove_session(&self, hash: &SessionHash) -> Result<(), StoreError> {
        self.with(|f| f.remove_session(hash))
    }
    fn sweep_sessions(&self, idle_before: u64, created_before: u64) -> Result<u64, StoreError> {
        self.with(|f| f.sweep_sessions(idle_before, created_before))
    }
    fn certificate_page(&self, query: &CertQuery, now: u64, limit: usize) -> Result<CertPage, StoreError> {
        self.with(|f| f.certificate_page(query, now, limit))
    }
    fn device_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeviceRow>, StoreError> {
        self.with(|f| f.device_page(prefix, after, limit))
    }
    fn audit_page(&self, query: &AuditQuery, limit: usize) -> Result<AuditPage, StoreError> {
        self.with(|f| f.audit_page(query, limit))
    }
    fn certificate_summary(&self, now: u64, days: u32, expiring_within: u64) -> Result<CertSummary, StoreError> {
        self.with(|f| f.certificate_summary(now, days, expiring_within))
    }
}
