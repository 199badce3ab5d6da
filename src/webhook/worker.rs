//! The delivery worker of `scepd serve`: claims due deliveries (a lease in the store, so that
//! on several nodes each goes to one node at a time), sends them, records the outcome.
//!
//! At least once: a delivery is recorded as delivered only after the receiver's 2xx, so a crash
//! in between sends it again (same `webhook-id`: receivers deduplicate). Failures are retried
//! with exponential backoff and jitter until `webhook_retry_for` after the event, then
//! dead-lettered (`scepd webhook deliveries --failed`, `scepd webhook retry`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use der::Decode;

use super::client::{DeliveryClient, DeliveryError};
use super::payload;
use super::secret::signature_header;
use super::target::Target;
use super::Webhooks;
use crate::metrics::Metrics;
use crate::store::outbox::{Claim, Delivery, DeliveryStatus, WebhookEndpoint};

/// Deliveries claimed at once by a node.
const BATCH: usize = 32;
/// How long a claim lasts: longer than one attempt can take (connect + response timeouts).
const LEASE_SECONDS: u64 = 60;
/// Longest wait between two attempts.
const MAX_BACKOFF: u64 = 3600;
/// How often (in worker ticks, seconds) certificates coming within the lead time are looked
/// for: a scan of the certificates, so not every tick; the first tick (start-up) scans too.
const EXPIRING_EVERY: u32 = 60;
/// Certificates announced per transaction.
const EXPIRING_BATCH: usize = 1000;
/// How often delivered deliveries are pruned (ticks), and how long they are kept (seconds):
/// a week of history for `scepd webhook deliveries`; pending and dead ones are kept.
const PRUNE_EVERY: u32 = 3600;
const KEEP_DELIVERED: u64 = 7 * 86_400;

/// The delay before attempt `attempts + 1`: `initial` doubled per attempt, capped at an hour,
/// drawn uniformly from its upper half (jitter: receivers that failed together are not retried
/// in lockstep).
pub fn backoff(initial: u64, attempts: u32) -> u64 {
    let full = initial
        .max(1)
        .saturating_mul(1u64 << attempts.saturating_sub(1).min(20))
        .min(MAX_BACKOFF);
    let mut r = [0u8; 8];
    aws_lc_rs::rand::fill(&mut r).expect("system RNG");
    let half = full / 2;
    (full - half + u64::from_le_bytes(r) % (half + 1)).max(1)
}

/// Runs until the process ends.
pub async fn run(webhooks: Arc<Webhooks>, client: Arc<DeliveryClient>, metrics: Arc<Metrics>) {
    // This node's name on its leases: unique per process, so a restarted node does not mistake
    // its predecessor's leases for its own.
    let owner: Arc<str> = format!("node-{}", crate::challenge::key::random_alphanumeric(12)).into();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut since_stats, mut since_expiring, mut since_prune) = (u32::MAX, u32::MAX, u32::MAX);
    let mut since_summary = 0u64;
    loop {
        tick.tick().await;
        since_summary += 1;
        if since_summary >= webhooks.settings.rejection_summary_interval {
            since_summary = 0;
            summarize_rejections(&webhooks).await;
        }
        since_expiring = since_expiring.saturating_add(1);
        if since_expiring >= EXPIRING_EVERY {
            since_expiring = 0;
            announce_expiring(&webhooks).await;
        }
        since_prune = since_prune.saturating_add(1);
        if since_prune >= PRUNE_EVERY {
            since_prune = 0;
            prune(&webhooks).await;
        }
        since_stats = since_stats.saturating_add(1);
        if since_stats >= 5 {
            since_stats = 0;
            refresh_gauges(&webhooks, &metrics).await;
        }
        let claimed = {
            let (webhooks, owner) = (webhooks.clone(), owner.clone());
            tokio::task::spawn_blocking(move || {
                let now = scepd_ca::time::unix_now();
                webhooks.store().claim_deliveries(&Claim {
                    owner: &owner,
                    now,
                    lease_until: now + LEASE_SECONDS,
                    limit: BATCH,
                })
            })
            .await
        };
        let claimed = match claimed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "webhook outbox: claiming deliveries failed");
                continue;
            }
            Err(_) => continue,
        };
        if claimed.is_empty() {
            continue;
        }
        let full = claimed.len() == BATCH;
        let endpoints = {
            let webhooks = webhooks.clone();
            match tokio::task::spawn_blocking(move || webhooks.list()).await {
                Ok(Ok(e)) => e,
                _ => continue,
            }
        };
        let mut set = tokio::task::JoinSet::new();
        for delivery in claimed {
            let endpoint = endpoints.iter().find(|e| e.id == delivery.endpoint).cloned();
            set.spawn(deliver(
                webhooks.clone(),
                client.clone(),
                metrics.clone(),
                endpoint,
                delivery,
            ));
        }
        let mut done = Vec::with_capacity(BATCH);
        while let Some(attempted) = set.join_next().await {
            done.extend(attempted.ok());
        }
        // The batch's outcomes in one transaction (one fsync, not one per delivery).
        let (w, owner) = (webhooks.clone(), owner.clone());
        let count = done.len();
        match tokio::task::spawn_blocking(move || w.store().finish_deliveries(&done, &owner)).await {
            Ok(Ok(held)) if held < count => {
                tracing::warn!(
                    lost = count - held,
                    "webhook deliveries: a lease ran out before the attempt ended"
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "webhook deliveries: recording the outcomes failed (they will be sent again)")
            }
            _ => {}
        }
        if full {
            // More are due: go on at once.
            tick.reset_immediately();
        }
    }
}

/// Deletes the deliveries delivered more than [`KEEP_DELIVERED`] ago, a batch at a time.
async fn prune(webhooks: &Arc<Webhooks>) {
    let w = webhooks.clone();
    let pruned = tokio::task::spawn_blocking(move || -> Result<usize, crate::store::StoreError> {
        let before = scepd_ca::time::unix_now().saturating_sub(KEEP_DELIVERED);
        let mut total = 0;
        loop {
            let n = w.store().prune_deliveries(before, 1000)?;
            total += n;
            if n < 1000 {
                return Ok(total);
            }
        }
    })
    .await;
    match pruned {
        Ok(Ok(n)) if n > 0 => tracing::info!(deliveries = n, "old webhook deliveries pruned"),
        Ok(Err(e)) => tracing::warn!(error = %e, "pruning webhook deliveries failed"),
        _ => {}
    }
}

/// Writes this node's `challenge.rejected` summary, if it refused any.
async fn summarize_rejections(webhooks: &Arc<Webhooks>) {
    let now = scepd_ca::time::unix_now();
    let Some(event) = webhooks.take_rejections(now) else {
        return;
    };
    let w = webhooks.clone();
    let written = tokio::task::spawn_blocking(move || w.store().enqueue_events(&[event], now)).await;
    if let Ok(Err(e)) = written {
        tracing::warn!(error = %e, "writing the challenge.rejected summary failed");
    }
}

/// Writes `certificate.expiring` for the certificates that came within the lead time, and
/// `ca.expiring` once the CA did.
async fn announce_expiring(webhooks: &Arc<Webhooks>) {
    let w = webhooks.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<usize, crate::store::StoreError> {
        let now = scepd_ca::time::unix_now();
        if let Some(ca) = w
            .ca()
            .filter(|ca| ca.not_after <= now.saturating_add(w.settings.expiring_lead))
        {
            let event = crate::store::outbox::Event::CaExpiring {
                subject: ca.subject.clone(),
                not_after: ca.not_after,
                sha256: ca.sha256.clone(),
            };
            if w.store()
                .announce_once(&format!("ca.expiring:{}", ca.sha256), &event, now)?
            {
                tracing::warn!(ca = %ca.subject, "ca.expiring event written");
            }
        }
        let mut total = 0;
        loop {
            let now = scepd_ca::time::unix_now();
            let n = w
                .store()
                .emit_expiring(now, now.saturating_add(w.settings.expiring_lead), EXPIRING_BATCH)?;
            total += n;
            if n < EXPIRING_BATCH {
                return Ok(total);
            }
        }
    })
    .await;
    match done {
        Ok(Ok(n)) if n > 0 => tracing::info!(certificates = n, "certificate.expiring events written"),
        Ok(Err(e)) => tracing::warn!(error = %e, "looking for expiring certificates failed"),
        _ => {}
    }
}

async fn refresh_gauges(webhooks: &Arc<Webhooks>, metrics: &Arc<Metrics>) {
    let w = webhooks.clone();
    if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || w.store().outbox_stats()).await {
        metrics.webhook_outbox_pending.set(stats.pending as i64);
        let now = scepd_ca::time::unix_now();
        metrics
            .webhook_oldest_pending_age
            .set(stats.oldest_pending.map_or(0.0, |t| now.saturating_sub(t) as f64));
    }
}

/// The issuer of the certificate an event is about, from its DER (rollover: not necessarily
/// the current CA).
fn issuer_of(webhooks: &Webhooks, delivery: &Delivery) -> String {
    let Some(cert) = delivery.event.cert() else {
        return String::new();
    };
    let serial = cert.serial;
    webhooks
        .store()
        .certificate(&serial)
        .ok()
        .flatten()
        .and_then(|(_, der)| x509_cert::Certificate::from_der(&der).ok())
        .map(|c| c.tbs_certificate().issuer().to_string())
        .unwrap_or_default()
}

/// Why an attempt failed, for the record: a message, and the receiver's status if it answered.
struct Failure {
    message: String,
    status: Option<u16>,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            status: None,
        }
    }
}

/// One attempt.
async fn attempt(
    webhooks: &Arc<Webhooks>,
    client: &DeliveryClient,
    endpoint: &WebhookEndpoint,
    delivery: &Delivery,
) -> Result<u16, Failure> {
    let target = Target::parse(&endpoint.url, endpoint.allow_http)?;
    let (w, d) = (webhooks.clone(), delivery.clone());
    let issuer = tokio::task::spawn_blocking(move || issuer_of(&w, &d))
        .await
        .unwrap_or_default();
    let body = payload::body(&delivery.event, delivery.occurred_at, &issuer);
    let now = scepd_ca::time::unix_now();
    let secrets = webhooks.signing_secrets(endpoint, now)?;
    let headers = [
        ("webhook-id", delivery.event_id.clone()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            signature_header(&secrets, &delivery.event_id, now, &body),
        ),
    ];
    client
        .post(&target, &headers, Bytes::from(body))
        .await
        .map_err(|e: DeliveryError| Failure {
            status: e.status(),
            message: e.to_string(),
        })
}

/// One attempt of `delivery`; returns it updated with the outcome (not yet recorded).
async fn deliver(
    webhooks: Arc<Webhooks>,
    client: Arc<DeliveryClient>,
    metrics: Arc<Metrics>,
    endpoint: Option<WebhookEndpoint>,
    mut delivery: Delivery,
) -> Delivery {
    // The whole attempt ends well within the lease: past it, another node may claim the
    // delivery and send it too.
    let deadline = std::time::Duration::from_secs(LEASE_SECONDS / 2);
    let result = match &endpoint {
        Some(endpoint) => tokio::time::timeout(deadline, attempt(&webhooks, &client, endpoint, &delivery))
            .await
            .unwrap_or_else(|_| Err(Failure::from("the attempt took longer than half the lease"))),
        None => Err(Failure::from("the endpoint was removed")),
    };
    let now = scepd_ca::time::unix_now();
    delivery.attempts += 1;
    let outcome = match result {
        Ok(status) => {
            delivery.status = DeliveryStatus::Delivered;
            delivery.delivered_at = Some(now);
            delivery.last_status = Some(status);
            delivery.last_error = None;
            "delivered"
        }
        Err(Failure { message, status }) => {
            delivery.last_status = status;
            tracing::info!(delivery = %delivery.id, endpoint = %delivery.endpoint, attempts = delivery.attempts, error = %message, "webhook delivery failed");
            delivery.last_error = Some(message);
            let delay = backoff(webhooks.settings.retry_initial, delivery.attempts);
            let deadline = delivery.occurred_at.saturating_add(webhooks.settings.retry_for);
            if endpoint.is_none() || now.saturating_add(delay) > deadline {
                delivery.status = DeliveryStatus::Failed;
                tracing::warn!(delivery = %delivery.id, endpoint = %delivery.endpoint, "webhook delivery dead-lettered");
                "dead"
            } else {
                delivery.next_attempt_at = now + delay;
                "failed"
            }
        }
    };
    metrics.webhook_deliveries.with_label_values(&[outcome]).inc();
    delivery
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            let first = backoff(10, 1);
            assert!((5..=10).contains(&first), "{first}");
            let fourth = backoff(10, 4);
            assert!((40..=80).contains(&fourth), "{fourth}");
            assert!(backoff(10, 30) <= 3600);
            assert!(backoff(0, 0) >= 1);
        }
    }
}
