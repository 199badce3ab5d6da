//! Webhooks for MDMs and SIEMs: endpoints, their signing secrets, and the outbox's delivery.
//!
//! Events are written by the store in the transaction of what caused them (see
//! `store::outbox`); this module manages the endpoints (`scepd webhook ...`, the admin API)
//! and runs the delivery worker ([`worker`]) in `scepd serve`. The format is Standard
//! Webhooks (standardwebhooks.com).

pub mod client;
pub mod payload;
pub mod secret;
pub mod target;
pub mod worker;

/// Starts the delivery worker of `scepd serve` and hands the endpoints to the admin API.
pub fn start(
    service: &Arc<crate::service::ScepService>,
    key: &[u8; 32],
    settings: WebhookSettings,
) -> Result<(), client::TlsConfigError> {
    let client = client::DeliveryClient::new(
        client::ClientSettings {
            connect_timeout: std::time::Duration::from_secs(settings.connect_timeout),
            response_timeout: std::time::Duration::from_secs(settings.response_timeout),
        },
        settings.ca_file.as_deref(),
    )?;
    // The issuing CA changes with a rollover: `ca.expiring` asks which one it is at each scan.
    // A weak reference, since the service holds the webhooks.
    let issuing = Arc::downgrade(service);
    let webhooks = Arc::new(
        Webhooks::new(Arc::clone(service.store()), key, settings).with_ca(move || {
            let service = issuing.upgrade()?;
            let authority = service.authority();
            let ca = &authority.ca;
            Some(CaFacts {
                subject: ca.subject().to_string(),
                not_after: ca.not_after(),
                sha256: hex::encode(ca.fingerprint_sha256()),
            })
        }),
    );
    service.set_webhooks(Arc::clone(&webhooks));
    let metrics = service.metrics_arc();
    // Every result exists from the start (at 0), so that alert rules see the series.
    for result in ["delivered", "failed", "dead"] {
        metrics.webhook_deliveries.with_label_values(&[result]);
    }
    tokio::spawn(worker::run(webhooks, Arc::new(client), metrics));
    Ok(())
}

use std::sync::Arc;

use crate::store::outbox::{Delivery, DeliveryId, DeliveryStatus, EventType, SealedSecret, WebhookEndpoint, WebhookId};
use crate::store::{Store, StoreError};
use secret::{SecretBox, SecretError, SigningSecret};
use target::{Target, TargetError};

/// Errors of the webhook layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("unknown event type {0:?}; one of: certificate.issued, certificate.superseded, certificate.revoked, certificate.expiring, ca.expiring, challenge.rejected")]
    UnknownEvent(String),
    #[error("description: at most 200 characters, no control characters")]
    BadDescription,
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The endpoint kept being changed by others while it was rotated.
    #[error("the endpoint kept changing while it was rotated; try again")]
    Contended,
}

/// Settings of webhook delivery (`webhook_*` configuration keys).
#[derive(Clone, Debug, serde::Serialize)]
pub struct WebhookSettings {
    /// First retry delay, seconds; it doubles each time (with jitter), up to an hour.
    #[serde(rename = "webhook_retry_initial", serialize_with = "seconds")]
    pub retry_initial: u64,
    /// How long a delivery is retried before it is dead-lettered, seconds.
    #[serde(rename = "webhook_retry_for", serialize_with = "seconds")]
    pub retry_for: u64,
    /// How long a rotated-out secret keeps signing, seconds.
    #[serde(rename = "webhook_rotation_overlap", serialize_with = "seconds")]
    pub rotation_overlap: u64,
    /// `certificate.expiring` (and `ca.expiring`) is sent this long before notAfter, seconds.
    #[serde(rename = "webhook_expiring_lead", serialize_with = "seconds")]
    pub expiring_lead: u64,
    /// Each node sends at most one `challenge.rejected` summary per this many seconds.
    #[serde(rename = "webhook_rejection_summary_interval", serialize_with = "seconds")]
    pub rejection_summary_interval: u64,
    /// Trust only these CA certificates (PEM) for https:// receivers instead of the system's.
    #[serde(rename = "webhook_ca_file", skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Fixed: not configuration keys.
    #[serde(skip)]
    pub connect_timeout: u64,
    #[serde(skip)]
    pub response_timeout: u64,
}

/// Durations print as the configuration file takes them: `"86400s"`.
fn seconds<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v}s"))
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            retry_initial: 5,
            retry_for: 86_400,
            rotation_overlap: 86_400,
            expiring_lead: 30 * 86_400,
            rejection_summary_interval: 60,
            ca_file: None,
            connect_timeout: 5,
            response_timeout: 10,
        }
    }
}

/// A new endpoint, as `webhook add` asks for it.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
}

/// The issuing CA, as `ca.expiring` describes it.
#[derive(Clone, Debug)]
pub struct CaFacts {
    pub subject: String,
    pub not_after: u64,
    /// SHA-256 of its DER, hex.
    pub sha256: String,
}

/// Rotations of one endpoint tried while others change it at the same moment.
const ROTATION_ATTEMPTS: usize = 5;

type CaSource = Box<dyn Fn() -> Option<CaFacts> + Send + Sync>;

/// Client addresses named one by one in a `challenge.rejected` summary; the rest are counted
/// under `other` (a spray from many addresses must not make the event unbounded).
const MAX_SOURCES: usize = 20;

/// Challenges refused since the last `challenge.rejected` summary of this node.
#[derive(Default)]
struct RejectionTally {
    since: u64,
    by_reason: std::collections::BTreeMap<String, u64>,
    by_source: std::collections::BTreeMap<String, u64>,
}

/// Endpoint management and what the worker needs: the store and the secrets' key.
pub struct Webhooks {
    store: Arc<dyn Store>,
    secrets: SecretBox,
    pub settings: WebhookSettings,
    ca: Option<CaSource>,
    rejections: std::sync::Mutex<RejectionTally>,
}

impl Webhooks {
    /// `key`: the secrets' sealing key (derived from the data directory's challenge key).
    pub fn new(store: Arc<dyn Store>, key: &[u8; 32], settings: WebhookSettings) -> Webhooks {
        Webhooks {
            store,
            secrets: SecretBox::new(key),
            settings,
            ca: None,
            rejections: std::sync::Mutex::default(),
        }
    }

    /// Where the CA whose expiry `ca.expiring` announces comes from: the issuing CA of the moment.
    pub fn with_ca(mut self, source: impl Fn() -> Option<CaFacts> + Send + Sync + 'static) -> Webhooks {
        self.ca = Some(Box::new(source));
        self
    }

    pub fn ca(&self) -> Option<CaFacts> {
        self.ca.as_ref().and_then(|source| source())
    }

    /// Counts a refused challenge for the next `challenge.rejected` summary (`source`: the
    /// client's address).
    pub fn tally_rejection(&self, reason: &str, source: &str) {
        let mut tally = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        if tally.by_reason.is_empty() {
            tally.since = scepd_ca::time::unix_now();
        }
        *tally.by_reason.entry(reason.to_string()).or_default() += 1;
        let known = tally.by_source.contains_key(source);
        let key = if known || tally.by_source.len() < MAX_SOURCES {
            source
        } else {
            "other"
        };
        *tally.by_source.entry(key.to_string()).or_default() += 1;
    }

    /// The summary of the challenges refused since the last one, if any (and starts anew).
    pub fn take_rejections(&self, now: u64) -> Option<crate::store::outbox::Event> {
        let mut tally = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        if tally.by_reason.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut *tally);
        Some(crate::store::outbox::Event::ChallengeRejected {
            since: taken.since,
            until: now,
            by_reason: taken.by_reason,
            by_source: taken.by_source,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds an endpoint; returns it and its secret (`whsec_…`), which is shown only now.
    pub fn add(&self, new: &NewEndpoint) -> Result<(WebhookEndpoint, String), WebhookError> {
        Target::parse(&new.url, new.allow_http)?;
        let events = new
            .events
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| EventType::from_name(e).ok_or_else(|| WebhookError::UnknownEvent(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = &new.description {
            if d.chars().count() > 200 || d.chars().any(char::is_control) {
                return Err(WebhookError::BadDescription);
            }
        }
        let id = WebhookId::generate();
        let secret = SigningSecret::generate();
        let endpoint = WebhookEndpoint {
            secrets: vec![SealedSecret {
                sealed: self.secrets.seal(&id, &secret),
                expires_at: None,
            }],
            id,
            url: new.url.clone(),
            events,
            description: new.description.clone(),
            allow_http: new.allow_http,
            created_at: scepd_ca::time::unix_now(),
        };
        self.store.add_webhook(&endpoint)?;
        Ok((endpoint, secret.to_whsec()))
    }

    pub fn list(&self) -> Result<Vec<WebhookEndpoint>, WebhookError> {
        Ok(self.store.webhooks()?)
    }

    pub fn remove(&self, id: &WebhookId) -> Result<bool, WebhookError> {
        Ok(self.store.remove_webhook(id)?)
    }

    /// A new secret for `id`; the current one keeps signing for the overlap (both signatures
    /// are sent meanwhile). None when there is no such endpoint.
    pub fn rotate(&self, id: &WebhookId) -> Result<Option<(String, u64)>, WebhookError> {
        // Two rotations at once: each writes only over the endpoint it read, so the secret a
        // caller gets back is the one stored; the later one reads again and rotates after it.
        for _ in 0..ROTATION_ATTEMPTS {
            let now = scepd_ca::time::unix_now();
            let Some(previous) = self.store.webhooks()?.into_iter().find(|e| e.id == *id) else {
                return Ok(None);
            };
            let until = now + self.settings.rotation_overlap;
            let secret = SigningSecret::generate();
            let mut secrets = vec![SealedSecret {
                sealed: self.secrets.seal(id, &secret),
                expires_at: None,
            }];
            for old in previous.secrets.iter().filter(|s| s.expires_at.is_none_or(|t| t > now)) {
                secrets.push(SealedSecret {
                    expires_at: Some(old.expires_at.unwrap_or(until).min(until)),
                    ..old.clone()
                });
            }
            let rotated = WebhookEndpoint {
                secrets,
                ..previous.clone()
            };
            if self.store.replace_webhook(&previous, &rotated)? {
                return Ok(Some((secret.to_whsec(), until)));
            }
        }
        Err(WebhookError::Contended)
    }

    /// The secrets that sign now: the current one and those still in their overlap.
    pub fn signing_secrets(&self, endpoint: &WebhookEndpoint, now: u64) -> Result<Vec<SigningSecret>, WebhookError> {
        endpoint
            .secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|t| t > now))
            .map(|s| self.secrets.open(&endpoint.id, &s.sealed).map_err(WebhookError::from))
            .collect()
    }

    pub fn deliveries(&self, status: Option<DeliveryStatus>, limit: usize) -> Result<Vec<Delivery>, WebhookError> {
        Ok(self.store.deliveries(status, limit)?)
    }

    /// Sends a delivery again (a dead-lettered one, usually) at once, with its `webhook-id`.
    pub fn retry(&self, id: &DeliveryId) -> Result<bool, WebhookError> {
        Ok(self.store.retry_delivery(id, scepd_ca::time::unix_now())?)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ServeArgs};

    #[test]
    fn every_webhook_key_is_read() {
        let args = ServeArgs {
            webhook_retry_initial: Some("7s".into()),
            webhook_retry_for: Some("2h".into()),
            webhook_rotation_overlap: Some("3m".into()),
            webhook_expiring_lead: Some("4d".into()),
            webhook_rejection_summary_interval: Some("5s".into()),
            webhook_ca_file: Some("/x.pem".into()),
            ..ServeArgs::default()
        };
        let w = Config::resolve(&args).unwrap().webhook;
        assert_eq!(
            (
                w.retry_initial,
                w.retry_for,
                w.rotation_overlap,
                w.expiring_lead,
                w.rejection_summary_interval
            ),
            (7, 7200, 180, 4 * 86_400, 5)
        );
        assert_eq!(w.ca_file.as_deref(), Some(std::path::Path::new("/x.pem")));
        let defaults = Config::resolve(&ServeArgs::default()).unwrap().webhook;
        assert_eq!((defaults.retry_initial, defaults.expiring_lead), (5, 30 * 86_400));
    }
}
