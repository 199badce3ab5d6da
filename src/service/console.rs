//! The web console's accounts and sessions. Passwords are kept as Argon2id hashes; a session id
//! lives only in the browser's cookie, the store keeps its SHA-256 (a copy of the store signs
//! nobody in). Each change is audited here, as the admin API's are.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;

use super::admin::valid_mdm_name;
use super::{Origin, ScepService, ServiceError};
use crate::challenge::key::{random_alphanumeric, PASSWORD_LEN};
use crate::store::console::{Account, Role, Session, SessionHash};
use crate::store::{AuditEntry, AuditEvent, Store};

/// A session ends after this long without a request…
pub const SESSION_IDLE_SECONDS: u64 = 30 * 60;
/// …and this long after sign-in, whatever happens.
pub const SESSION_MAX_SECONDS: u64 = 12 * 60 * 60;
/// `last_seen` is written at most this often (a page view is not a store write each time).
const TOUCH_EVERY_SECONDS: u64 = 60;

/// The actor the admin token signs in as (the admin API's).
pub const TOKEN_ACTOR: &str = "admin";

/// What adding a console account did.
#[derive(Debug)]
pub enum AccountAdded {
    /// Created; the password, shown once.
    Created {
        password: String,
    },
    Exists,
    /// Not a name scepd accepts (the MDM client rule; `admin` is the token's).
    InvalidName,
}

/// The SHA-256 the store keeps of a session id.
pub fn session_hash(id: &str) -> SessionHash {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes())
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

/// The CSRF token of a session: an HMAC of a constant under the session id, so it is bound to
/// the session, needs no storage, and does not reveal the id.
pub fn csrf_token(session_id: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, session_id.as_bytes());
    hex::encode(aws_lc_rs::hmac::sign(&key, b"scepd console csrf").as_ref())
}

/// 256 random bits, URL-safe base64.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_password(password: &str) -> Result<String, ServiceError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::PasswordHash(e.to_string()))
}

/// Checks `password` against a stored PHC string; a malformed one never matches.
fn password_matches(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Compared against when the account does not exist, so that a missing name takes as long to
/// refuse as a wrong password (the answer does not tell which names exist).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// Creates an account with a random password in `store` (the service's, or the one the CLI
/// opened itself when no server runs).
pub fn add_account(store: &dyn Store, name: &str, role: Role) -> Result<AccountAdded, ServiceError> {
    if !valid_mdm_name(name) || name == TOKEN_ACTOR {
        return Ok(AccountAdded::InvalidName);
    }
    let password = random_alphanumeric(PASSWORD_LEN);
    let account = Account {
        name: name.to_string(),
        role,
        password_hash: hash_password(&password)?,
        created_at: scepd_ca::time::unix_now(),
    };
    if !store.console().add_account(&account)? {
        return Ok(AccountAdded::Exists);
    }
    Ok(AccountAdded::Created { password })
}

/// The audit entry of a new account.
pub fn account_added(origin: &Origin, name: &str, role: Role) -> AuditEntry {
    origin.entry(
        AuditEvent::AccountAdded,
        None,
        Some(format!("{name} ({})", role.as_str())),
    )
}

impl ScepService {
    pub fn console_accounts(&self) -> Result<Vec<Account>, ServiceError> {
        Ok(self.store().console().accounts()?)
    }

    /// A new console account with a random password (returned once).
    pub fn add_console_account(&self, name: &str, role: Role, origin: &Origin) -> Result<AccountAdded, ServiceError> {
        let added = add_account(self.store().as_ref(), name, role)?;
        if let AccountAdded::Created { .. } = added {
            tracing::info!(%name, role = role.as_str(), "console account added");
            self.audit_blocking(account_added(origin, name, role));
        }
        Ok(added)
    }

    /// Removes an account and ends its sessions; whether it existed.
    pub fn remove_console_account(&self, name: &str, origin: &Origin) -> Result<bool, ServiceError> {
        let existed = self.store().console().remove_account(name)?;
        if existed {
            tracing::info!(%name, "console account removed");
            self.audit_blocking(origin.entry(AuditEvent::AccountRemoved, None, Some(name.into())));
        }
        Ok(existed)
    }

    /// The role of `name` when `password` is its password.
    pub fn check_console_password(&self, name: &str, password: &str) -> Result<Option<Role>, ServiceError> {
        let account = self.store().console().account(name)?;
        let stored = account.as_ref().map_or(dummy_hash(), |a| a.password_hash.as_str());
        let ok = password_matches(stored, password);
        Ok(account.filter(|_| ok).map(|a| a.role))
    }

    /// Signs `actor` in: a new session, stored by its hash; returns the id for the cookie.
    pub fn start_console_session(&self, actor: &str, role: Role, origin: &Origin) -> Result<String, ServiceError> {
        let now = scepd_ca::time::unix_now();
        let console = self.store().console();
        // Expired sessions go now and then: at each sign-in.
        console.sweep_sessions(
            now.saturating_sub(SESSION_IDLE_SECONDS),
            now.saturating_sub(SESSION_MAX_SECONDS),
        )?;
        let id = random_token();
        let session = Session {
            actor: actor.to_string(),
            role,
            created_at: now,
            last_seen: now,
        };
        console.put_session(&session_hash(&id), &session)?;
        self.audit_blocking(origin.entry(AuditEvent::ConsoleSignIn, None, Some(role.as_str().into())));
        Ok(id)
    }

    /// The live session of a cookie's id, if any (an idle or too old one is ended here).
    pub fn console_session(&self, id: &str) -> Result<Option<Session>, ServiceError> {
        let hash = session_hash(id);
        let console = self.store().console();
        let Some(mut session) = console.session(&hash)? else {
            return Ok(None);
        };
        let now = scepd_ca::time::unix_now();
        if now >= session.last_seen + SESSION_IDLE_SECONDS || now >= session.created_at + SESSION_MAX_SECONDS {
            console.remove_session(&hash)?;
            return Ok(None);
        }
        if now >= session.last_seen + TOUCH_EVERY_SECONDS {
            // Only if it still exists: a sign-out or the account's removal may have just ended it.
            if !console.touch_session(&hash, now)? {
                return Ok(None);
            }
            session.last_seen = now;
        }
        Ok(Some(session))
    }

    /// Signs out: the session is gone from the store, on every node.
    pub fn end_console_session(&self, id: &str, origin: &Origin) -> Result<(), ServiceError> {
        self.store().console().remove_session(&session_hash(id))?;
        self.audit_blocking(origin.entry(AuditEvent::ConsoleSignOut, None, None));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse"));
        assert!(!password_matches(&h, "correct horsf"));
        assert!(!password_matches("not a hash", "correct horse"));
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        assert_eq!(csrf_token("a"), csrf_token("a"));
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
    }
}
