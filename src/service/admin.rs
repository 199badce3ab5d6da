//! What operators do: through the admin API, and so the CLI. Each action is audited here, once,
//! whichever adapter asked.

use scepd_ca::Serial;

use super::{Origin, ScepService, ServiceError};
use crate::challenge::key::{random_alphanumeric, PASSWORD_LEN};
use crate::store::{AuditEvent, CertFilter, CertRecord, MdmClient};

/// What adding an MDM client did.
#[derive(Debug)]
pub enum MdmClientAdded {
    /// Created; the password, shown once (the store keeps only a keyed hash).
    Created { password: String },
    /// A client of that name exists (rotate it instead).
    Exists,
    /// Not a name scepd accepts (see [`valid_mdm_name`]).
    InvalidName,
}

/// MDM client names go into URLs and Basic credentials (where ':' would end the user name).
pub fn valid_mdm_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl ScepService {
    /// Certificates matching `filter`, newest first.
    pub fn certificates(&self, filter: &CertFilter) -> Result<Vec<CertRecord>, ServiceError> {
        Ok(self.store().certificates(filter)?)
    }

    /// Active certificates (matching `filter`'s device) whose notAfter is within `within`
    /// seconds from now, soonest first: what an MDM script re-pushes the profile for.
    pub fn expiring_certificates(&self, filter: &CertFilter, within: u64) -> Result<Vec<CertRecord>, ServiceError> {
        let active = CertFilter {
            status: Some(crate::store::CertStatus::Active),
            ..filter.clone()
        };
        let horizon = scepd_ca::time::unix_now().saturating_add(within);
        let mut found = self.store().certificates(&active)?;
        found.retain(|r| r.not_after <= horizon);
        found.sort_by_key(|r| r.not_after);
        Ok(found)
    }

    /// One certificate with its DER.
    pub fn certificate(&self, serial: &Serial) -> Result<Option<(CertRecord, Vec<u8>)>, ServiceError> {
        Ok(self.store().certificate(serial)?)
    }

    pub fn mdm_clients(&self) -> Result<Vec<MdmClient>, ServiceError> {
        Ok(self.store().mdm_clients()?)
    }

    /// A new MDM client. Of two concurrent adds of one name, exactly one creates it (one store
    /// transaction inserts it if absent).
    pub fn add_mdm_client(
        &self,
        name: &str,
        challenge_ttl_seconds: Option<u64>,
        origin: &Origin,
    ) -> Result<MdmClientAdded, ServiceError> {
        if !valid_mdm_name(name) {
            return Ok(MdmClientAdded::InvalidName);
        }
        let (client, password) = self.new_mdm_password(name, challenge_ttl_seconds);
        if !self.store().add_mdm_client(&client)? {
            return Ok(MdmClientAdded::Exists);
        }
        tracing::info!(%name, "MDM client added");
        self.audit_blocking(origin.entry(AuditEvent::MdmAdded, None, Some(name.into())));
        Ok(MdmClientAdded::Created { password })
    }

    /// A new password for an existing MDM client; none when there is no client of that name.
    pub fn rotate_mdm_client(&self, name: &str, origin: &Origin) -> Result<Option<String>, ServiceError> {
        let Some(existing) = self.store().mdm_client(name)? else {
            return Ok(None);
        };
        let (client, password) = self.new_mdm_password(name, existing.challenge_ttl_seconds);
        if !self.store().replace_mdm_client(&client)? {
            return Ok(None);
        }
        self.credentials.forget(name);
        tracing::info!(%name, "MDM client password rotated");
        self.audit_blocking(origin.entry(AuditEvent::MdmRotated, None, Some(name.into())));
        Ok(Some(password))
    }

    /// Removes an MDM client; whether it existed.
    pub fn remove_mdm_client(&self, name: &str, origin: &Origin) -> Result<bool, ServiceError> {
        let existed = self.store().remove_mdm_client(name)?;
        self.credentials.forget(name);
        if existed {
            tracing::info!(%name, "MDM client removed");
            self.audit_blocking(origin.entry(AuditEvent::MdmRemoved, None, Some(name.into())));
        }
        Ok(existed)
    }

    /// A client record with a fresh random password, and the password.
    fn new_mdm_password(&self, name: &str, challenge_ttl_seconds: Option<u64>) -> (MdmClient, String) {
        let password = random_alphanumeric(PASSWORD_LEN);
        let client = MdmClient {
            name: name.to_string(),
            password_hmac: self.policy().challenge.key().hash_password(&password),
            created_at: scepd_ca::time::unix_now(),
            challenge_ttl_seconds,
        };
        (client, password)
    }

    /// A consistent copy of the store, written into the data directory for the local CLI to
    /// collect; returns the file's name.
    pub fn backup(&self) -> Result<String, ServiceError> {
        let name = format!("backup-{}-{}.redb", scepd_ca::time::unix_now(), std::process::id());
        self.sync_challenges();
        self.store().backup_to(&self.data_dir().join(&name))?;
        Ok(name)
    }

    /// Challenges stored, those minted a moment ago and still on their way included.
    pub fn challenges_stored(&self) -> Result<u64, ServiceError> {
        self.sync_challenges();
        Ok(self.store().challenge_count()?)
    }

    /// A failed authentication at `endpoint`: counted and audited (the adapter slows down the
    /// source).
    pub async fn authentication_failed(&self, origin: &Origin, endpoint: &'static str) {
        self.metrics().auth_failures.with_label_values(&[endpoint]).inc();
        self.audit(origin.entry(AuditEvent::AuthFailed, None, Some(endpoint.into())))
            .await;
    }
}
