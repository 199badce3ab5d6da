//! Challenge passwords: what a PKCSReq must carry to be issued a certificate.
//!
//! For now the static challenge (one shared value, for MDMs that cannot fetch a fresh one,
//! such as Kandji's SCEP library item) and the lab-only "no challenge" mode.

use subtle::ConstantTimeEq;

/// How PKCSReq challenges are checked.
#[derive(Clone, Default)]
pub struct ChallengePolicy {
    /// SHA-256 of the static challenge: the plaintext is not kept in memory longer than start-up.
    static_sha256: Option<[u8; 32]>,
    /// Lab only: issue without any challenge.
    insecure_no_challenge: bool,
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
    NoneConfigured,
}

impl ChallengeRejection {
    pub fn reason(self) -> &'static str {
        match self {
            ChallengeRejection::Missing => "missing",
            ChallengeRejection::Unknown => "unknown",
            ChallengeRejection::NoneConfigured => "none_configured",
        }
    }
}

/// What let a request through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeGrant {
    Static,
    Insecure,
}

fn sha256(s: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref().try_into().expect("32 bytes")
}

impl ChallengePolicy {
    pub fn new(static_challenge: Option<&str>, insecure_no_challenge: bool) -> ChallengePolicy {
        ChallengePolicy {
            static_sha256: static_challenge.filter(|s| !s.is_empty()).map(sha256),
            insecure_no_challenge,
        }
    }

    pub fn insecure(&self) -> bool {
        self.insecure_no_challenge
    }

    /// Checks the challengePassword of a CSR. Compared as SHA-256 digests in constant time, so
    /// neither the content nor the length of the static challenge leaks through timing.
    pub fn check(&self, presented: Option<&str>) -> Result<ChallengeGrant, ChallengeRejection> {
        if let Some(expected) = &self.static_sha256 {
            return match presented {
                Some(p) if bool::from(sha256(p).ct_eq(expected)) => Ok(ChallengeGrant::Static),
                _ if self.insecure_no_challenge => Ok(ChallengeGrant::Insecure),
                Some(_) => Err(ChallengeRejection::Unknown),
                None => Err(ChallengeRejection::Missing),
            };
        }
        if self.insecure_no_challenge {
            return Ok(ChallengeGrant::Insecure);
        }
        Err(ChallengeRejection::NoneConfigured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_challenge() {
        let p = ChallengePolicy::new(Some("s3cret"), false);
        assert_eq!(p.check(Some("s3cret")), Ok(ChallengeGrant::Static));
        assert_eq!(p.check(Some("s3cre")), Err(ChallengeRejection::Unknown));
        assert_eq!(p.check(None), Err(ChallengeRejection::Missing));
        assert!(!format!("{p:?}").contains("s3cret"));
    }

    #[test]
    fn nothing_configured_refuses_and_insecure_accepts() {
        assert_eq!(ChallengePolicy::new(None, false).check(Some("x")), Err(ChallengeRejection::NoneConfigured));
        assert_eq!(ChallengePolicy::new(None, true).check(None), Ok(ChallengeGrant::Insecure));
        assert_eq!(ChallengePolicy::new(Some(""), false).check(Some("")), Err(ChallengeRejection::NoneConfigured));
    }
}
