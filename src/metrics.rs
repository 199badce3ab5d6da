//! Prometheus metrics (`GET /metrics`, text exposition). Labels have bounded cardinality:
//! never a serial, subject, device or challenge.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
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
    pub crl_next_update: Gauge,
    pub store_size: IntGauge,
    pub store_retries: IntCounterVec,
    pub store_failures: IntCounter,
    pub store_reopens: IntCounter,
    pub in_flight: IntGauge,
    pub auth_failures: IntCounterVec,
    pub ready: IntGauge,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("metric definition");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("metric definition");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("metric definition");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let scep_duration = HistogramVec::new(
            HistogramOpts::new(
                "scepd_scep_request_duration_seconds",
                "SCEP request duration by operation.",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["operation"],
        )
        .expect("metric definition");
        r.register(Box::new(scep_duration.clone())).expect("unique metric");
        let ca_not_after = GaugeVec::new(
            Opts::new(
                "scepd_ca_certificate_not_after_timestamp_seconds",
                "notAfter of the CA and RA certificates.",
            ),
            &["cert"],
        )
        .expect("metric definition");
        r.register(Box::new(ca_not_after.clone())).expect("unique metric");
        let build_info =
            IntGaugeVec::new(Opts::new("scepd_build_info", "scepd version."), &["version"]).expect("metric definition");
        r.register(Box::new(build_info.clone())).expect("unique metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let challenges_redeemed = counter(&r, "scepd_challenges_redeemed_total", "One-time challenges redeemed.");
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics");
        Metrics {
            scep_requests: counter_vec(&r, "scepd_scep_requests_total", "SCEP requests by operation, messageType, status and failInfo.",
                &["operation", "message_type", "status", "fail_info"]),
            scep_duration,
            issued: counter_vec(&r, "scepd_certificates_issued_total", "Certificates issued, by kind (new, reenroll, renewal).", &["kind"]),
            revoked: counter_vec(&r, "scepd_certificates_revoked_total", "Certificates revoked, by reason.", &["reason"]),
            active: int_gauge(&r, "scepd_certificates_active", "Certificates active (not superseded, revoked or expired)."),
            soonest_expiry: gauge(&r, "scepd_certificates_expiring_seconds", "Seconds until the soonest active certificate expires."),
            challenges_minted: counter_vec(&r, "scepd_challenges_minted_total", "One-time challenges minted, by endpoint.", &["endpoint"]),
            challenges_redeemed,
            challenge_rejections: counter_vec(&r, "scepd_challenge_rejections_total", "Challenges refused, by reason.", &["reason"]),
            challenges_outstanding: int_gauge(&r, "scepd_challenges_outstanding", "Challenges in the store (unexpired or not yet swept)."),
            ca_not_after,
            crl_next_update: gauge(&r, "scepd_crl_next_update_timestamp_seconds", "nextUpdate of the current CRL."),
            store_size: int_gauge(&r, "scepd_store_size_bytes", "Size of the embedded store file."),
            store_retries: counter_vec(
                &r,
                "scepd_store_retries_total",
                "Shared-store work done again: transactions after a conflict with another node, connections the server had closed.",
                &["reason"],
            ),
            store_failures: counter(
                &r,
                "scepd_store_failures_total",
                "Store failures: I/O errors of the embedded store (a full disk, a read-only filesystem).",
            ),
            store_reopens: counter(
                &r,
                "scepd_store_reopens_total",
                "Times the embedded store's file was opened again after a failure.",
            ),
            in_flight: int_gauge(&r, "scepd_http_requests_in_flight", "HTTP requests being served."),
            ready: int_gauge(&r, "scepd_ready", "1 when every readiness check passes (see /readyz)."),
            auth_failures: counter_vec(&r, "scepd_auth_failures_total", "Failed authentications, by endpoint.", &["endpoint"]),
            registry: r,
        }
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
