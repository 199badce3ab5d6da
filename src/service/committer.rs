//! Group commit for issuances: concurrent enrollments share one store transaction and one fsync.
//! Each caller still gets its own outcome, and only after the commit is durable — no reply leaves
//! before its certificate is on disk.
//!
//! There is no committer thread: the first caller that finds no commit under way commits
//! everything queued so far (its own issuance included) on its own thread, and the callers that
//! queued meanwhile wait for that commit or lead the next one. A thread of its own would cost two
//! more thread wake-ups per enrollment (hand the issuance over, hand the outcome back), which
//! `perf` showed as scheduler time beside the RSA work.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::store::{Issuance, IssuanceOutcome, Store, StoreError};

/// Issuances committed together, at most.
const MAX_BATCH: usize = 64;

type Ticket = u64;

#[derive(Default)]
struct Queue {
    next_ticket: Ticket,
    waiting: Vec<(Ticket, Issuance)>,
    /// A caller is committing a batch now.
    committing: bool,
    outcomes: HashMap<Ticket, Result<IssuanceOutcome, StoreError>>,
}

pub struct IssuanceCommitter {
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    committed: Condvar,
}

impl IssuanceCommitter {
    pub fn start(store: Arc<dyn Store>) -> IssuanceCommitter {
        IssuanceCommitter {
            store,
            queue: Mutex::new(Queue::default()),
            committed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's state stays consistent through a panic (see `Leader`): keep using it.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records `issuance`, blocking until its batch is durably committed.
    pub fn commit(&self, issuance: Issuance) -> Result<IssuanceOutcome, StoreError> {
        let mut queue = self.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, issuance));
        loop {
            if let Some(outcome) = queue.outcomes.remove(&ticket) {
                return outcome;
            }
            if queue.committing {
                queue = self
                    .committed
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead: commit what is queued, oldest first (this caller's issuance is among the
            // first MAX_BATCH, or a batch before it gets committed first and it leads again).
            queue.committing = true;
            let take = queue.waiting.len().min(MAX_BATCH);
            let batch: Vec<(Ticket, Issuance)> = queue.waiting.drain(..take).collect();
            drop(queue);
            let mut leader = Leader {
                committer: self,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
                outcomes: None,
            };
            let issuances: Vec<Issuance> = batch.into_iter().map(|(_, i)| i).collect();
            leader.outcomes = Some(self.store.record_issuances(&issuances));
            drop(leader);
            queue = self.lock();
        }
    }
}

/// The batch a caller is committing. Dropped, it hands every caller of the batch its outcome and
/// lets the next leader go — also if the store panicked, so that nobody waits forever.
struct Leader<'a> {
    committer: &'a IssuanceCommitter,
    tickets: Vec<Ticket>,
    outcomes: Option<Result<Vec<IssuanceOutcome>, StoreError>>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let mut queue = self.committer.lock();
        let tickets = std::mem::take(&mut self.tickets);
        match self.outcomes.take() {
            Some(Ok(outcomes)) if outcomes.len() == tickets.len() => {
                queue
                    .outcomes
                    .extend(tickets.into_iter().zip(outcomes.into_iter().map(Ok)));
            }
            Some(Err(e)) => {
                // Every issuance of the batch failed with the same cause.
                let shared = Arc::new(e);
                for ticket in tickets {
                    queue
                        .outcomes
                        .insert(ticket, Err(StoreError::Shared(Arc::clone(&shared))));
                }
            }
            // The store panicked (or answered for another number of issuances).
            Some(Ok(_)) | None => {
                for ticket in tickets {
                    queue
                        .outcomes
                        .insert(ticket, Err(StoreError::WriterStopped("issuance commit")));
                }
            }
        }
        queue.committing = false;
        self.committer.committed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CertFilter, CertRecord, RedbStore, Supersede};
    use scepd_ca::Serial;

    fn issuance(thread: usize, n: usize) -> Issuance {
        let serial = Serial::random();
        let now = scepd_ca::time::unix_now();
        Issuance {
            serial,
            record: CertRecord {
                transaction_id: format!("t{thread}-{n}"),
                csr_sha256: format!("c{thread}-{n}"),
                ..CertRecord::issued(&serial, format!("CN=d{thread}-{n}"), now, now + 86_400, now)
            },
            der: serial.as_bytes().to_vec(),
            redeems: None,
            supersede: Supersede::Nothing,
        }
    }

    /// Callers on many threads at once each get their own outcome, and every issuance is stored:
    /// whoever leads a commit hands the others theirs.
    #[test]
    fn concurrent_callers_each_get_their_outcome_and_everything_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap());
        let committer = Arc::new(IssuanceCommitter::start(Arc::clone(&store)));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let committer = Arc::clone(&committer);
                std::thread::spawn(move || {
                    (0..40)
                        .map(|n| committer.commit(issuance(t, n)).unwrap())
                        .filter(|outcome| matches!(outcome, IssuanceOutcome::Stored { .. }))
                        .count()
                })
            })
            .collect();
        let stored: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(stored, 8 * 40);
        assert_eq!(store.certificates(&CertFilter::default()).unwrap().len(), 8 * 40);
    }
}
