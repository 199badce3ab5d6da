//! The body of every webhook, built in this one place: `{"type", "timestamp", "data"}`.
//!
//! `data` says what happened to which certificate and nothing secret: no challenge, password,
//! token or key ever reaches it (the events the outbox holds carry none).

use scepd_ca::time::rfc3339;
use serde_json::{json, Value};

use crate::store::outbox::{CertFacts, Event};

fn cert_data(cert: &CertFacts, issuer: &str) -> Value {
    json!({
        "serial": cert.serial,
        "device_id": cert.device_id,
        "subject": cert.subject,
        "not_before": rfc3339(cert.not_before),
        "not_after": rfc3339(cert.not_after),
        "issuer": issuer,
    })
}

/// The body of `event`, which happened at `occurred_at`, about a certificate `issuer` issued.
/// The same inputs give the same bytes: every retry sends the body the first attempt sent.
pub fn body(event: &Event, occurred_at: u64, issuer: &str) -> Vec<u8> {
    let mut data = match event.cert() {
        Some(cert) => cert_data(cert, issuer),
        None => json!({}),
    };
    match event {
        Event::CertificateIssued { kind, .. } => {
            data["kind"] = json!(kind_name(*kind));
        }
        Event::CertificateSuperseded { superseded_by, .. } => {
            data["superseded_by"] = json!(superseded_by);
        }
        Event::CertificateRevoked { reason, by, .. } => {
            data["reason"] = json!(reason);
            data["revoked_by"] = json!(by);
        }
        Event::CertificateExpiring { .. } => {}
        Event::CaExpiring {
            subject,
            not_after,
            sha256,
        } => {
            data = json!({ "subject": subject, "not_after": rfc3339(*not_after), "sha256": sha256 });
        }
        Event::ChallengeRejected {
            since,
            until,
            by_reason,
            by_source,
        } => {
            data = json!({
                "since": rfc3339(*since),
                "until": rfc3339(*until),
                "count": by_reason.values().sum::<u64>(),
                "by_reason": by_reason,
                "by_source": by_source,
            });
        }
    }
    let body = json!({
        "type": event.event_type().as_str(),
        "timestamp": rfc3339(occurred_at),
        "data": data,
    });
    serde_json::to_vec(&body).expect("JSON")
}

/// The issue names the kinds `new`, `re-enrollment`, `renewal`.
fn kind_name(kind: crate::store::IssuanceKind) -> &'static str {
    match kind {
        crate::store::IssuanceKind::New => "new",
        crate::store::IssuanceKind::Reenroll => "re-enrollment",
        crate::store::IssuanceKind::Renewal => "renewal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::outbox::RevokedBy;
    use crate::store::CertRecord;

    #[test]
    fn a_revocation_says_why_and_by_whom_and_nothing_else() {
        let serial: scepd_ca::Serial = "0A".repeat(16).parse().unwrap();
        let mut record = CertRecord::issued(&serial, "CN=dev1".into(), 0, 86_400, 0);
        record.device_id = Some("dev1".into());
        record.transaction_id = "secret-ish transaction".into();
        record.revocation_reason = Some(scepd_ca::Reason::KEY_COMPROMISE);
        let body = body(&Event::revoked(&record, RevokedBy::Admin), 60, "CN=CA");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "certificate.revoked");
        assert_eq!(v["timestamp"], "1970-01-01T00:01:00Z");
        assert_eq!(v["data"]["reason"], "keyCompromise");
        assert_eq!(v["data"]["revoked_by"], "admin");
        assert_eq!(v["data"]["serial"], "0A".repeat(16));
        assert_eq!(v["data"]["issuer"], "CN=CA");
        assert_eq!(v["data"]["not_after"], "1970-01-02T00:00:00Z");
        assert!(!String::from_utf8(body).unwrap().contains("transaction"));
    }
}
