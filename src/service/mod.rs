//! The SCEP service: the policy between the wire format and the store. Synchronous and
//! free of HTTP; the HTTP adapter runs it on the blocking pool.

mod admin;
mod batch;
mod ca_set;
mod challenges;
mod committer;
pub mod console;
mod enroll;
mod lifecycle;
mod queries;
mod renewal;
pub mod rollover;
pub mod san;

pub use admin::MdmClientAdded;
use batch::BatchWriter;
pub use challenges::{ChallengeTtl, MintRequest, Minted};
use challenges::{ChallengeWriter, CredentialCache};
use lifecycle::{CrlCache, OcspCache};

use std::sync::Arc;

use scepd_ca::Authority;

use crate::challenge::ChallengePolicy;
use crate::metrics::Metrics;
use crate::scep::envelope::CipherPolicy;
use crate::scep::reply::{self, Outcome};
use crate::scep::request::{self, Header};
use crate::scep::{caps, FailInfo, MalformedRequest, MessageType, Rejection};
use crate::store::{AuditEntry, AuditEvent, Store, StoreError, StoreEvent};
use scepd_ca::Serial;

/// Issuance policy, from the configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    pub challenge: ChallengePolicy,
    pub cipher: CipherPolicy,
    pub min_key_bits: usize,
    pub cert_validity_days: u32,
    /// notBefore = the moment of issue minus this (devices with slow clocks).
    pub not_before_backdate_seconds: u64,
    /// The URL put in every certificate's CRL distribution point.
    pub crl_url: Option<String>,
    pub challenge_ttl: ChallengeTtl,
    pub lifecycle: Lifecycle,
    pub data_dir: std::path::PathBuf,
    /// The base URL clients reach this server at.
    pub public_url: String,
    /// Which requested subjectAltNames are issued.
    pub san: san::SanPolicy,
}

/// What an unbound request (a static, NDES-page, Jamf-webhook or unbound API challenge) may do
/// to a device that already has valid certificates. Whoever holds such a challenge can name any
/// device in the CSR, so its device id is not vouched for. In no mode does an unbound request
/// cause another certificate's revocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum UnboundReenrollment {
    /// Issue; the device's earlier certificates stay active (the default: nothing another
    /// holder of the challenge does changes an enrolled device's certificates).
    #[default]
    KeepBoth,
    /// Issue and mark the earlier certificates superseded (never revoked for it, neither by
    /// `max_valid_per_device` nor by `revoke_superseded_after`).
    Allow,
    /// Refuse (FAILURE badRequest, as a refused challenge) while the device has a valid
    /// certificate: re-enrollment then needs a challenge bound to the device.
    Refuse,
}

/// Which CSR field names the device when no challenge binding does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DeviceIdField {
    /// The subject commonName.
    #[default]
    #[value(name = "cn")]
    #[serde(rename = "cn")]
    CommonName,
    /// The subject serialNumber attribute.
    #[value(name = "serial_number")]
    SerialNumber,
    /// The first DNS, email or URI subjectAltName.
    #[value(name = "san")]
    #[serde(rename = "san")]
    SubjectAltName,
}

/// Re-enrollment, renewal, revocation and the CRL, from the configuration.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    pub device_id_field: DeviceIdField,
    /// Keep at most this many valid certificates per device (older ones are revoked).
    pub max_valid_per_device: Option<u32>,
    /// Revoke superseded certificates this many seconds after their successor was issued.
    pub revoke_superseded_after: Option<u64>,
    /// RenewalReq is accepted in the last this-many percent of the old certificate's lifetime.
    pub renewal_window_percent: u8,
    pub allow_key_reuse: bool,
    /// Add the Okta Device Access extension (1.3.6.1.4.1.51150.13.1) to issued certificates.
    pub okta_device_access: bool,
    pub crl_next_update_seconds: u64,
    /// Revoked certificates stay on the CRL this long after they expire.
    pub crl_keep_expired_seconds: u64,
    pub ocsp_url: Option<String>,
    pub ca_issuers_url: Option<String>,
    pub unbound_reenrollment: UnboundReenrollment,
}

/// Failures that cannot be answered in SCEP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error(transparent)]
    Malformed(#[from] MalformedRequest),
    #[error("store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("CA: {0}")]
    Ca(#[from] scepd_ca::CaError),
    #[error("encoding the reply: {0}")]
    Encoding(#[from] der::Error),
    /// Every serial drawn was taken (a broken RNG, or a store that refuses every write as taken).
    #[error("no free serial number in {0} draws")]
    NoFreeSerial(usize),
    /// Other nodes published a CRL first on every attempt.
    #[error("other nodes kept publishing CRLs first ({0} attempts)")]
    CrlContention(usize),
    /// Argon2 refused to hash a console password (it does not, with its default parameters).
    #[error("password hashing: {0}")]
    PasswordHash(String),
}

/// The actor of what scepd does by itself (revocations by the lifecycle policy).
pub const POLICY_ACTOR: &str = "policy";

/// Who asked for something, as the audit trail records it: a client address, an MDM client's
/// name, `admin`, or `policy`; and the request's id in the log, when there was a request.
#[derive(Clone, Debug)]
pub struct Origin {
    pub actor: String,
    pub request_id: Option<u64>,
}

impl Origin {
    pub fn new(actor: impl Into<String>, request_id: u64) -> Origin {
        Origin {
            actor: actor.into(),
            request_id: Some(request_id),
        }
    }

    /// scepd itself, applying its lifecycle policy.
    pub fn policy() -> Origin {
        Origin {
            actor: POLICY_ACTOR.into(),
            request_id: None,
        }
    }

    /// An audit entry for `event` by this origin.
    pub fn entry(&self, event: AuditEvent, serial: Option<Serial>, detail: Option<String>) -> AuditEntry {
        AuditEntry {
            event,
            actor: self.actor.clone(),
            request_id: self.request_id,
            serial,
            detail,
            ..Default::default()
        }
    }
}

/// A CertRep and what it said, for logs and metrics.
#[derive(Debug)]
pub struct PkiReply {
    pub body: Vec<u8>,
    pub message_type: Option<MessageType>,
    pub transaction_id: String,
    pub fail_info: Option<FailInfo>,
    /// The failInfoText sent with a FAILURE.
    pub fail_text: Option<&'static str>,
    /// Set when a certificate was sent (issued, or re-sent for a retried transaction).
    pub issued_serial: Option<Serial>,
    /// Why a challenge was refused, when it was.
    pub challenge_rejection: Option<&'static str>,
}

pub struct ScepService {
    /// The CA generations (the original, and those of rollovers).
    cas: rollover::CaState,
    store: Arc<dyn Store>,
    policy: Policy,
    challenge_writer: ChallengeWriter,
    credentials: CredentialCache,
    crl_cache: CrlCache,
    ocsp_cache: OcspCache,
    metrics: Arc<Metrics>,
    committer: committer::IssuanceCommitter,
    audit: BatchWriter<AuditEntry>,
    /// Webhook endpoints and deliveries (set by `serve` once the secrets' key is known).
    webhooks: std::sync::OnceLock<Arc<crate::webhook::Webhooks>>,
}

impl ScepService {
    pub fn new(
        authority: Authority,
        store: Arc<dyn Store>,
        policy: Policy,
        metrics: Arc<Metrics>,
    ) -> Result<ScepService, ServiceError> {
        metrics
            .ca_not_after
            .with_label_values(&["ca"])
            .set(authority.ca.not_after() as f64);
        if let Some(ra) = &authority.ra {
            metrics
                .ca_not_after
                .with_label_values(&["ra"])
                .set(ra.not_after() as f64);
        }
        let challenge_writer = challenges::challenge_writer(Arc::clone(&store));
        let audit_store = Arc::clone(&store);
        let audit = BatchWriter::start("audit-writer", move |entries: &[AuditEntry]| {
            audit_store.append_audit(entries)
        });
        let committer = committer::IssuanceCommitter::start(Arc::clone(&store), metrics.issuance_commits.clone());
        // Both series exist from the start (at 0), so a dashboard sees them before the first retry.
        for event in [StoreEvent::Retried, StoreEvent::Reconnected] {
            metrics.store_retries.with_label_values(&[event.as_str()]);
        }
        let (retries, failures, reopens) = (
            metrics.store_retries.clone(),
            metrics.store_failures.clone(),
            metrics.store_reopens.clone(),
        );
        store.observe(Arc::new(move |event: StoreEvent| match event {
            StoreEvent::Retried | StoreEvent::Reconnected => retries.with_label_values(&[event.as_str()]).inc(),
            StoreEvent::Failed => failures.inc(),
            StoreEvent::Reopened => reopens.inc(),
        }));
        Ok(ScepService {
            cas: rollover::CaState::new(authority),
            store,
            policy,
            challenge_writer,
            credentials: CredentialCache::default(),
            crl_cache: CrlCache::default(),
            ocsp_cache: OcspCache::default(),
            metrics,
            committer,
            audit,
            webhooks: std::sync::OnceLock::new(),
        })
    }

    /// Sets the webhook manager (once).
    pub fn set_webhooks(&self, webhooks: Arc<crate::webhook::Webhooks>) {
        let _ = self.webhooks.set(webhooks);
    }

    /// The webhook manager, when `serve` set one.
    pub fn webhooks(&self) -> Option<&Arc<crate::webhook::Webhooks>> {
        self.webhooks.get()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The data directory (where backups are written for the CLI to collect).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.policy.data_dir
    }

    pub fn public_url(&self) -> &str {
        &self.policy.public_url
    }

    /// Appends to the audit trail from async code (never holds a secret).
    pub async fn audit(&self, entry: AuditEntry) {
        let _ = self
            .audit
            .push(AuditEntry {
                at: scepd_ca::time::unix_now(),
                ..entry
            })
            .await;
    }

    /// Appends to the audit trail from blocking code.
    pub fn audit_blocking(&self, entry: AuditEntry) {
        self.audit.push_blocking(AuditEntry {
            at: scepd_ca::time::unix_now(),
            ..entry
        });
    }

    /// The audit trail after `after`, everything queued so far included.
    pub fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.sync_audit();
        self.store.audit_entries(after, limit)
    }

    /// Returns once every audit entry queued so far is in the store (from blocking code).
    pub fn sync_audit(&self) {
        self.audit.sync();
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, shared (for background tasks).
    pub fn metrics_arc(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Refreshes every gauge, including those that scan all certificates (every few minutes).
    pub fn refresh_gauges(&self) -> Result<(), ServiceError> {
        let now = scepd_ca::time::unix_now();
        let (active, soonest) = self.store.certificate_stats(now)?;
        self.metrics.active.set(active as i64);
        self.metrics
            .soonest_expiry
            .set(soonest.map_or(0.0, |s| s.saturating_sub(now) as f64));
        self.refresh_light_gauges();
        Ok(())
    }

    /// Refreshes the cheap gauges (every sweep).
    pub fn refresh_light_gauges(&self) {
        if let Ok(n) = self.store.challenge_count() {
            self.metrics.challenges_outstanding.set(n as i64);
        }
        self.metrics.store_size.set(self.store.size_bytes() as i64);
        if let Some(crl) = self.current_crl() {
            self.metrics.crl_next_update.set(crl.next_update as f64);
        }
        self.readiness();
    }

    pub fn ca_caps(&self) -> String {
        caps::body(self.has_next_ca())
    }

    /// Handles a PKIOperation body (already base64-decoded for GET) from `origin`, and puts
    /// what it did on the audit trail (an issuance, a redeemed or a refused challenge).
    pub fn pki_operation(&self, body: &[u8], origin: &Origin) -> Result<PkiReply, ServiceError> {
        let message = request::decode(body)?;
        let header = message.header.clone();
        let result = match message.verify() {
            Err(rejection) => Err(rejection.into()),
            Ok(_) if !header.transaction_id_is_printable() => {
                Err(Rejection::new(FailInfo::BadRequest, "transactionID is not printable").into())
            }
            Ok(signer) => match header.message_type {
                Some(MessageType::PkcsReq) => enroll::pkcs_req(self, &message, signer),
                Some(MessageType::RenewalReq) => renewal::renewal_req(self, &message, signer),
                Some(MessageType::GetCert) => queries::get_cert(self, &message, signer),
                Some(MessageType::GetCrl) => queries::get_crl(self, &message, signer),
                Some(MessageType::CertPoll) => queries::cert_poll(self, &message, signer),
                _ => Err(Rejection::new(FailInfo::BadRequest, "unsupported messageType").into()),
            },
        };
        match result {
            Ok(issued) => {
                if let (Some(kind), Some(serial)) = (issued.issued, issued.serial) {
                    let detail = Some(kind.as_str().to_string());
                    self.audit_blocking(origin.entry(AuditEvent::CertificateIssued, Some(serial), detail));
                    if issued.redeemed {
                        self.audit_blocking(origin.entry(AuditEvent::ChallengeRedeemed, Some(serial), None));
                    }
                }
                self.reply(
                    &header,
                    &Outcome::Success {
                        enveloped: &issued.enveloped,
                    },
                    |r| {
                        r.issued_serial = issued.serial;
                    },
                )
            }
            Err(enroll::Refusal::Rejected { rejection, challenge }) => {
                if let Some(reason) = challenge {
                    self.metrics.challenge_rejections.with_label_values(&[reason]).inc();
                    if let Some(webhooks) = self.webhooks() {
                        webhooks.tally_rejection(reason, &origin.actor);
                    }
                    self.audit_blocking(origin.entry(AuditEvent::ChallengeRejected, None, Some(reason.into())));
                }
                self.reply(
                    &header,
                    &Outcome::Failure {
                        fail_info: rejection.fail_info,
                        text: rejection.text,
                    },
                    |r| {
                        r.fail_info = Some(rejection.fail_info);
                        r.fail_text = Some(rejection.text);
                        r.challenge_rejection = challenge;
                    },
                )
            }
            Err(enroll::Refusal::Internal(e)) => Err(e),
        }
    }

    fn reply(
        &self,
        header: &Header,
        outcome: &Outcome<'_>,
        fill: impl FnOnce(&mut PkiReply),
    ) -> Result<PkiReply, ServiceError> {
        let body = reply::cert_rep(header, outcome, self.authority().recipient())?;
        let mut r = PkiReply {
            body,
            message_type: header.message_type,
            transaction_id: header.transaction_id_text(),
            fail_info: None,
            fail_text: None,
            issued_serial: None,
            challenge_rejection: None,
        };
        fill(&mut r);
        Ok(r)
    }
}

/// GetCACert (RFC 8894 §4.2): the CA certificate alone when it is its own RA; otherwise a
/// certs-only SignedData with the RA first, then the CA and any certificates above it. Only the
/// RA carries keyEncipherment, which is how Apple picks the certificate to encrypt to.
fn ca_cert_body(authority: &Authority) -> Result<(Vec<u8>, &'static str), ServiceError> {
    match &authority.ra {
        None if authority.chain.is_empty() => Ok((authority.ca.der.clone(), "application/x-x509-ca-cert")),
        ra => {
            let mut certs: Vec<&[u8]> = Vec::new();
            if let Some(ra) = ra {
                certs.push(&ra.der);
            }
            certs.push(&authority.ca.der);
            certs.extend(authority.chain.iter().map(Vec::as_slice));
            Ok((reply::certs_only(&certs, &[])?, "application/x-x509-ca-ra-cert"))
        }
    }
}
