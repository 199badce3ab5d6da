//! A batching writer: one thread that commits whatever queued meanwhile in one store
//! transaction. Used for minted challenges and audit entries, which are frequent, cheap to
//! lose in the last second before a crash, and must not make requests wait for an fsync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use crate::store::StoreError;

/// Items waiting for the writer, at most; past it senders wait (backpressure).
const MAX_QUEUED: usize = 16_384;
/// Largest number of items committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long an idle writer waits after an item arrives before it commits. Items come one per
/// request (an audit entry per enrollment): committed as they came, each enrollment cost the
/// writer a wake-up and a transaction of its own, about 3.7 page writes and 2.3 context switches
/// per enrollment at the next durable commit (measured for issue 16). Nothing waits for these
/// commits but a [`BatchWriter::sync`], which is answered at most this much later. A writer
/// that finds items already queued behind the first commits at once: lingering then would cap
/// it at [`MAX_BATCH`] items per linger (challenge minting fell from 26,000 to 18,000/s).
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a writer whose last batch failed waits before trying it again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

enum Job<T> {
    Item(T),
    /// Answered once everything queued before it is committed.
    Sync(mpsc::Sender<()>),
}

pub struct BatchWriter<T> {
    name: &'static str,
    queue: tokio::sync::mpsc::Sender<Job<T>>,
    /// Unix time of the last failed batch (0: none).
    failed_at: Arc<AtomicU64>,
}

impl<T: Send + 'static> BatchWriter<T> {
    /// Starts the writer thread; `write` commits one batch.
    pub fn start(
        name: &'static str,
        write: impl Fn(&[T]) -> Result<(), StoreError> + Send + 'static,
    ) -> BatchWriter<T> {
        BatchWriter::lingering(name, LINGER, write)
    }

    fn lingering(
        name: &'static str,
        linger: std::time::Duration,
        write: impl Fn(&[T]) -> Result<(), StoreError> + Send + 'static,
    ) -> BatchWriter<T> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job<T>>(MAX_QUEUED);
        let failed_at = Arc::new(AtomicU64::new(0));
        let failed = Arc::clone(&failed_at);
        let label = name.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Items a failed batch held: kept and written again, with what arrives meanwhile,
                // until the store takes them (a full disk, a read-only database), so nothing that
                // was queued is dropped while the store recovers.
                let mut kept: Vec<T> = Vec::new();
                loop {
                    let first = if kept.is_empty() {
                        match rx.blocking_recv() {
                            Some(job @ Job::Item(_)) => {
                                // Items trickling in (nothing queued behind this one): let those
                                // of the next moments join its batch, one transaction and one
                                // wake-up for them all, not one each.
                                if rx.is_empty() {
                                    std::thread::sleep(linger);
                                }
                                Some(job)
                            }
                            Some(job) => Some(job),
                            None => break,
                        }
                    } else {
                        std::thread::sleep(RETRY_AFTER);
                        rx.try_recv().ok()
                    };
                    let mut items = std::mem::take(&mut kept);
                    let mut syncs = Vec::new();
                    let mut next = first;
                    while let Some(job) = next.take() {
                        match job {
                            Job::Item(item) => items.push(item),
                            Job::Sync(done) => syncs.push(done),
                        }
                        if items.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !items.is_empty() {
                        match write(&items) {
                            Ok(()) => failed.store(0, Ordering::Release),
                            Err(e) => {
                                tracing::error!(writer = %label, error = %e, kept = items.len(), "a batch could not be stored; retrying");
                                failed.store(scepd_ca::time::unix_now(), Ordering::Release);
                                kept = items;
                            }
                        }
                    }
                    // A sync waits for one attempt, not for the store to recover: a redemption
                    // that looks for a challenge still queued is answered either way.
                    for done in syncs {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn a batch writer");
        BatchWriter {
            name,
            queue: tx,
            failed_at,
        }
    }

    /// An error when a batch failed in the last second (the store is refusing writes).
    pub fn check(&self) -> Result<(), StoreError> {
        let at = self.failed_at.load(Ordering::Acquire);
        if at != 0 && scepd_ca::time::unix_now() <= at {
            return Err(StoreError::WriterFailing(self.name));
        }
        Ok(())
    }

    /// Queues an item from async code, waiting for room when the queue is full.
    pub async fn push(&self, item: T) -> Result<(), StoreError> {
        self.queue
            .send(Job::Item(item))
            .await
            .map_err(|_| StoreError::WriterStopped(self.name))
    }

    /// Queues an item from blocking code (never call from the async runtime).
    pub fn push_blocking(&self, item: T) {
        let _ = self.queue.blocking_send(Job::Item(item));
    }

    /// Blocks (outside the async runtime) until every item queued before the call is committed.
    pub fn sync(&self) {
        let (done, wait) = mpsc::channel();
        if self.queue.blocking_send(Job::Sync(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What the writer was given, batch by batch: (thread, item number).
    type Batches = Arc<Mutex<Vec<Vec<(usize, usize)>>>>;

    /// Items pushed from several threads are all committed, in each thread's order, by the time
    /// a sync returns — the linger delays commits, it does not drop or reorder them — and they
    /// share transactions.
    #[test]
    fn a_sync_returns_after_every_item_queued_before_it_is_committed() {
        let batches: Batches = Arc::default();
        let seen = Arc::clone(&batches);
        let writer = Arc::new(BatchWriter::start("test-writer", move |items: &[(usize, usize)]| {
            seen.lock().unwrap().push(items.to_vec());
            Ok(())
        }));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = Arc::clone(&writer);
                std::thread::spawn(move || (0..100).for_each(|n| writer.push_blocking((t, n))))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        writer.sync();
        let batches = batches.lock().unwrap();
        let written: Vec<(usize, usize)> = batches.iter().flatten().copied().collect();
        assert_eq!(written.len(), 400);
        for t in 0..4 {
            let order: Vec<usize> = written.iter().filter(|(w, _)| *w == t).map(|(_, n)| *n).collect();
            assert_eq!(order, (0..100).collect::<Vec<_>>());
        }
        assert!(batches.len() < 400, "{} transactions for 400 items", batches.len());
    }

    /// A writer that finds a backlog commits it batch after batch without lingering: lingering
    /// then would cap it at one batch per linger (challenge minting, issue 16).
    #[test]
    fn a_writer_with_a_backlog_commits_it_without_lingering() {
        let linger = std::time::Duration::from_millis(300);
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = Arc::clone(&sizes);
        let writer = BatchWriter::lingering("test-writer", linger, move |items: &[usize]| {
            let mut seen = seen.lock().unwrap();
            if seen.is_empty() {
                // The first batch holds the writer until the backlog is queued.
                released.lock().unwrap().recv().unwrap();
            }
            seen.push(items.len());
            Ok(())
        });
        writer.push_blocking(0);
        let backlog = 10 * MAX_BATCH;
        (1..=backlog).for_each(|n| writer.push_blocking(n));
        let started = std::time::Instant::now();
        release.send(()).unwrap();
        writer.sync();
        let elapsed = started.elapsed();
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), backlog + 1);
        assert!(sizes.len() >= 11, "{sizes:?}");
        // Ten batches after the first: lingering before each would take 3 s.
        assert!(elapsed < linger * 5, "{elapsed:?} for {} batches", sizes.len());
    }
}
