//! Minting one-time challenges and managing the MDM credentials that may mint them.

use crate::challenge::key::{random_alphanumeric, PASSWORD_LEN};
use crate::store::{ChallengeRecord, MdmClient, StoreError};

use super::ScepService;

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
    pub fn mint_challenge(&self, req: MintRequest) -> Result<Minted, StoreError> {
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
            redeemed_at: None,
        };
        self.store().insert_challenge(&hash, &record)?;
        Ok(Minted { challenge, expires_at: record.expires_at, ttl_seconds })
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
        Ok(password)
    }

    /// The MDM client named `name`, if `password` is its password (constant-time comparison).
    pub fn authenticate_mdm(&self, name: &str, password: &str) -> Result<Option<MdmClient>, StoreError> {
        let key = self.policy().challenge.key();
        match self.store().mdm_client(name)? {
            Some(client) if key.password_matches(password, &client.password_hmac) => Ok(Some(client)),
            Some(_) => Ok(None),
            None => {
                // Same work for an unknown name as for a wrong password.
                let _ = key.password_matches(password, "");
                Ok(None)
            }
        }
    }
}
