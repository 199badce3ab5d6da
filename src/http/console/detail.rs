//! A certificate's details for its page, read from its DER (the record has the rest).

use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use super::views::date;
use crate::store::CertRecord;

pub fn pem(der: &[u8]) -> String {
    scepd_ca::pem::encode("CERTIFICATE", der)
}

/// Labelled fields and the extensions, one line each.
pub fn describe(record: &CertRecord, der: &[u8], now: u64) -> (Vec<(&'static str, String)>, Vec<String>) {
    let mut fields = vec![
        ("Serial", record.serial.to_hex()),
        ("Subject", record.subject.clone()),
        ("Status", record.status_at(now).as_str().to_string()),
        ("Device", record.device_id.clone().unwrap_or_else(|| "—".into())),
        (
            "Device id vouched for",
            if record.device_bound {
                "yes (bound challenge or its renewal)"
            } else {
                "no"
            }
            .into(),
        ),
        ("Issued", date(record.issued_at)),
        ("Issuance kind", record.kind.as_str().to_string()),
        (
            "Challenge",
            match (&record.challenge, record.kind) {
                (Some(challenge), _) => challenge.to_string(),
                (None, crate::store::IssuanceKind::Renewal) => {
                    "none: a RenewalReq signed by the renewed certificate".into()
                }
                (None, _) => "not recorded (issued before scepd kept it)".into(),
            },
        ),
        ("Not before", date(record.not_before)),
        ("Not after", date(record.not_after)),
    ];
    if let (Some(at), Some(reason)) = (record.revoked_at, record.revocation_reason) {
        fields.push(("Revoked", format!("{} ({})", date(at), reason.as_str())));
    }
    if let Some(by) = &record.superseded_by {
        fields.push(("Superseded by", by.to_hex()));
    }
    let mut extensions = Vec::new();
    match x509_cert::Certificate::from_der(der) {
        Ok(cert) => {
            let tbs = cert.tbs_certificate();
            fields.insert(2, ("Issuer", tbs.issuer().to_string()));
            for ext in tbs.extensions().into_iter().flatten() {
                let name = const_oid::db::DB.by_oid(&ext.extn_id).unwrap_or("unknown");
                let critical = if ext.critical { ", critical" } else { "" };
                extensions.push(format!("{} ({name}{critical})", ext.extn_id));
                if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
                    if let Ok(san) = SubjectAltName::from_der(ext.extn_value.as_bytes()) {
                        let names: Vec<String> = san.0.iter().map(general_name).collect();
                        fields.push(("Subject alternative names", names.join(", ")));
                    }
                }
            }
        }
        Err(e) => extensions.push(format!("the certificate does not decode: {e}")),
    }
    (fields, extensions)
}

fn general_name(name: &GeneralName) -> String {
    let kind = match name {
        GeneralName::DnsName(_) => "DNS",
        GeneralName::Rfc822Name(_) => "email",
        GeneralName::UniformResourceIdentifier(_) => "URI",
        GeneralName::IpAddress(_) => "IP",
        _ => "other",
    };
    match crate::service::san::text_of(name) {
        Some(text) => format!("{kind}:{text}"),
        None => kind.to_string(),
    }
}
