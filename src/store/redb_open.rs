//! Opening the embedded store's file: refuse a damaged file without writing to it, and let
//! redb repair only what a crash left.
//!
//! A plain redb open trusts a file that was closed cleanly (it may panic on one damaged outside
//! redb, or serve errors for the damaged pages later), and an integrity check on open
//! "repairs" damage by rolling back to the previous commit, which would silently drop
//! certificates already handed out. So, before the real open, scepd runs redb's integrity
//! check on a copy-on-write view of the file ([`ProbeBackend`]): every page of the committed
//! trees is verified and nothing reaches the file. Then:
//!
//! - the file verifies → it is opened as usual;
//! - it was closed cleanly but does not verify → refused ([`StoreError::Damaged`]), untouched;
//! - it was left open by a crash (redb's `recovery_required` flag, byte 9 bit 1 of the
//!   header, documented in redb's design.md) → redb's crash recovery runs, as it is meant to:
//!   a commit torn by a power cut was never acknowledged, so falling back to the previous one
//!   loses nothing a client received. The repair is logged.
//!
//! The check reads the whole file once at start (measured: see docs/operations-faults.md).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{BackendError, Builder, Database, DatabaseError, RepairSession, StorageBackend, StorageError};

use super::StoreError;

/// redb's file header: the magic number, then the "god byte" whose second bit says the
/// file was not closed cleanly (redb docs/design.md, "Database super-header").
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
const RECOVERY_REQUIRED: u8 = 0b10;

/// redb (4.x) reports a repair at progress 0.3 when, and only when, the newest commit does not
/// verify and it is about to fall back to the previous one; its next report is at 0.6.
const FALLING_BACK: std::ops::Range<f64> = 0.3..0.6;

/// Opens (or creates) the store file at `path` with `cache_bytes` of page cache, after the
/// checks described in the module documentation.
pub fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    let crashed = match header_state(path)? {
        Header::Absent => return create(path, cache_bytes),
        Header::Clean => false,
        Header::Crashed => true,
    };
    let fell_back = Arc::new(AtomicBool::new(false));
    let probe = Builder::new()
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(true)
        .set_repair_callback({
            let fell_back = Arc::clone(&fell_back);
            move |session: &mut RepairSession| {
                if FALLING_BACK.contains(&session.progress()) {
                    fell_back.store(true, Ordering::Relaxed);
                }
            }
        })
        .create_with_backend(ProbeBackend::open(path)?);
    match probe {
        Ok(db) => drop(db),
        Err(e) => return Err(open_error(path, e)),
    }
    if fell_back.load(Ordering::Relaxed) && !crashed {
        return Err(damaged(
            path,
            "its newest commit does not verify although it was closed cleanly",
        ));
    }
    if crashed {
        tracing::warn!(
            file = %path.display(),
            rolled_back_unfinished_commit = fell_back.load(Ordering::Relaxed),
            "the store was not closed cleanly (crash or power loss): redb is recovering it"
        );
    }
    let db = Builder::new()
        .set_cache_size(cache_bytes)
        .set_repair_callback(|session: &mut RepairSession| {
            tracing::info!(progress = session.progress(), "store recovery in progress");
        })
        .open(path)
        .map_err(|e| open_error(path, e))?;
    if crashed {
        tracing::warn!(file = %path.display(), "store recovered after an unclean shutdown");
    }
    Ok(db)
}

fn create(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| open_error(path, e))
}

/// An I/O error is the disk's (full, failing, read-only: the store reopens once it is mended),
/// not the file's; anything else redb reports on open means the file is not what it wrote.
fn open_error(path: &Path, error: DatabaseError) -> StoreError {
    match error {
        DatabaseError::Storage(StorageError::Io(source)) => StoreError::File {
            path: path.to_path_buf(),
            source,
        },
        DatabaseError::DatabaseAlreadyOpen => in_use(path),
        e => damaged(path, &e.to_string()),
    }
}

enum Header {
    /// No file, or an empty one: a new store.
    Absent,
    Clean,
    Crashed,
}

fn header_state(path: &Path) -> Result<Header, StoreError> {
    let file_error = |source| StoreError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Header::Absent),
        opened => opened.map_err(file_error)?,
    };
    let mut header = Vec::with_capacity(MAGIC.len() + 1);
    (&mut file)
        .take(MAGIC.len() as u64 + 1)
        .read_to_end(&mut header)
        .map_err(file_error)?;
    if header.is_empty() {
        return Ok(Header::Absent);
    }
    if header.len() <= MAGIC.len() || header[..MAGIC.len()] != MAGIC {
        return Err(damaged(path, "it does not start with redb's file header"));
    }
    Ok(if header[MAGIC.len()] & RECOVERY_REQUIRED != 0 {
        Header::Crashed
    } else {
        Header::Clean
    })
}

fn damaged(path: &Path, detail: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn in_use(path: &Path) -> StoreError {
    StoreError::Config(format!(
        "{} is in use by another process (is another scepd serving this data directory?)",
        path.display()
    ))
}

/// The store file seen read-only, with redb's writes kept in memory: what an integrity check
/// on it repairs or commits never reaches the disk. Locks go to the real file, so a running
/// server on the same file is noticed. Memory: only the blocks the check writes (its allocator
/// state and headers), not the file.
#[derive(Debug)]
struct ProbeBackend {
    /// Opened read-write only because redb's exclusive byte-range locks need a writable
    /// descriptor; nothing is written through it.
    locks: FileBackend,
    file: File,
    view: Mutex<View>,
}

#[derive(Debug)]
struct View {
    len: u64,
    /// Bytes of the file at or past this offset were cut off by a shrink: they read as zeros.
    file_visible: u64,
    written: HashMap<u64, Box<[u8; BLOCK]>>,
}

const BLOCK: usize = 4096;

impl ProbeBackend {
    fn open(path: &Path) -> Result<ProbeBackend, StoreError> {
        let file_error = |source| StoreError::File {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new().read(true).open(path).map_err(file_error)?;
        let writable = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(file_error)?;
        let len = file.metadata().map_err(file_error)?.len();
        Ok(ProbeBackend {
            locks: FileBackend::new(writable).map_err(|e| damaged(path, &e.to_string()))?,
            file,
            view: Mutex::new(View {
                len,
                file_visible: len,
                written: HashMap::new(),
            }),
        })
    }

    fn view(&self) -> std::io::Result<std::sync::MutexGuard<'_, View>> {
        self.view
            .lock()
            .map_err(|_| std::io::Error::other("probe view lock poisoned"))
    }

    /// One block as the check sees it: written in memory, else from the file.
    fn block(&self, index: u64, view: &View) -> std::io::Result<Box<[u8; BLOCK]>> {
        if let Some(b) = view.written.get(&index) {
            return Ok(b.clone());
        }
        let mut b = Box::new([0u8; BLOCK]);
        let start = index * BLOCK as u64;
        let visible = view.file_visible.saturating_sub(start).min(BLOCK as u64) as usize;
        let mut filled = 0;
        while filled < visible {
            match self.file.read_at(&mut b[filled..visible], start + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(b)
    }
}

/// Calls `f(block index, offset within the block, range within the caller's buffer)` for
/// each block that `offset..offset+len` touches.
fn for_each_block(
    offset: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, std::ops::Range<usize>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut done = 0;
    while done < len {
        let at = offset + done as u64;
        let (index, within) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
        let n = (BLOCK - within).min(len - done);
        f(index, within, done..done + n)?;
        done += n;
    }
    Ok(())
}

impl StorageBackend for ProbeBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.view()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let view = self.view()?;
        if offset + out.len() as u64 > view.len {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        }
        for_each_block(offset, out.len(), |index, within, range| {
            let n = range.len();
            out[range].copy_from_slice(&self.block(index, &view)?[within..within + n]);
            Ok(())
        })
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut view = self.view()?;
        if len < view.len {
            // A partly kept block: zero its tail, so growing again reads zeros there.
            if !len.is_multiple_of(BLOCK as u64) {
                let index = len / BLOCK as u64;
                let mut b = self.block(index, &view)?;
                b[(len % BLOCK as u64) as usize..].fill(0);
                view.written.insert(index, b);
            }
            let first_gone = len.div_ceil(BLOCK as u64);
            view.written.retain(|index, _| *index < first_gone);
            view.file_visible = view.file_visible.min(len);
        }
        view.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut view = self.view()?;
        for_each_block(offset, data.len(), |index, within, range| {
            let mut b = self.block(index, &view)?;
            b[within..within + range.len()].copy_from_slice(&data[range]);
            view.written.insert(index, b);
            Ok(())
        })?;
        view.len = view.len.max(offset + data.len() as u64);
        Ok(())
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.locks.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.locks.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.locks.query_lock_range(start, end)
    }
}
