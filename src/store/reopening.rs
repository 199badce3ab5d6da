//! The embedded store closes and opens its file again after an I/O error.
//!
//! redb stops at the first I/O error (a full disk, a failing device, a filesystem remounted
//! read-only): from then on every call answers "Previous I/O error occurred. Please close and
//! re-open the database", even once the cause is gone. [`RedbStore`] does what that asks: a call
//! that fails with an I/O error marks the file for reopening; the next call (or readiness probe)
//! waits for the calls in flight, closes the file and opens it again — at most once a second
//! while it keeps failing. Meanwhile every call fails with [`StoreError::Reopening`], which the
//! adapters answer with 503: nothing is acknowledged that is not durably stored, and service
//! resumes by itself when the disk does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use scepd_ca::{Reason, Serial};

use super::redb_store::RedbFile;
use super::{
    AuditEntry, CertFilter, CertRecord, ChallengeHash, ChallengeRecord, CrlState, Issuance, IssuanceOutcome, MdmClient,
    RevokeOutcome, RevokedRow, Store, StoreError, StoreEvent, StoreItem, StoreObserver, StoredCrl,
};

/// How often a file that fails to open is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The embedded store: a redb file that is reopened after an I/O error.
pub struct RedbStore {
    path: PathBuf,
    /// The open file; `None` after a failed reopen.
    file: RwLock<Option<RedbFile>>,
    /// Set by a call that failed with an I/O error, cleared by a successful reopen.
    needs_reopen: AtomicBool,
    /// The last reopen attempt and why the file is not open now.
    last_attempt: Mutex<Option<(Instant, String)>>,
    observer: OnceLock<StoreObserver>,
}

impl RedbStore {
    /// Opens (or creates) the store file and checks its schema version.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        Ok(RedbStore {
            path: path.to_path_buf(),
            file: RwLock::new(Some(RedbFile::open(path)?)),
            needs_reopen: AtomicBool::new(false),
            last_attempt: Mutex::new(None),
            observer: OnceLock::new(),
        })
    }

    fn report(&self, event: StoreEvent) {
        if let Some(observer) = self.observer.get() {
            observer(event);
        }
    }

    /// Runs `call` on the open file; an I/O error marks the file for reopening.
    pub(super) fn with<T>(&self, call: impl FnOnce(&RedbFile) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if self.needs_reopen.load(Ordering::Acquire) {
            self.reopen();
        }
        let result = {
            let file = self.file.read().unwrap_or_else(PoisonError::into_inner);
            match file.as_ref() {
                Some(file) => call(file),
                None => Err(StoreError::Reopening(self.why_closed())),
            }
        };
        if let Err(e) = &result {
            if e.is_io() && !self.needs_reopen.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, path = %self.path.display(), "store I/O failed; it will be reopened");
                self.report(StoreEvent::Failed);
            }
        }
        result
    }

    fn why_closed(&self) -> String {
        let last = self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref().map_or_else(|| "reopening".into(), |(_, why)| why.clone())
    }

    /// Closes the file (once the calls in flight are done) and opens it again, unless that was
    /// tried less than a second ago.
    fn reopen(&self) {
        let mut last = self.last_attempt.lock().unwrap_or_else(PoisonError::into_inner);
        if last.as_ref().is_some_and(|(at, _)| at.elapsed() < REOPEN_EVERY) {
            return;
        }
        let mut file = self.file.write().unwrap_or_else(PoisonError::into_inner);
        if !self.needs_reopen.load(Ordering::Acquire) {
            return; // another thread reopened it while this one waited
        }
        // redb locks its file: the old handle must be gone before the new one opens.
        *file = None;
        match RedbFile::reopen(&self.path) {
            Ok(opened) => {
                *file = Some(opened);
                *last = None;
                self.needs_reopen.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "store reopened");
                self.report(StoreEvent::Reopened);
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %self.path.display(), "store could not be reopened yet");
                *last = Some((Instant::now(), e.to_string()));
            }
        }
    }
}

impl Store for RedbStore {
    fn find_by_transaction(&self, transaction_id: &str) -> Result<Option<CertRecord>, StoreError> {
        self.with(|f| f.find_by_transaction(transaction_id))
    }

    fn record_issuances(&self, batch: &[Issuance]) -> Result<Vec<IssuanceOutcome>, StoreError> {
        self.with(|f| f.record_issuances(batch))
    }

    fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, StoreError> {
        self.with(|f| f.certificate(serial))
    }

    fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, StoreError> {
        self.with(|f| f.certificates(filter))
    }

    fn insert_challenges(&self, batch: &[(ChallengeHash, ChallengeRecord)]) -> Result<(), StoreError> {
        self.with(|f| f.insert_challenges(batch))
    }

    fn challenge(&self, hash: &ChallengeHash) -> Result<Option<ChallengeRecord>, StoreError> {
        self.with(|f| f.challenge(hash))
    }

    fn sweep_challenges(&self, now: u64) -> Result<u64, StoreError> {
        self.with(|f| f.sweep_challenges(now))
    }

    fn challenge_count(&self) -> Result<u64, StoreError> {
        self.with(|f| f.challenge_count())
    }

    fn add_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.with(|f| f.add_mdm_client(client))
    }

    fn replace_mdm_client(&self, client: &MdmClient) -> Result<bool, StoreError> {
        self.with(|f| f.replace_mdm_client(client))
    }

    fn mdm_client(&self, name: &str) -> Result<Option<MdmClient>, StoreError> {
        self.with(|f| f.mdm_client(name))
    }

    fn mdm_clients(&self) -> Result<Vec<MdmClient>, StoreError> {
        self.with(|f| f.mdm_clients())
    }

    fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        self.with(|f| f.remove_mdm_client(name))
    }

    fn revoke(&self, serial: &Serial, reason: Reason, at: u64) -> Result<RevokeOutcome, StoreError> {
        self.with(|f| f.revoke(serial, reason, at))
    }

    fn revoke_device(&self, device_id: &str, reason: Reason, at: u64) -> Result<Vec<Serial>, StoreError> {
        self.with(|f| f.revoke_device(device_id, reason, at))
    }

    fn revoke_superseded_before(&self, cutoff: u64, at: u64) -> Result<Vec<Serial>, StoreError> {
        self.with(|f| f.revoke_superseded_before(cutoff, at))
    }

    fn revoked(&self) -> Result<Vec<RevokedRow>, StoreError> {
        self.with(|f| f.revoked())
    }

    fn revocation_epoch(&self) -> Result<u64, StoreError> {
        self.with(|f| f.revocation_epoch())
    }

    fn latest_crl(&self) -> Result<CrlState, StoreError> {
        self.with(|f| f.latest_crl())
    }

    fn publish_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError> {
        self.with(|f| f.publish_crl(crl))
    }

    fn bind_identity(&self, name: &str, value: &str) -> Result<String, StoreError> {
        self.with(|f| f.bind_identity(name, value))
    }

    fn certificate_stats(&self, now: u64) -> Result<(u64, Option<u64>), StoreError> {
        self.with(|f| f.certificate_stats(now))
    }

    fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with(|f| f.ping())
    }

    fn backup_to(&self, out: &Path) -> Result<(), StoreError> {
        self.with(|f| f.backup_to(out))
    }

    fn export(&self, sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.with(|f| f.export(sink))
    }

    fn import(&self, items: &[StoreItem]) -> Result<(), StoreError> {
        self.with(|f| f.import(items))
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.with(|f| f.is_empty())
    }

    fn append_audit(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        self.with(|f| f.append_audit(entries))
    }

    fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|f| f.audit_entries(after, limit))
    }

    fn console(&self) -> &dyn super::console::ConsoleStore {
        self
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.with(|f| f.flush())
    }

    fn observe(&self, observer: StoreObserver) {
        let _ = self.observer.set(observer);
    }
}

impl crate::store::CaStore for RedbStore {
    fn ca_generations(&self) -> Result<Vec<crate::store::CaGenerationRecord>, StoreError> {
        self.with(|f| f.ca_generations())
    }

    fn add_ca_generation(
        &self,
        generation: &crate::store::CaGenerationRecord,
        now: u64,
    ) -> Result<crate::store::AddGeneration, StoreError> {
        self.with(|f| f.add_ca_generation(generation, now))
    }

    fn activate_next_ca(&self, at: u64) -> Result<crate::store::Activation, StoreError> {
        self.with(|f| f.activate_next_ca(at))
    }

    fn issuer_crl(&self, issuer: &scepd_ca::IssuerId) -> Result<CrlState, StoreError> {
        self.with(|f| f.issuer_crl(issuer))
    }

    fn publish_issuer_crl(&self, issuer: &scepd_ca::IssuerId, crl: &StoredCrl) -> Result<bool, StoreError> {
        self.with(|f| f.publish_issuer_crl(issuer, crl))
    }

    fn remove_ca_generation(&self, issuer: &scepd_ca::IssuerId, at: u64) -> Result<bool, StoreError> {
        self.with(|f| f.remove_ca_generation(issuer, at))
    }
}
