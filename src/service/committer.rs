//! Group commit for issuances: concurrent enrollments share one store transaction and one fsync.
//! Each caller still gets its own outcome, and only after the commit is durable — no reply leaves
//! before its certificate is on disk.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::store::{Issuance, IssuanceOutcome, Store, StoreError};

/// Issuances committed together, at most.
const MAX_BATCH: usize = 64;

type Reply = mpsc::Sender<Result<IssuanceOutcome, StoreError>>;

pub struct IssuanceCommitter {
    queue: Mutex<mpsc::Sender<(Issuance, Reply)>>,
}

impl IssuanceCommitter {
    pub fn start(store: Arc<dyn Store>) -> IssuanceCommitter {
        let (tx, rx) = mpsc::channel::<(Issuance, Reply)>();
        std::thread::Builder::new()
            .name("issuance-committer".into())
            .spawn(move || {
                // Whatever queued while the previous commit was being made goes into the next.
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(item) => batch.push(item),
                            Err(_) => break,
                        }
                    }
                    let (issuances, replies): (Vec<Issuance>, Vec<Reply>) = batch.into_iter().unzip();
                    match store.record_issuances(&issuances) {
                        Ok(outcomes) => {
                            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                        Err(e) => {
                            // Every issuance of the batch failed with the same cause.
                            let shared = Arc::new(e);
                            for reply in replies {
                                let _ = reply.send(Err(StoreError::Shared(Arc::clone(&shared))));
                            }
                        }
                    }
                }
            })
            .expect("spawn the issuance committer");
        IssuanceCommitter { queue: Mutex::new(tx) }
    }

    /// Records `issuance`, blocking until its batch is durably committed.
    pub fn commit(&self, issuance: Issuance) -> Result<IssuanceOutcome, StoreError> {
        let (reply, wait) = mpsc::channel();
        let stopped = || StoreError::WriterStopped("issuance committer");
        self.queue
            .lock()
            .expect("committer queue")
            .send((issuance, reply))
            .map_err(|_| stopped())?;
        wait.recv().map_err(|_| stopped())?
    }
}
