//! Minting one-time challenges and managing the MDM credentials that may mint them.
//!
//! MDMs fetch challenges in bursts (a fleet-wide profile push), so minting is built for
//! throughput: challenges go to the store through one writer thread that commits them in
//! batches (one transaction for however many arrived meanwhile), and MDM credentials are
//! remembered for a few seconds instead of being read from the store on every request.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::challenge::key::{random_alphanumeric, PASSWORD_LEN};
use crate::store::{ChallengeHash, ChallengeRecord, MdmClient, Store, StoreError};

use super::ScepService;

/// Largest number of challenges committed in one transaction.
const MAX_BATCH: usize = 512;
/// How long a verified MDM credential is trusted without asking the store again (a removed or
/// rotated credential is refused at once on the node that changed it, within this on others).
const CREDENTIAL_CACHE: Duration = Duration::from_secs(5);

/// Challenges waiting for the writer, at most. Past it minting waits for room (backpressure)
/// instead of queueing without bound.
const MAX_QUEUED: usize = 16_384;

enum Job {
    Insert(ChallengeHash, ChallengeRecord),
    /// Answered once everything queued before it is committed.
    Sync(mpsc::Sender<()>),
}

/// The batching writer: a thread that owns challenge inserts. Minting does not wait for the
/// commit — the HTTP answer must not stall behind the store's periodic fsync — so a redemption
/// that does not find its challenge asks the writer to [`sync`](ChallengeWriter::sync) first.
pub struct ChallengeWriter {
    queue: tokio::sync::mpsc::Sender<Job>,
    /// Unix time of the last failed batch (0: none). Minting is refused for a second after
    /// one, then tried again, so a transient store error does not disable minting for good.
    failed_at: Arc<AtomicU64>,
}

impl ChallengeWriter {
    pub fn start(store: Arc<dyn Store>) -> ChallengeWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(MAX_QUEUED);
        let failed_at = Arc::new(AtomicU64::new(0));
        let failed_flag = Arc::clone(&failed_at);
        std::thread::Builder::new()
            .name("challenge-writer".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut rows = Vec::new();
                    let mut syncs = Vec::new();
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Insert(h, r) => rows.push((h, r)),
                            Job::Sync(done) => syncs.push(done),
                        }
                        if rows.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !rows.is_empty() {
                        let result = store.insert_challenges(&rows);
                        if let Err(e) = &result {
                            tracing::error!(error = %e, lost = rows.len(), "storing minted challenges failed");
                        }
                        failed_flag.store(if result.is_err() { scepd_ca::time::unix_now() } else { 0 }, Ordering::Release);
                    }
                    for done in syncs {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn the challenge writer");
        ChallengeWriter { queue: tx, failed_at }
    }

    async fn insert(&self, hash: ChallengeHash, record: ChallengeRecord) -> Result<(), StoreError> {
        let failed_at = self.failed_at.load(Ordering::Acquire);
        if failed_at != 0 && scepd_ca::time::unix_now() <= failed_at {
            return Err(StoreError::Backend("the store refused the last challenges".into()));
        }
        let sent = self.queue.send(Job::Insert(hash, record)).await;
        sent.map_err(|_| StoreError::Backend("challenge writer stopped".into()))
    }

    /// Blocks (outside the async runtime) until every challenge minted before this call is
    /// committed.
    pub fn sync(&self) {
        let (done, wait) = mpsc::channel();
        if self.queue.blocking_send(Job::Sync(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// Recently verified MDM credentials: name → (client, when read from the store).
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (MdmClient, Instant)>>,
}

impl CredentialCache {
    fn get(&self, name: &str) -> Option<MdmClient> {
        let map = self.entries.lock().expect("credential cache");
        map.get(name).filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE).map(|(c, _)| c.clone())
    }

    fn put(&self, client: MdmClient) {
        self.entries.lock().expect("credential cache").insert(client.name.clone(), (client, Instant::now()));
    }

    pub fn forget(&self, name: &str) {
        self.entries.lock().expect("credential cache").remove(name);
    }
}

/// Challenge lifetimes, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct ChallengeTtl {
    pub default_seconds: u64,
    pub max_seconds: u64,
}

/// A request for a challenge, from whichever endpoint.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    /// The MDM client's name, or `admin`.
    pub minted_by: String,
    /// `ndes`, `jamf`, `api` or `cli`.
    pub endpoint: &'static str,
    pub device_id: Option<String>,
    pub subject_cn: Option<String>,
    pub san: Option<String>,
    pub payload_identifier: Option<String>,
    pub okta_device_access: Option<bool>,
    /// Requested lifetime; otherwise the MDM client's, otherwise the server's. Capped.
    pub ttl_seconds: Option<u64>,
    pub client_ttl_seconds: Option<u64>,
}

/// A minted challenge: the plaintext exists only here, on its way to the MDM.
pub struct Minted {
    pub challenge: String,
    pub expires_at: u64,
    pub ttl_seconds: u64,
}

impl ScepService {
    pub async fn mint_challenge(&self, req: MintRequest) -> Result<Minted, StoreError> {
        let ttl = self.policy().challenge_ttl;
        let ttl_seconds = req.ttl_seconds.or(req.client_ttl_seconds).unwrap_or(ttl.default_seconds).clamp(1, ttl.max_seconds);
        let now = scepd_ca::time::unix_now();
        let (challenge, hash) = self.policy().challenge.key().mint();
        let record = ChallengeRecord {
            expires_at: now + ttl_seconds,
            created_at: now,
            minted_by: req.minted_by,
            endpoint: req.endpoint.to_string(),
            device_id: req.device_id,
            subject_cn: req.subject_cn,
            san: req.san,
            payload_identifier: req.payload_identifier,
            okta_device_access: req.okta_device_access,
            redeemed_at: None,
        };
        let expires_at = record.expires_at;
        self.metrics().challenges_minted.with_label_values(&[record.endpoint.as_str()]).inc();
        self.challenge_writer.insert(hash, record).await?;
        Ok(Minted { challenge, expires_at, ttl_seconds })
    }

    /// Waits until every challenge minted so far is in the store.
    pub fn sync_challenges(&self) {
        self.challenge_writer.sync();
    }

    /// Creates or rotates an MDM client; returns its new password, which is
    /// stored only as a keyed hash.
    pub fn set_mdm_password(&self, name: &str, challenge_ttl_seconds: Option<u64>) -> Result<String, StoreError> {
        let password = random_alphanumeric(PASSWORD_LEN);
        let client = MdmClient {
            name: name.to_string(),
            password_hmac: self.policy().challenge.key().hash_password(&password),
            created_at: scepd_ca::time::unix_now(),
            challenge_ttl_seconds,
        };
        self.store().put_mdm_client(&client)?;
        self.credentials.forget(name);
        Ok(password)
    }

    pub fn remove_mdm_client(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.store().remove_mdm_client(name)?;
        self.credentials.forget(name);
        Ok(existed)
    }

    /// A credential remembered from an earlier request, if it is still fresh.
    pub fn cached_mdm(&self, name: &str, password: &str) -> Option<MdmClient> {
        let client = self.credentials.get(name)?;
        self.policy().challenge.key().password_matches(password, &client.password_hmac).then_some(client)
    }

    /// The MDM client named `name`, if `password` is its password (constant-time comparison).
    pub fn authenticate_mdm(&self, name: &str, password: &str) -> Result<Option<MdmClient>, StoreError> {
        let key = self.policy().challenge.key();
        match self.store().mdm_client(name)? {
            Some(client) if key.password_matches(password, &client.password_hmac) => {
                self.credentials.put(client.clone());
                Ok(Some(client))
            }
            Some(_) => Ok(None),
            None => {
                // Same work for an unknown name as for a wrong password.
                let _ = key.password_matches(password, "");
                Ok(None)
            }
        }
    }
}
