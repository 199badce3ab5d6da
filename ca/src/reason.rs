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
    /// unspecified (0).
    pub const UNSPECIFIED: Reason = Reason(CrlReason::Unspecified);
    /// keyCompromise (1).
    pub const KEY_COMPROMISE: Reason = Reason(CrlReason::KeyCompromise);
    /// superseded (4).
    pub const SUPERSEDED: Reason = Reason(CrlReason::Superseded);

    /// Parses an RFC 5280 reason name, in any case (`keycompromise` works too).
    pub fn from_name(name: &str) -> Option<Reason> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, r)| Reason(*r))
    }

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, r)| *r == self.0)
            .map(|(n, _)| *n)
            .unwrap_or("unspecified")
    }

    /// Every RFC 5280 reason name, in code order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        NAMES.iter().map(|(n, _)| *n)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stored and sent as the RFC 5280 name (the strings stores and JSON held before the type).
impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Reason::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown revocation reason {name:?}")))
    }
}
