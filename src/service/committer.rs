//! Group commit for issuances: concurrent enrollments share one store transaction and one fsync.
//! Each caller still gets its own outcome, and only after the commit is durable — no reply leaves
//! before its certificate is on disk.
//!
//! There is no committer thread: the first caller that finds no commit under way commits
//! everything queued so far (its own issuance included) on its own thread, and the callers that
//! queued meanwhile wait for that commit or lead the next one. A thread of its own would cost two
//! more thread wake-ups per enrollment (hand the issuance over, hand the outcome back), which
//! `perf` showed as scheduler time beside the RSA work.
//!
//! A leader first waits, briefly, for the issuances already on their way (see
//! [`IssuanceCommitter::approach`]): a commit's fixed cost (redb's page writes for every tree it
//! touches, the `fdatasync`) is paid once per batch, and at four clients a leader that committed
//! at once mostly committed alone while another enrollment was a decryption and a signature away
//! from the queue (BENCHMARKS.md, issue 16: a quarter fewer commits at C = 4).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

use crate::store::{Issuance, IssuanceOutcome, Store, StoreError};

/// Issuances committed together, at most.
const MAX_BATCH: usize = 64;

/// How long a leader waits for issuances on their way before it commits without them. An
/// issuance on its way is at most a decryption and a signature (under a millisecond of CPU) away
/// from the queue; the bound keeps a slow or descheduled one from holding the others back.
const GATHER_AT_MOST: Duration = Duration::from_millis(2);

type Ticket = u64;

#[derive(Default)]
struct Queue {
    next_ticket: Ticket,
    waiting: Vec<(Ticket, Issuance)>,
    /// A caller is committing a batch now (or gathering one).
    committing: bool,
    /// The leader is waiting in [`IssuanceCommitter::gather`] (only then is `arrived` notified).
    gathering: bool,
    /// Issuances announced ([`IssuanceCommitter::approach`]) and not queued: their requests are
    /// being opened, checked or signed.
    on_their_way: usize,
    outcomes: HashMap<Ticket, Result<IssuanceOutcome, StoreError>>,
}

pub struct IssuanceCommitter {
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    committed: Condvar,
    /// Wakes a gathering leader when an issuance arrives or gives up on the way.
    arrived: Condvar,
    /// How long a leader gathers at most ([`GATHER_AT_MOST`]).
    gather_at_most: Duration,
    /// Batches handed to the store (`scepd_issuance_commits_total`).
    commits: IntCounter,
}

/// An issuance announced to the committer (see [`IssuanceCommitter::approach`]): on its way from
/// the moment its request is being opened until it queues in [`Approach::commit`], and again
/// after a serial already taken, until it comes back with another.
pub struct Approach<'a> {
    committer: &'a IssuanceCommitter,
    /// Counted in `on_their_way`.
    on_its_way: bool,
}

impl Approach<'_> {
    /// Counts this issuance in or out of `on_their_way`, waking a gathering leader.
    fn set_on_its_way(&mut self, queue: &mut Queue, on_its_way: bool) {
        if self.on_its_way == on_its_way {
            return;
        }
        if on_its_way {
            queue.on_their_way += 1;
        } else {
            queue.on_their_way -= 1;
        }
        self.on_its_way = on_its_way;
        if queue.gathering {
            self.committer.arrived.notify_one();
        }
    }
}

impl Drop for Approach<'_> {
    /// A request refused on its way is no longer waited for.
    fn drop(&mut self) {
        if self.on_its_way {
            let committer = self.committer;
            self.set_on_its_way(&mut committer.lock(), false);
        }
    }
}

impl IssuanceCommitter {
    /// A committer counting its batches in `commits`.
    pub fn start(store: Arc<dyn Store>, commits: IntCounter) -> IssuanceCommitter {
        IssuanceCommitter::gathering_at_most(store, commits, GATHER_AT_MOST)
    }

    fn gathering_at_most(store: Arc<dyn Store>, commits: IntCounter, gather_at_most: Duration) -> IssuanceCommitter {
        IssuanceCommitter {
            store,
            queue: Mutex::new(Queue::default()),
            committed: Condvar::new(),
            arrived: Condvar::new(),
            gather_at_most,
            commits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's state stays consistent through a panic (see `Leader`): keep using it.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Announces an issuance that may reach [`Approach::commit`] soon: called when a request
    /// for a certificate is about to be opened. A leader waits (at most [`GATHER_AT_MOST`]) for
    /// the announced issuances, so that they share its commit; a request refused on the way
    /// drops its `Approach` and stops being waited for.
    pub fn approach(&self) -> Approach<'_> {
        self.lock().on_their_way += 1;
        Approach {
            committer: self,
            on_its_way: true,
        }
    }

    /// Waits until every announced issuance is queued (or gave up), the batch is full, or
    /// the gathering bound has passed.
    fn gather<'q>(&self, mut queue: MutexGuard<'q, Queue>) -> MutexGuard<'q, Queue> {
        let deadline = Instant::now() + self.gather_at_most;
        queue.gathering = true;
        while queue.on_their_way > 0 && queue.waiting.len() < MAX_BATCH {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            queue = self
                .arrived
                .wait_timeout(queue, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        queue.gathering = false;
        queue
    }
}

impl Approach<'_> {
    /// Records `issuance`, blocking until its batch is durably committed.
    pub fn commit(&mut self, issuance: Issuance) -> Result<IssuanceOutcome, StoreError> {
        let committer = self.committer;
        let mut queue = committer.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.waiting.push((ticket, issuance));
        self.set_on_its_way(&mut queue, false);
        loop {
            if let Some(outcome) = queue.outcomes.remove(&ticket) {
                // Another serial is drawn and signed: on its way again.
                if matches!(outcome, Ok(IssuanceOutcome::SerialTaken)) {
                    self.set_on_its_way(&mut queue, true);
                }
                return outcome;
            }
            if queue.committing {
                queue = committer
                    .committed
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            // Lead: gather what is on its way, then commit what is queued, oldest first (this
            // caller's issuance is among the first MAX_BATCH, or a batch before it gets
            // committed first and it leads again).
            queue.committing = true;
            queue = committer.gather(queue);
            let take = queue.waiting.len().min(MAX_BATCH);
            let batch: Vec<(Ticket, Issuance)> = queue.waiting.drain(..take).collect();
            drop(queue);
            committer.commits.inc();
            let mut leader = Leader {
                committer,
                tickets: batch.iter().map(|(t, _)| *t).collect(),
                outcomes: None,
            };
            let issuances: Vec<Issuance> = batch.into_iter().map(|(_, i)| i).collect();
            leader.outcomes = Some(committer.store.record_issuances(&issuances));
            drop(leader);
            queue = committer.lock();
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
        let serial = Serial::fresh();
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

    fn redb(dir: &tempfile::TempDir) -> Arc<dyn Store> {
        Arc::new(RedbStore::open(&dir.path().join("s.redb")).unwrap())
    }

    fn counter() -> IntCounter {
        IntCounter::new("commits", "test").unwrap()
    }

    /// Waits until a leader gathers with `queued` issuances in its queue.
    fn until_gathering(committer: &IssuanceCommitter, queued: usize) {
        let started = Instant::now();
        loop {
            let queue = committer.lock();
            if queue.committing && queue.waiting.len() == queued {
                return;
            }
            drop(queue);
            assert!(started.elapsed() < Duration::from_secs(10), "no leader gathered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// An issuance announced before the leader came is committed with the leader's, in one
    /// batch, although it reached the queue after the leader did.
    #[test]
    fn a_leader_waits_for_the_issuance_on_its_way_and_both_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = redb(&dir);
        let commits = counter();
        let committer =
            IssuanceCommitter::gathering_at_most(Arc::clone(&store), commits.clone(), Duration::from_secs(60));
        std::thread::scope(|s| {
            let mut on_its_way = committer.approach();
            let leader = s.spawn(|| committer.approach().commit(issuance(0, 0)).unwrap());
            until_gathering(&committer, 1);
            let second = on_its_way.commit(issuance(1, 0)).unwrap();
            assert!(matches!(second, IssuanceOutcome::Stored { .. }));
            assert!(matches!(leader.join().unwrap(), IssuanceOutcome::Stored { .. }));
        });
        assert_eq!(commits.get(), 1);
        assert_eq!(store.certificates(&CertFilter::default()).unwrap().len(), 2);
    }

    /// A leader does not wait for an issuance that gives up on its way (refused, or failed to
    /// sign), nor longer than its bound for one that never comes.
    #[test]
    fn a_leader_stops_waiting_when_the_issuance_on_its_way_gives_up_or_its_bound_passes() {
        let dir = tempfile::tempdir().unwrap();
        let committer = IssuanceCommitter::gathering_at_most(redb(&dir), counter(), Duration::from_secs(60));
        std::thread::scope(|s| {
            let gives_up = committer.approach();
            let leader = s.spawn(|| committer.approach().commit(issuance(0, 0)).unwrap());
            until_gathering(&committer, 1);
            drop(gives_up);
            assert!(matches!(leader.join().unwrap(), IssuanceOutcome::Stored { .. }));
        });

        let bound = Duration::from_millis(50);
        let (dir, commits) = (tempfile::tempdir().unwrap(), counter());
        let committer = IssuanceCommitter::gathering_at_most(redb(&dir), commits.clone(), bound);
        let _never_comes = committer.approach();
        let started = Instant::now();
        let outcome = committer.approach().commit(issuance(2, 0)).unwrap();
        assert!(matches!(outcome, IssuanceOutcome::Stored { .. }));
        assert!(started.elapsed() >= bound);
        assert_eq!(commits.get(), 1);
    }

    /// Callers on many threads at once each get their own outcome, and every issuance is stored:
    /// whoever leads a commit hands the others theirs.
    #[test]
    fn concurrent_callers_each_get_their_outcome_and_everything_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = redb(&dir);
        let committer = Arc::new(IssuanceCommitter::start(Arc::clone(&store), counter()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let committer = Arc::clone(&committer);
                std::thread::spawn(move || {
                    (0..40)
                        .map(|n| committer.approach().commit(issuance(t, n)).unwrap())
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
