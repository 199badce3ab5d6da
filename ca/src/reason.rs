//! Revocation reasons (RFC 5280 §5.3.1), by the names operators type.

use x509_cert::ext::pkix::CrlReason;

/// A revocation reason; `as_str` is the RFC 5280 name (`keyCompromise`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason(pub CrlReason);

const NAMES: &[(&str, CrlReason)] = &[
    ("unspecified", CrlReason::Unspecified),
    ("keyCompromise", CrlReason::KeyCompromise),
    ("cACompromise", CrlReason::CaCompromise),
    ("affiliationChanged", CrlReason::AffiliationChanged),
    ("superseded", CrlReason::Superseded),
    ("cessationOfOperation", CrlReason::CessationOfOperation),
    ("certificateHold", CrlReason::CertificateHold),
    ("privilegeWithdrawn", CrlReason::PrivilegeWithdrawn),
    ("aACompromise", CrlReason::AaCompromise),
];

impl Reason {
    pub const UNSPECIFIED: Reason = Reason(CrlReason::Unspecified);
    pub const SUPERSEDED: Reason = Reason(CrlReason::Superseded);

    /// Parses an RFC 5280 reason name, in any case (`keycompromise` works too).
    pub fn from_name(name: &str) -> Option<Reason> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, r)| Reason(*r))
    }

    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, r)| *r == self.0)
            .map(|(n, _)| *n)
            .unwrap_or("unspecified")
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(n, _)| *n)
    }
}
