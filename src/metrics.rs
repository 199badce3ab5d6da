//! Prometheus metrics (`GET /metrics`, text exposition). Labels have bounded cardinality:
//! never a serial, subject, device or challenge.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Every metric family registered, also those not yet exposed (a vector without label values).
    names: Vec<String>,
    pub scep_requests: IntCounterVec,
    pub scep_duration: HistogramVec,
    pub issued: IntCounterVec,
    pub revoked: IntCounterVec,
    pub active: IntGauge,
    pub soonest_expiry: Gauge,
    pub challenges_minted: IntCounterVec,
    pub challenges_redeemed: IntCounter,
    pub challenge_rejections: IntCounterVec,
    pub challenges_outstanding: IntGauge,
    pub ca_not_after: GaugeVec,
    /// notAfter of each CA generation, by role (current, next, retired) and issuer id.
    pub ca_generation_not_after: GaugeVec,
    pub crl_next_update: Gauge,
    pub store_size: IntGauge,
    pub store_retries: IntCounterVec,
    pub store_failures: IntCounter,
    pub store_reopens: IntCounter,
    pub issuance_commits: IntCounter,
    pub in_flight: IntGauge,
    pub auth_failures: IntCounterVec,
    pub ready: IntGauge,
    pub key_operations: IntCounterVec,
    pub key_duration: HistogramVec,
    pub webhook_deliveries: IntCounterVec,
    pub webhook_outbox_pending: IntGauge,
    pub webhook_oldest_pending_age: Gauge,
}

/// A registry that remembers the names of what it registers.
struct Registrar {
    registry: Registry,
    names: Vec<String>,
}

impl Registrar {
    fn add<C: Collector + Clone + 'static>(&mut self, collector: C) -> C {
        self.names.extend(collector.desc().iter().map(|d| d.fq_name.clone()));
        self.registry
            .register(Box::new(collector.clone()))
            .expect("unique metric");
        collector
    }

    fn counter_vec(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition"))
    }

    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("metric definition"))
    }

    fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::new(name, help).expect("metric definition"))
    }

    fn int_gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("metric definition"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registrar {
            registry: Registry::new(),
            names: Vec::new(),
        };
        let scep_duration = r.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "scepd_scep_request_duration_seconds",
                    "SCEP request duration by operation.",
                )
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
                &["operation"],
            )
            .expect("metric definition"),
        );
        let key_duration = r.add(
            HistogramVec::new(
                HistogramOpts::new(
                    "scepd_key_operation_duration_seconds",
                    "Private-key operation duration, by key (ca, ra, ocsp) and operation (sign, decrypt).",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
                &["key", "op"],
            )
            .expect("metric definition"),
        );
        let ca_not_after = r.add(
            GaugeVec::new(
                Opts::new(
                    "scepd_ca_certificate_not_after_timestamp_seconds",
                    "notAfter of the CA and RA certificates.",
                ),
                &["cert"],
            )
            .expect("metric definition"),
        );
        let ca_generation_not_after = r.add(
            GaugeVec::new(
                Opts::new(
                    "scepd_ca_not_after_seconds",
                    "notAfter of each CA generation (Unix seconds), by role: current, next, retired.",
                ),
                &["ca", "issuer", "subject"],
            )
            .expect("metric definition"),
        );
        let build_info = r.add(
            IntGaugeVec::new(Opts::new("scepd_build_info", "scepd version."), &["version"]).expect("metric definition"),
        );
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let challenges_redeemed = r.counter("scepd_challenges_redeemed_total", "One-time challenges redeemed.");
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            r.names.extend(process.desc().iter().map(|d| d.fq_name.clone()));
            r.registry.register(Box::new(process)).expect("process metrics");
        }
        Metrics {
            scep_requests: r.counter_vec(
                "scepd_scep_requests_total",
                "SCEP requests by operation, messageType, status and failInfo.",
                &["operation", "message_type", "status", "fail_info"],
            ),
            scep_duration,
            issued: r.counter_vec(
                "scepd_certificates_issued_total",
                "Certificates issued, by kind (new, reenroll, renewal).",
                &["kind"],
            ),
            revoked: r.counter_vec("scepd_certificates_revoked_total", "Certificates revoked, by reason.", &["reason"]),
            active: r.int_gauge(
                "scepd_certificates_active",
                "Certificates active (not superseded, revoked or expired).",
            ),
            soonest_expiry: r.gauge(
                "scepd_certificates_expiring_seconds",
                "Seconds until the soonest active certificate expires.",
            ),
            challenges_minted: r.counter_vec(
                "scepd_challenges_minted_total",
                "One-time challenges minted, by endpoint.",
                &["endpoint"],
            ),
            challenges_redeemed,
            challenge_rejections: r.counter_vec(
                "scepd_challenge_rejections_total",
                "Challenges refused, by reason.",
                &["reason"],
            ),
            challenges_outstanding: r.int_gauge(
                "scepd_challenges_outstanding",
                "Challenges in the store (unexpired or not yet swept).",
            ),
            ca_not_after,
            ca_generation_not_after,
            crl_next_update: r.gauge("scepd_crl_next_update_timestamp_seconds", "nextUpdate of the current CRL."),
            store_size: r.int_gauge("scepd_store_size_bytes", "Size of the embedded store file."),
            store_retries: r.counter_vec(
                "scepd_store_retries_total",
                "Shared-store work done again: transactions after a conflict with another node, connections the server had closed.",
                &["reason"],
            ),
            store_failures: r.counter(
                "scepd_store_failures_total",
                "Store failures: I/O errors of the embedded store (a full disk, a read-only filesystem).",
            ),
            store_reopens: r.counter(
                "scepd_store_reopens_total",
                "Times the embedded store's file was opened again after a failure.",
            ),
            issuance_commits: r.counter(
                "scepd_issuance_commits_total",
                "Store transactions that recorded issued certificates: concurrent enrollments share one (group commit).",
            ),
            in_flight: r.int_gauge("scepd_http_requests_in_flight", "HTTP requests being served."),
            ready: r.int_gauge("scepd_ready", "1 when every readiness check passes (see /readyz)."),
            auth_failures: r.counter_vec(
                "scepd_auth_failures_total",
                "Failed authentications, by endpoint.",
                &["endpoint"],
            ),
            key_operations: r.counter_vec(
                "scepd_key_operations_total",
                "Private-key operations, by key (ca, ra, ocsp), operation (sign, decrypt) and result (ok, error: the key or its token failed; a refused ciphertext counts as ok).",
                &["key", "op", "result"],
            ),
            key_duration,
            webhook_deliveries: r.counter_vec(
                "scepd_webhook_deliveries_total",
                "Webhook delivery attempts by this node, by result (delivered; failed: retried later; dead: dead-lettered).",
                &["result"],
            ),
            webhook_outbox_pending: r.int_gauge(
                "scepd_webhook_outbox_pending",
                "Webhook deliveries not yet delivered nor dead-lettered (the outbox's depth, all nodes).",
            ),
            webhook_oldest_pending_age: r.gauge(
                "scepd_webhook_oldest_pending_age_seconds",
                "Age of the oldest event still waiting for delivery (0 when none).",
            ),
            registry: r.registry,
            names: r.names,
        }
    }

    /// The name of every metric family, whether or not it has a sample yet.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).unwrap_or_default()
    }
}
