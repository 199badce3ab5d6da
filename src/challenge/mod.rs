//! Challenge passwords: what a PKCSReq must carry to be issued a certificate.
//!
//! Dynamic one-time challenges, minted per device for MDMs ([`key`] mints and hashes them,
//! [`binding`] checks what they are bound to; the store redeems them atomically), the static
//! challenge (one shared value, for MDMs that cannot fetch a fresh one, such as Kandji's SCEP
//! library item) and the lab-only "no challenge" mode.

pub mod binding;
pub mod key;

use subtle::ConstantTimeEq;

use crate::store::ChallengeHash;

/// How PKCSReq challenges are checked.
#[derive(Clone)]
pub struct ChallengePolicy {
    /// SHA-256 of the static challenge: the plaintext is not kept in memory longer than start-up.
    static_sha256: Option<[u8; 32]>,
    /// Lab only: issue without any challenge.
    insecure_no_challenge: bool,
    key: std::sync::Arc<key::ChallengeKey>,
}

impl std::fmt::Debug for ChallengePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengePolicy")
            .field("static", &self.static_sha256.is_some())
            .field("insecure_no_challenge", &self.insecure_no_challenge)
            .finish()
    }
}

/// Why a challenge was refused (for logs and metrics; the client always gets the same answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeRejection {
    Missing,
    Unknown,
    Expired,
    Used,
    Mismatch,
    /// Unbound, for a device that already has a valid certificate, under
    /// `unbound_reenrollment = refuse`.
    UnboundReenrollment,
}

impl ChallengeRejection {
    pub fn reason(self) -> &'static str {
        match self {
            ChallengeRejection::Missing => "missing",
            ChallengeRejection::Unknown => "unknown",
            ChallengeRejection::Expired => "expired",
            ChallengeRejection::Used => "used",
            ChallengeRejection::Mismatch => "mismatch",
            ChallengeRejection::UnboundReenrollment => "unbound_reenrollment",
        }
    }
}

/// What a presented challenge is, before the store is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presented {
    /// The static challenge.
    Static,
    /// No challenge, and the lab-only mode allows that.
    Insecure,
    /// Possibly a dynamic challenge: the store keys to look it up by.
    Dynamic(DynamicKeys),
    Missing,
}

/// Where a presented dynamic challenge may be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DynamicKeys {
    /// Its key as minted now (ordered by mint time).
    pub ordered: ChallengeHash,
    /// Its key if an earlier build minted it, before keys were ordered: such challenges stay
    /// redeemable after an upgrade until they expire.
    pub unordered: ChallengeHash,
}

fn sha256(s: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

impl ChallengePolicy {
    pub fn new(static_challenge: Option<&str>, insecure_no_challenge: bool, key: key::ChallengeKey) -> ChallengePolicy {
        ChallengePolicy {
            static_sha256: static_challenge.filter(|s| !s.is_empty()).map(sha256),
            insecure_no_challenge,
            key: std::sync::Arc::new(key),
        }
    }

    pub fn key(&self) -> &key::ChallengeKey {
        &self.key
    }

    pub fn insecure(&self) -> bool {
        self.insecure_no_challenge
    }

    /// Classifies the challengePassword of a CSR. The static challenge is compared as SHA-256
    /// digests in constant time, so neither its content nor its length leaks through timing;
    /// anything else may be a dynamic challenge.
    pub fn classify(&self, presented: Option<&str>) -> Presented {
        match presented.filter(|p| !p.is_empty()) {
            Some(p) if self.static_sha256.is_some_and(|s| bool::from(sha256(p).ct_eq(&s))) => Presented::Static,
            Some(p) => Presented::Dynamic(self.key.keys_of(p)),
            None if self.insecure_no_challenge => Presented::Insecure,
            None => Presented::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(static_challenge: Option<&str>, insecure: bool) -> ChallengePolicy {
        ChallengePolicy::new(static_challenge, insecure, key::ChallengeKey::new(b"test"))
    }

    #[test]
    fn static_dynamic_and_missing() {
        let p = policy(Some("s3cret"), false);
        assert_eq!(p.classify(Some("s3cret")), Presented::Static);
        assert_eq!(
            p.classify(Some("s3cre")),
            Presented::Dynamic(DynamicKeys {
                ordered: p.key().hash_challenge("s3cre"),
                unordered: p.key().hash_unordered_challenge("s3cre"),
            })
        );
        assert_eq!(p.classify(None), Presented::Missing);
        assert_eq!(p.classify(Some("")), Presented::Missing);
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn insecure_mode_only_covers_a_missing_challenge() {
        let p = policy(None, true);
        assert_eq!(p.classify(None), Presented::Insecure);
        assert!(matches!(p.classify(Some("x")), Presented::Dynamic(_)));
    }
}
