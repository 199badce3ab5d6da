//! Minting one-time challenges and managing the MDM credentials that may mint them.
//!
//! MDMs fetch challenges in bursts (a fleet-wide profile push), so minting is built for
//! throughput: challenges go to the store through one writer thread that commits them in
//! batches (one transaction for however many arrived meanwhile), and MDM credentials are
//! remembered for a few seconds instead of being read from the store on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{AuditEntry, AuditEvent, ChallengeHash, ChallengeRecord, MdmClient, Store, StoreError};

use super::batch::BatchWriter;
use super::ScepService;

/// How long a verified MDM credential is trusted without asking the store again (a removed or
/// rotated credential is refused at once on the node that changed it, within this on others).
const CREDENTIAL_CACHE: Duration = Duration::from_secs(5);

/// Minted challenges go to the store through a [`BatchWriter`]: minting does not wait for the
/// commit — the HTTP answer must not stall behind the store's periodic fsync — so a redemption
/// that does not find its challenge syncs the writer first.
pub type ChallengeWriter = BatchWriter<(ChallengeHash, ChallengeRecord)>;

pub fn challenge_writer(store: Arc<dyn Store>) -> ChallengeWriter {
    BatchWriter::start("challenge-writer", move |rows| store.insert_challenges(rows))
}

/// Recently verified MDM credentials: name → (client, when read from the store).
#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (MdmClient, Instant)>>,
}

impl CredentialCache {
    fn get(&self, name: &str) -> Option<MdmClient> {
        let map = self.entries.lock().expect("credential cache");
        map.get(name)
            .filter(|(_, at)| at.elapsed() < CREDENTIAL_CACHE)
            .map(|(c, _)| c.clone())
    }

    fn put(&self, client: MdmClient) {
        self.entries
            .lock()
            .expect("credential cache")
            .insert(client.name.clone(), (client, Instant::now()));
    }

    pub(super) fn forget(&self, name: &str) {
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
    /// The request's id in the log, for the audit trail.
    pub request_id: Option<u64>,
}

/// Longest binding or recorded value of a challenge (`device_id`, `subject_cn`, `san`,
/// `payloadIdentifier`), in bytes: each is stored with the challenge, and a device identifier,
/// a CN or a DNS name is far shorter.
pub const MAX_BINDING_BYTES: usize = 256;

impl MintRequest {
    /// Refuses values no device has (the caller answers HTTP 400 with the message).
    pub fn check(&self) -> Result<(), String> {
        let fields = [
            ("device_id", &self.device_id),
            ("subject_cn", &self.subject_cn),
            ("san", &self.san),
            ("payloadIdentifier", &self.payload_identifier),
        ];
        for (name, value) in fields {
            if value.as_ref().is_some_and(|v| v.len() > MAX_BINDING_BYTES) {
                return Err(format!("{name} is longer than {MAX_BINDING_BYTES} bytes"));
            }
        }
        Ok(())
    }
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
        let ttl_seconds = req
            .ttl_seconds
            .or(req.client_ttl_seconds)
            .unwrap_or(ttl.default_seconds)
            .clamp(1, ttl.max_seconds);
        // Lifetimes on the steady clock: a step of the system clock neither stretches nor ends them.
        let now = scepd_ca::time::steady_unix_now();
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
        self.metrics()
            .challenges_minted
            .with_label_values(&[record.endpoint.as_str()])
            .inc();
        // A store that refused the last batch gets a second's rest: answer 503 meanwhile.
        self.challenge_writer.check()?;
        let audit = AuditEntry {
            event: AuditEvent::ChallengeMinted,
            actor: record.minted_by.clone(),
            request_id: req.request_id,
            device_id: record.device_id.clone(),
            detail: Some(record.endpoint.clone()),
            ..Default::default()
        };
        self.challenge_writer.push((hash, record)).await?;
        self.audit(audit).await;
        Ok(Minted {
            challenge,
            expires_at,
            ttl_seconds,
        })
    }

    /// Waits until every challenge minted so far is in the store.
    pub fn sync_challenges(&self) {
        self.challenge_writer.sync();
    }

    /// A credential remembered from an earlier request, if it is still fresh.
    pub fn cached_mdm(&self, name: &str, password: &str) -> Option<MdmClient> {
        let client = self.credentials.get(name)?;
        self.policy()
            .challenge
            .key()
            .password_matches(password, &client.password_hmac)
            .then_some(client)
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
