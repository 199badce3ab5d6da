//! Webhook endpoints and the outbox of deliveries, as the store keeps them.
//!
//! An event is written to the outbox in the same transaction as what caused it (an issuance,
//! a revocation): one [`Delivery`] per endpoint subscribed to its type, fanned out by
//! [`fan_out`] inside that transaction. A crash therefore never loses an event, and no event
//! is sent for something that did not commit. Delivery nodes claim due deliveries through a
//! lease ([`WebhookStore::claim_deliveries`]): one node at a time, and another one once the
//! lease of a node that died has run out.

use scepd_ca::{Reason, Serial};
use serde::{Deserialize, Serialize};

use super::{CertRecord, IssuanceKind, StoreError};

/// An endpoint's id: `wh_` and 16 letters or digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(String);

impl WebhookId {
    pub fn generate() -> WebhookId {
        WebhookId(format!("wh_{}", crate::challenge::key::random_alphanumeric(16)))
    }

    /// Accepts what [`WebhookId::generate`] makes (and nothing that could escape a path).
    pub fn parse(text: &str) -> Option<WebhookId> {
        let rest = text.strip_prefix("wh_")?;
        (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| WebhookId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WebhookId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A delivery's id: `dl_` and 20 letters or digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    pub fn generate() -> DeliveryId {
        DeliveryId(format!("dl_{}", crate::challenge::key::random_alphanumeric(20)))
    }

    pub fn parse(text: &str) -> Option<DeliveryId> {
        let rest = text.strip_prefix("dl_")?;
        (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| DeliveryId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an endpoint can subscribe to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "certificate.issued")]
    CertificateIssued,
    #[serde(rename = "certificate.superseded")]
    CertificateSuperseded,
    #[serde(rename = "certificate.revoked")]
    CertificateRevoked,
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring,
    #[serde(rename = "ca.expiring")]
    CaExpiring,
    #[serde(rename = "challenge.rejected")]
    ChallengeRejected,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::CertificateIssued,
        EventType::CertificateSuperseded,
        EventType::CertificateRevoked,
        EventType::CertificateExpiring,
        EventType::CaExpiring,
        EventType::ChallengeRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CertificateIssued => "certificate.issued",
            EventType::CertificateSuperseded => "certificate.superseded",
            EventType::CertificateRevoked => "certificate.revoked",
            EventType::CertificateExpiring => "certificate.expiring",
            EventType::CaExpiring => "ca.expiring",
            EventType::ChallengeRejected => "challenge.rejected",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// What an event says about a certificate: nothing secret (no challenge, password, token or key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    pub serial: Serial,
    pub device_id: Option<String>,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
}

impl From<&CertRecord> for CertFacts {
    fn from(r: &CertRecord) -> CertFacts {
        CertFacts {
            serial: r.serial,
            device_id: r.device_id.clone(),
            subject: r.subject.clone(),
            not_before: r.not_before,
            not_after: r.not_after,
        }
    }
}

/// Who revoked a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevokedBy {
    /// An operator (the admin API or CLI).
    Admin,
    /// scepd's lifecycle policy (`max_valid_per_device`, `revoke_superseded_after`).
    Policy,
}

/// An event, as the outbox keeps it until delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "certificate.issued")]
    CertificateIssued { cert: CertFacts, kind: IssuanceKind },
    #[serde(rename = "certificate.superseded")]
    CertificateSuperseded { cert: CertFacts, superseded_by: Serial },
    #[serde(rename = "certificate.revoked")]
    CertificateRevoked {
        cert: CertFacts,
        reason: Reason,
        by: RevokedBy,
    },
    /// An active certificate's notAfter came within the configured lead time (once per
    /// certificate).
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring { cert: CertFacts },
    /// The issuing CA's notAfter came within the lead time (once per CA certificate).
    #[serde(rename = "ca.expiring")]
    CaExpiring {
        subject: String,
        not_after: u64,
        /// SHA-256 of the CA certificate's DER, hex.
        sha256: String,
    },
    /// A summary of the challenges one node refused over a period (at most one a minute per
    /// node): counts by reason and by client address, never a challenge.
    #[serde(rename = "challenge.rejected")]
    ChallengeRejected {
        since: u64,
        until: u64,
        by_reason: std::collections::BTreeMap<String, u64>,
        by_source: std::collections::BTreeMap<String, u64>,
    },
}

impl Event {
    /// The event of `record`'s revocation `by` whom.
    pub fn revoked(record: &CertRecord, by: RevokedBy) -> Event {
        Event::CertificateRevoked {
            cert: CertFacts::from(record),
            reason: record.revocation_reason.unwrap_or(Reason::UNSPECIFIED),
            by,
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            Event::CertificateIssued { .. } => EventType::CertificateIssued,
            Event::CertificateSuperseded { .. } => EventType::CertificateSuperseded,
            Event::CertificateRevoked { .. } => EventType::CertificateRevoked,
            Event::CertificateExpiring { .. } => EventType::CertificateExpiring,
            Event::CaExpiring { .. } => EventType::CaExpiring,
            Event::ChallengeRejected { .. } => EventType::ChallengeRejected,
        }
    }

    /// The certificate the event is about, if it is about one.
    pub fn cert(&self) -> Option<&CertFacts> {
        match self {
            Event::CertificateIssued { cert, .. }
            | Event::CertificateSuperseded { cert, .. }
            | Event::CertificateRevoked { cert, .. }
            | Event::CertificateExpiring { cert } => Some(cert),
            Event::CaExpiring { .. } | Event::ChallengeRejected { .. } => None,
        }
    }
}

/// A signing secret, sealed (AES-256-GCM) as the store keeps it: it must stay usable for HMAC,
/// so it cannot be hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
    /// A rotated-out secret keeps signing until then (Unix seconds); the current one has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// What the outbox records as announced once, so that no restart or other node repeats it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// `certificate.expiring` was written for this certificate.
    Expiring(Serial),
    /// [`WebhookStore::announce_once`] wrote the event of this key (e.g. `ca.expiring:…`).
    Once(String),
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: WebhookId,
    pub url: String,
    /// The subscribed types; empty: all of them.
    #[serde(default)]
    pub events: Vec<EventType>,
    #[serde(default)]
    pub description: Option<String>,
    /// `http://` to a host that is not loopback was allowed by the operator.
    #[serde(default)]
    pub allow_http: bool,
    pub created_at: u64,
    /// The current secret first, then rotated-out ones still in their overlap.
    pub secrets: Vec<SealedSecret>,
}

impl WebhookEndpoint {
    pub fn wants(&self, t: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&t)
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Dead-lettered: every attempt failed for the whole retry period (or the endpoint is gone).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn from_name(name: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// One event for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    /// The `webhook-id` header: the same on every attempt, and for every endpoint.
    pub event_id: String,
    pub endpoint: WebhookId,
    pub event: Event,
    /// When the cause committed (Unix seconds): the body's timestamp.
    pub occurred_at: u64,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: u64,
    /// Claimed by a node until then (Unix seconds; 0: not claimed).
    pub lease_until: u64,
    #[serde(default)]
    pub lease_owner: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_status: Option<u16>,
    #[serde(default)]
    pub delivered_at: Option<u64>,
}

/// The deliveries for `events`, one per subscribed endpoint; each event gets one id, which
/// every endpoint sees.
pub fn fan_out(endpoints: &[WebhookEndpoint], events: &[Event], now: u64) -> Vec<Delivery> {
    let mut out = Vec::new();
    for event in events {
        let event_id = format!("msg_{}", crate::challenge::key::random_alphanumeric(22));
        for endpoint in endpoints.iter().filter(|e| e.wants(event.event_type())) {
            out.push(Delivery {
                id: DeliveryId::generate(),
                event_id: event_id.clone(),
                endpoint: endpoint.id.clone(),
                event: event.clone(),
                occurred_at: now,
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                lease_until: 0,
                lease_owner: None,
                last_error: None,
                last_status: None,
                delivered_at: None,
            });
        }
    }
    out
}

/// A lease on due deliveries, for [`WebhookStore::claim_deliveries`].
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub now: u64,
    pub lease_until: u64,
    pub limit: usize,
}

/// Pending deliveries and the oldest one's event time, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub pending: u64,
    pub oldest_pending: Option<u64>,
}

/// The endpoints and the outbox, on both stores.
pub trait WebhookStore {
    /// Adds an endpoint (its id is new).
    fn add_webhook(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError>;

    /// Replaces `previous` by `new` (the same id) when the stored endpoint is still exactly
    /// `previous`; false (nothing written) when it is gone or was changed meanwhile.
    fn replace_webhook(&self, previous: &WebhookEndpoint, new: &WebhookEndpoint) -> Result<bool, StoreError>;

    /// Removes an endpoint; whether it existed. Its pending deliveries fail when due.
    fn remove_webhook(&self, id: &WebhookId) -> Result<bool, StoreError>;

    /// Every endpoint, by id.
    fn webhooks(&self) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// Writes events to the outbox in a transaction of their own (what no other write caused).
    fn enqueue_events(&self, events: &[Event], now: u64) -> Result<(), StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` whose lease has run out, for
    /// `owner` until `lease_until`: of several nodes claiming at once, each delivery goes to one.
    fn claim_deliveries(&self, claim: &Claim<'_>) -> Result<Vec<Delivery>, StoreError>;

    /// Records attempts' outcomes (each delivery as updated) in one transaction, releasing the
    /// leases; returns how many `owner` still held (one whose lease ran out and another node
    /// took over is left as that node has it).
    fn finish_deliveries(&self, deliveries: &[Delivery], owner: &str) -> Result<usize, StoreError>;

    /// [`WebhookStore::finish_deliveries`] for one: whether `owner` still held it.
    fn finish_delivery(&self, delivery: &Delivery, owner: &str) -> Result<bool, StoreError> {
        Ok(self.finish_deliveries(std::slice::from_ref(delivery), owner)? == 1)
    }

    /// Deliveries, newest first, at most `limit`; only those of `status` when given.
    fn deliveries(&self, status: Option<DeliveryStatus>, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// Makes a delivery (a failed one, usually) pending and due at `now`; false when unknown.
    fn retry_delivery(&self, id: &DeliveryId, now: u64) -> Result<bool, StoreError>;

    fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;

    /// In one transaction: up to `limit` active certificates whose notAfter is after `now` and
    /// at most `horizon`, not yet announced, are marked announced and get a
    /// `certificate.expiring` event; returns how many. Nothing happens while no endpoint
    /// subscribes to the event (a later endpoint still hears of them). The mark is what keeps
    /// restarts and other nodes from announcing a certificate twice.
    fn emit_expiring(&self, now: u64, horizon: u64, limit: usize) -> Result<usize, StoreError>;

    /// Writes `event` unless `key` was announced before (then nothing, and false), recording
    /// `key` in the same transaction. Nothing happens while no endpoint subscribes to the
    /// event's type.
    fn announce_once(&self, key: &str, event: &Event, now: u64) -> Result<bool, StoreError>;

    /// Deletes up to `limit` delivered deliveries whose event happened before `before` (the
    /// outbox stays bounded); pending and dead-lettered ones stay. Returns how many.
    fn prune_deliveries(&self, before: u64, limit: usize) -> Result<usize, StoreError>;
}

/// Whether any endpoint wants `certificate.expiring`.
pub fn wants_expiring(endpoints: &[WebhookEndpoint]) -> bool {
    endpoints.iter().any(|e| e.wants(EventType::CertificateExpiring))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(events: Vec<EventType>) -> WebhookEndpoint {
        WebhookEndpoint {
            id: WebhookId::generate(),
            url: "https://example.com/hook".into(),
            events,
            description: None,
            allow_http: false,
            created_at: 0,
            secrets: Vec::new(),
        }
    }

    #[test]
    fn one_event_id_per_event_and_only_to_subscribers() {
        let serial: Serial = "41".repeat(16).parse().unwrap();
        let record = CertRecord::issued(&serial, "CN=x".into(), 1, 2, 1);
        let issued = Event::CertificateIssued {
            cert: CertFacts::from(&record),
            kind: IssuanceKind::New,
        };
        let revoked = Event::CertificateRevoked {
            cert: CertFacts::from(&record),
            reason: Reason::KEY_COMPROMISE,
            by: RevokedBy::Admin,
        };
        let endpoints = [endpoint(vec![]), endpoint(vec![EventType::CertificateRevoked])];
        let out = fan_out(&endpoints, &[issued, revoked], 7);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].endpoint, endpoints[0].id);
        assert_ne!(out[0].event_id, out[1].event_id);
        assert_eq!(out[1].event_id, out[2].event_id);
        assert!(out
            .iter()
            .all(|d| d.next_attempt_at == 7 && d.status == DeliveryStatus::Pending));
    }

    #[test]
    fn ids_parse_only_what_is_generated() {
        assert!(WebhookId::parse(WebhookId::generate().as_str()).is_some());
        assert!(WebhookId::parse("wh_../x").is_none());
        assert!(DeliveryId::parse("dl_").is_none());
        assert_eq!(
            EventType::from_name("certificate.revoked"),
            Some(EventType::CertificateRevoked)
        );
    }
}
