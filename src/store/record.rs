//! What the store keeps about a certificate.

use scepd_ca::crl::{EncodedRevokedEntry, RevokedEntry};
use scepd_ca::{IssuerId, Reason, Serial};

use super::StoreError;
use serde::{Deserialize, Serialize};

/// Stored status. `expired` is not stored: it is derived from notAfter when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    Active,
    Superseded,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Active => "active",
            CertStatus::Superseded => "superseded",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }

    /// Parses a status name (`active`, `superseded`, `revoked`, `expired`).
    pub fn from_name(name: &str) -> Option<CertStatus> {
        [
            CertStatus::Active,
            CertStatus::Superseded,
            CertStatus::Revoked,
            CertStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// How a certificate came to be issued.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuanceKind {
    /// A PKCSReq for a device with no certificate before.
    #[default]
    New,
    /// A PKCSReq for a device that had a certificate (Apple re-enrolls this way).
    Reenroll,
    /// A RenewalReq signed by the device's current certificate.
    Renewal,
}

impl IssuanceKind {
    /// The stored name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuanceKind::New => "new",
            IssuanceKind::Reenroll => "reenroll",
            IssuanceKind::Renewal => "renewal",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<IssuanceKind> {
        [IssuanceKind::New, IssuanceKind::Reenroll, IssuanceKind::Renewal]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// One issued certificate. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Kept as upper-case hex, as `openssl x509 -serial` prints it.
    pub serial: Serial,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
    pub status: CertStatus,
    pub device_id: Option<String>,
    pub transaction_id: String,
    /// SHA-256 of the CSR, hex: a retry with the same transactionID must carry the same CSR.
    pub csr_sha256: String,
    pub issued_at: u64,
    #[serde(default)]
    pub kind: IssuanceKind,
    /// The certificate that superseded this one.
    #[serde(default)]
    pub superseded_by: Option<Serial>,
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// Kept as the RFC 5280 reason name.
    #[serde(default)]
    pub revocation_reason: Option<Reason>,
    #[serde(default)]
    pub superseded_at: Option<u64>,
    /// Issuance order, assigned by the store (issued_at has only second resolution).
    #[serde(default)]
    pub seq: u64,
    /// The device id is vouched for: it came from a bound challenge, or from a RenewalReq of a
    /// certificate whose device id was. An id read from an unbound request's CSR is not: such a
    /// certificate never causes another one's revocation (see [`Supersede`]).
    #[serde(default)]
    pub device_bound: bool,
    /// The CA that issued it, when not the original one (`DIR/ca.pem`): records from before
    /// CA rollovers existed have none and belong to the original CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<IssuerId>,
    /// The challenge its request carried: none for a RenewalReq (signed by the certificate it
    /// renews) and for records from before this was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<ChallengeUsed>,
}

/// Which kind of challenge let a certificate be issued (the console shows it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChallengeUsed {
    /// The configured static challenge.
    Static,
    /// A one-time challenge minted through `endpoint` (`ndes`, `jamf`, `api`, `console`) for
    /// `minted_by` (an MDM credential's name, or `admin`).
    Minted { endpoint: String, minted_by: String },
    /// None at all: the lab-only `--insecure-no-challenge`.
    Insecure,
}

impl std::fmt::Display for ChallengeUsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChallengeUsed::Static => f.write_str("static challenge"),
            ChallengeUsed::Minted { endpoint, minted_by } => {
                write!(f, "one-time challenge minted through {endpoint} by {minted_by}")
            }
            ChallengeUsed::Insecure => f.write_str("no challenge (--insecure-no-challenge)"),
        }
    }
}

/// A revoked certificate, as the CRL needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedRow {
    pub serial: Serial,
    pub not_after: u64,
    /// The issuing CA, when not the original one (see [`CertRecord::issuer`]).
    pub issuer: Option<IssuerId>,
    /// Its CRL entry (serial, revocation date, reason), encoded once at the revocation.
    pub entry: EncodedRevokedEntry,
}

impl RevokedRow {
    /// The row of `serial`, revoked at `revoked_at` for `reason`.
    pub fn new(
        serial: Serial,
        revoked_at: u64,
        reason: Reason,
        not_after: u64,
        issuer: Option<IssuerId>,
    ) -> Result<RevokedRow, StoreError> {
        let entry = RevokedEntry {
            serial,
            revoked_at,
            reason,
        }
        .encode()
        .map_err(|e| StoreError::Corrupt(format!("CRL entry of {serial}: {e}")))?;
        Ok(RevokedRow {
            serial,
            not_after,
            issuer,
            entry,
        })
    }
}

/// What a revocation found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked(CertRecord),
    /// Already revoked: nothing changed (revocation is idempotent).
    AlreadyRevoked(CertRecord),
    NotFound,
}

impl CertRecord {
    /// A newly issued, active certificate; the caller sets device, transaction and kind.
    pub fn issued(serial: &Serial, subject: String, not_before: u64, not_after: u64, issued_at: u64) -> CertRecord {
        CertRecord {
            serial: *serial,
            subject,
            not_before,
            not_after,
            status: CertStatus::Active,
            device_id: None,
            transaction_id: String::new(),
            csr_sha256: String::new(),
            issued_at,
            kind: IssuanceKind::New,
            superseded_by: None,
            revoked_at: None,
            revocation_reason: None,
            superseded_at: None,
            seq: 0,
            device_bound: false,
            issuer: None,
            challenge: None,
        }
    }

    /// The status as of `now`: an active or superseded certificate past notAfter is expired.
    pub fn status_at(&self, now: u64) -> CertStatus {
        match self.status {
            CertStatus::Active | CertStatus::Superseded if self.not_after <= now => CertStatus::Expired,
            s => s,
        }
    }
}

/// A certificate to record.
#[derive(Clone, Debug)]
pub struct Issuance {
    pub serial: Serial,
    pub record: CertRecord,
    pub der: Vec<u8>,
    /// The one-time challenge this issuance redeems (its keyed hash), consumed in the same
    /// transaction: of two requests carrying it, exactly one gets a certificate.
    pub redeems: Option<ChallengeHash>,
    /// What happens to the device's earlier certificates.
    pub supersede: Supersede,
}

/// What an issuance does to the device's earlier certificates, in its transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Supersede {
    /// A vouched-for device id: its active certificates become `superseded`; with `Some(max)`,
    /// at most `max` valid (active or superseded, unexpired) certificates stay, the oldest
    /// others revoked with reason `superseded`.
    Device { max_valid: Option<u32> },
    /// An unbound request allowed to re-enroll (`unbound_reenrollment = allow`): the active
    /// certificates become `superseded`, none is revoked, now or later.
    DeviceWithoutRevocation,
    /// A RenewalReq whose device id is not vouched for: only the renewed certificate.
    Only(Serial),
    /// Nothing (`unbound_reenrollment = keep-both`, or no device).
    Nothing,
}

/// HMAC-SHA256 of a challenge under the server's challenge key: what the store keeps
/// instead of the challenge.
pub type ChallengeHash = [u8; 32];

/// A minted one-time challenge. Times are Unix seconds on the steady clock
/// (`scepd_ca::time::steady_unix_now`): the system clock when the node started plus the time
/// elapsed since, so a step of the system clock does not change a challenge's lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeRecord {
    pub expires_at: u64,
    pub created_at: u64,
    /// Who minted it: an MDM client's name, or `admin`.
    pub minted_by: String,
    /// Which endpoint minted it (`ndes`, `jamf`, `api`, `cli`).
    pub endpoint: String,
    /// Binding: the certificate will belong to this device.
    pub device_id: Option<String>,
    /// Binding: the CSR's subject CN must equal this.
    pub subject_cn: Option<String>,
    /// Binding: one of the CSR's subjectAltName values must equal this.
    pub san: Option<String>,
    /// Jamf's payloadIdentifier, recorded from its webhook.
    pub payload_identifier: Option<String>,
    /// Add the Okta Device Access extension to the certificate this challenge redeems for
    /// (overrides the server's `okta_device_access` when set).
    #[serde(default)]
    pub okta_device_access: Option<bool>,
    /// Set when redeemed; the record stays (as a tombstone) until it expires.
    pub redeemed_at: Option<u64>,
}

/// Why a challenge cannot be redeemed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeState {
    Usable,
    Used,
    Expired,
}

impl ChallengeRecord {
    pub fn state_at(&self, now: u64) -> ChallengeState {
        if self.redeemed_at.is_some() {
            ChallengeState::Used
        } else if self.expires_at <= now {
            ChallengeState::Expired
        } else {
            ChallengeState::Usable
        }
    }
}

/// A named MDM credential; the password is kept only as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmClient {
    pub name: String,
    /// HMAC-SHA256 of the password under the server's challenge key, hex.
    pub password_hmac: String,
    pub created_at: u64,
    /// TTL of the challenges this client mints, when it differs from the server default.
    pub challenge_ttl_seconds: Option<u64>,
}

// `AlreadyIssued` is the large one and the rare one (a retried transaction): boxing it would
// cost every caller a box to spare a few bytes once per issuance.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuanceOutcome {
    /// Recorded; the device's earlier active certificates are now superseded (and some revoked,
    /// under `max_valid_per_device`).
    Stored {
        superseded: Vec<Serial>,
        revoked: Vec<Serial>,
    },
    /// The transactionID was already issued for the same CSR: this is that certificate.
    AlreadyIssued(CertRecord, Vec<u8>),
    /// The transactionID was already used for a different CSR.
    TransactionConflict,
    SerialTaken,
    /// The challenge was redeemed (or expired, or swept) since it was checked: a concurrent
    /// request won. Nothing was stored.
    ChallengeUnavailable,
}

/// Which certificates to list.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    pub device_id: Option<String>,
    pub status: Option<CertStatus>,
}

/// What an audit-trail entry records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditEvent {
    #[default]
    #[serde(rename = "certificate.issued")]
    CertificateIssued,
    #[serde(rename = "certificate.revoked")]
    CertificateRevoked,
    /// An earlier certificate of the device was superseded (detail: by which, and whether the
    /// request vouched for the device).
    #[serde(rename = "certificate.superseded")]
    CertificateSuperseded,
    #[serde(rename = "challenge.minted")]
    ChallengeMinted,
    #[serde(rename = "challenge.redeemed")]
    ChallengeRedeemed,
    #[serde(rename = "challenge.rejected")]
    ChallengeRejected,
    #[serde(rename = "mdm.added")]
    MdmAdded,
    #[serde(rename = "mdm.removed")]
    MdmRemoved,
    #[serde(rename = "mdm.rotated")]
    MdmRotated,
    #[serde(rename = "auth.failed")]
    AuthFailed,
    /// A next CA was prepared (`scepd ca rollover`; detail: its issuer id).
    #[serde(rename = "ca.rollover")]
    CaRollover,
    /// An externally signed next CA certificate was installed (`ca install-cert --next`).
    #[serde(rename = "ca.installed")]
    CaInstalled,
    /// The next CA's activation was recorded (detail: issuer id and moment).
    #[serde(rename = "ca.activated")]
    CaActivated,
    /// A retired CA whose certificates had all expired was removed (detail: its issuer id).
    #[serde(rename = "ca.removed")]
    CaRemoved,
    /// A webhook endpoint was added (detail: its id and URL).
    #[serde(rename = "webhook.added")]
    WebhookAdded,
    /// A webhook endpoint was removed (detail: its id).
    #[serde(rename = "webhook.removed")]
    WebhookRemoved,
    /// A webhook endpoint's secret was rotated (detail: its id).
    #[serde(rename = "webhook.rotated")]
    WebhookRotated,
    /// A failed webhook delivery was sent again by hand (detail: the delivery's id).
    #[serde(rename = "webhook.retried")]
    WebhookRetried,
    /// A console account was created (detail: its role) or removed.
    #[serde(rename = "account.added")]
    AccountAdded,
    #[serde(rename = "account.removed")]
    AccountRemoved,
    /// Someone signed in to (or out of) the web console.
    #[serde(rename = "console.signin")]
    ConsoleSignIn,
    #[serde(rename = "console.signout")]
    ConsoleSignOut,
}

impl AuditEvent {
    /// Every event, for listings and the PostgreSQL store's text column.
    pub const ALL: [AuditEvent; 22] = [
        AuditEvent::CertificateIssued,
        AuditEvent::CertificateRevoked,
        AuditEvent::CertificateSuperseded,
        AuditEvent::ChallengeMinted,
        AuditEvent::ChallengeRedeemed,
        AuditEvent::ChallengeRejected,
        AuditEvent::MdmAdded,
        AuditEvent::MdmRemoved,
        AuditEvent::MdmRotated,
        AuditEvent::AuthFailed,
        AuditEvent::CaRollover,
        AuditEvent::CaInstalled,
        AuditEvent::CaActivated,
        AuditEvent::CaRemoved,
        AuditEvent::WebhookAdded,
        AuditEvent::WebhookRemoved,
        AuditEvent::WebhookRotated,
        AuditEvent::WebhookRetried,
        AuditEvent::AccountAdded,
        AuditEvent::AccountRemoved,
        AuditEvent::ConsoleSignIn,
        AuditEvent::ConsoleSignOut,
    ];

    /// The stored name (`certificate.issued`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::CertificateIssued => "certificate.issued",
            AuditEvent::CertificateRevoked => "certificate.revoked",
            AuditEvent::CertificateSuperseded => "certificate.superseded",
            AuditEvent::ChallengeMinted => "challenge.minted",
            AuditEvent::ChallengeRedeemed => "challenge.redeemed",
            AuditEvent::ChallengeRejected => "challenge.rejected",
            AuditEvent::MdmAdded => "mdm.added",
            AuditEvent::MdmRemoved => "mdm.removed",
            AuditEvent::MdmRotated => "mdm.rotated",
            AuditEvent::AuthFailed => "auth.failed",
            AuditEvent::CaRollover => "ca.rollover",
            AuditEvent::CaInstalled => "ca.installed",
            AuditEvent::CaActivated => "ca.activated",
            AuditEvent::CaRemoved => "ca.removed",
            AuditEvent::WebhookAdded => "webhook.added",
            AuditEvent::WebhookRemoved => "webhook.removed",
            AuditEvent::WebhookRotated => "webhook.rotated",
            AuditEvent::WebhookRetried => "webhook.retried",
            AuditEvent::AccountAdded => "account.added",
            AuditEvent::AccountRemoved => "account.removed",
            AuditEvent::ConsoleSignIn => "console.signin",
            AuditEvent::ConsoleSignOut => "console.signout",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<AuditEvent> {
        AuditEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// One audit-trail entry. Never holds a secret (no challenge, password, token or key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Assigned by the store: the order of the trail.
    #[serde(default)]
    pub seq: u64,
    pub at: u64,
    pub event: AuditEvent,
    /// Who: a client address, an MDM client's name, `admin`, or `policy`.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<Serial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// A revocation or rejection reason, an issuance kind, an endpoint…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A signed CRL as published in the store, so that every node serves the same, newest one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCrl {
    pub number: u64,
    /// The store's revocation epoch it reflects.
    pub epoch: u64,
    pub this_update: u64,
    pub next_update: u64,
    #[serde(with = "base64_bytes")]
    pub der: Vec<u8>,
}

/// Bytes as one base64 string in a JSON value. A CRL of 100,000 entries is about 5 MB; as a JSON
/// array of numbers (serde's default for `Vec<u8>`, what stores before issue 16 hold, still
/// read) it was three times that, and reading and writing it took most of a CRL rebuild.
mod base64_bytes {
    use base64::Engine;
    use serde::{de, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        // Written as it is encoded: no copy of the whole text first.
        serializer.collect_str(&base64::display::Base64Display::new(
            bytes,
            &base64::engine::general_purpose::STANDARD,
        ))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("base64 text or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(byte) = seq.next_element()? {
                    bytes.push(byte);
                }
                Ok(bytes)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The last CRL number handed out and the newest CRL published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrlState {
    pub last_number: u64,
    pub published: Option<StoredCrl>,
}

/// One item of a whole-store copy (`scepd store copy`): everything a store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreItem {
    Certificate(CertRecord, Vec<u8>),
    Challenge(ChallengeHash, ChallengeRecord),
    MdmClient(MdmClient),
    Audit(AuditEntry),
    /// A counter: `revocation_epoch`, `crl_number`, `cert_seq` or `audit_seq`.
    Counter(String, u64),
    Crl(StoredCrl),
    /// A cluster identity value (see [`super::Store::bind_identity`]).
    Identity(String, String),
    /// A CA generation after the original one (a rollover).
    CaGeneration(super::CaGenerationRecord),
    /// The CRL state of a CA generation after the original one.
    IssuerCrl(super::IssuerCrl),
    /// A webhook endpoint, its secrets sealed as they are stored.
    WebhookEndpoint(super::outbox::WebhookEndpoint),
    /// A delivery of the outbox, whatever its status (oldest first).
    WebhookDelivery(super::outbox::Delivery),
    /// Something announced once, and when (Unix seconds).
    Announced(super::outbox::Announcement, u64),
    /// A web console account (sessions are not copied: they end with the old store).
    ConsoleAccount(super::console::Account),
}

#[cfg(test)]
mod tests {
    use super::StoredCrl;

    /// A CRL's DER is written as base64 text, and a value written before that (an array of
    /// numbers) still reads.
    #[test]
    fn a_stored_crl_is_base64_and_the_earlier_array_form_still_reads() {
        let crl = StoredCrl {
            number: 7,
            epoch: 3,
            this_update: 10,
            next_update: 20,
            der: vec![0x30, 0x03, 0x02, 0x01, 0xff],
        };
        let written = serde_json::to_string(&crl).unwrap();
        assert!(written.contains(r#""der":"MAMCAf8=""#), "{written}");
        assert_eq!(serde_json::from_str::<StoredCrl>(&written).unwrap(), crl);
        let earlier = r#"{"number":7,"epoch":3,"this_update":10,"next_update":20,"der":[48,3,2,1,255]}"#;
        assert_eq!(serde_json::from_str::<StoredCrl>(earlier).unwrap(), crl);
    }
}
