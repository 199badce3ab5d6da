//! The admin API's JSON shapes and parameters, shared by the server and the CLI.

use scepd_ca::time::rfc3339;
use serde_json::{json, Value};

use crate::store::{CertFilter, CertRecord, CertStatus, MdmClient};

/// `?device=…&status=…`
pub fn cert_filter(query: &str) -> Result<CertFilter, String> {
    let mut filter = CertFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = String::from_utf8_lossy(&crate::scep::query::percent_decode(v)).into_owned();
        match k {
            "device" => filter.device_id = Some(v),
            "status" => filter.status = Some(CertStatus::from_name(&v).ok_or_else(|| format!("unknown status {v:?}"))?),
            _ => return Err(format!("unknown parameter {k:?}")),
        }
    }
    Ok(filter)
}

/// `?expiring_within=30d` with the other certificate parameters: the filter and the window in
/// seconds. Only active certificates expire in this sense: another status is refused.
pub fn cert_query(query: &str) -> Result<(CertFilter, Option<u64>), String> {
    let mut within = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("expiring_within", v)) => {
                let text = String::from_utf8_lossy(&crate::scep::query::percent_decode(v)).into_owned();
                within = Some(crate::config::parse_duration(&text).map_err(|e| format!("expiring_within: {e}"))?);
            }
            _ => rest.push(pair),
        }
    }
    let filter = cert_filter(&rest.join("&"))?;
    if within.is_some() && filter.status.is_some_and(|s| s != CertStatus::Active) {
        return Err("expiring_within lists active certificates only".into());
    }
    Ok((filter, within))
}

pub fn cert_json(r: &CertRecord, der: Option<&[u8]>) -> Value {
    let mut v = json!({
        "serial": r.serial,
        "subject": r.subject,
        "not_before": rfc3339(r.not_before),
        "not_after": rfc3339(r.not_after),
        "status": r.status_at(scepd_ca::time::unix_now()).as_str(),
        "device_id": r.device_id,
        "kind": r.kind,
        "transaction_id": r.transaction_id,
        "issued_at": rfc3339(r.issued_at),
        "superseded_by": r.superseded_by,
        "revoked_at": r.revoked_at.map(rfc3339),
        "revocation_reason": r.revocation_reason,
        // The issuing CA generation's id; null: the original CA.
        "issuer": r.issuer,
        "challenge": r.challenge,
    });
    if let Some(der) = der {
        v["pem"] = Value::String(scepd_ca::pem::encode("CERTIFICATE", der));
    }
    v
}

pub fn cert_list_json(records: &[CertRecord]) -> Value {
    Value::Array(records.iter().map(|r| cert_json(r, None)).collect())
}

/// `{"reason": "keyCompromise"}` (optional; default `unspecified`).
pub fn revocation_reason(body: &[u8]) -> Result<scepd_ca::Reason, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(scepd_ca::Reason::UNSPECIFIED);
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))?;
    match v.get("reason").and_then(Value::as_str) {
        None => Ok(scepd_ca::Reason::UNSPECIFIED),
        Some(name) => scepd_ca::Reason::from_name(name).ok_or_else(|| {
            format!(
                "unknown reason {name:?}; one of: {}",
                scepd_ca::Reason::names().collect::<Vec<_>>().join(", ")
            )
        }),
    }
}

/// Jamf Pro's webhook body, as much of it as scepd reads.
#[derive(serde::Deserialize)]
struct JamfWebhook {
    webhook: JamfWebhookMeta,
    #[serde(default)]
    event: JamfEvent,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct JamfWebhookMeta {
    webhook_event: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct JamfEvent {
    payload_identifier: Option<String>,
    #[serde(default)]
    payload_types: Vec<String>,
}

/// Reads a Jamf SCEPChallenge webhook; returns its payloadIdentifier. Any other event, or a
/// payload that is not a SCEP one, is an error (HTTP 400).
pub fn jamf_scep_challenge(body: &[u8]) -> Result<Option<String>, String> {
    let hook: JamfWebhook = serde_json::from_slice(body).map_err(|e| format!("not a Jamf webhook: {e}"))?;
    if hook.webhook.webhook_event != "SCEPChallenge" {
        return Err(format!("unsupported webhookEvent {:?}", hook.webhook.webhook_event));
    }
    if !hook.event.payload_types.is_empty() && !hook.event.payload_types.iter().any(|t| t == "com.apple.security.scep")
    {
        return Err("payloadTypes holds no com.apple.security.scep".into());
    }
    Ok(hook.event.payload_identifier)
}

/// `POST /api/v1/challenges` body: `{"device_id", "subject_cn", "san", "ttl_seconds",
/// "okta_device_access"}`, all optional.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ChallengeParams {
    pub device_id: Option<String>,
    pub subject_cn: Option<String>,
    pub san: Option<String>,
    pub ttl_seconds: Option<u64>,
    /// Add the Okta Device Access extension to the certificate this challenge redeems for.
    pub okta_device_access: Option<bool>,
}

pub fn challenge_params(body: &[u8]) -> Result<ChallengeParams, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ChallengeParams::default());
    }
    let params: ChallengeParams = serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))?;
    if params.ttl_seconds == Some(0) {
        return Err("ttl_seconds must be at least 1".into());
    }
    Ok(params)
}

/// The credentials of an `Authorization` value with auth-scheme `scheme`. RFC 9110 §11.1: the
/// scheme is case-insensitive (`bearer`, `BASIC` are the same schemes).
pub fn authorization_credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, credentials) = header.trim_start().split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

/// `Authorization: Basic …` → (user, password).
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = authorization_credentials(header, "Basic")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `POST /api/v1/mdm-clients` body.
#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewMdmClient {
    pub name: String,
    pub challenge_ttl_seconds: Option<u64>,
}

pub fn mdm_client_json(c: &MdmClient) -> Value {
    json!({ "name": c.name, "created_at": rfc3339(c.created_at), "challenge_ttl_seconds": c.challenge_ttl_seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_within_takes_a_duration_and_active_certificates_only() {
        let (filter, within) = cert_query("expiring_within=30d&device=d%201").unwrap();
        assert_eq!(within, Some(30 * 86_400));
        assert_eq!(filter.device_id.as_deref(), Some("d 1"));
        assert_eq!(cert_query("expiring_within=12h").unwrap().1, Some(43_200));
        assert!(cert_query("expiring_within=soon").is_err());
        assert!(cert_query("expiring_within=1d&status=revoked").is_err());
        assert_eq!(cert_query("status=revoked").unwrap().1, None);
    }

    #[test]
    fn auth_schemes_are_case_insensitive() {
        assert_eq!(authorization_credentials("bearer abc", "Bearer"), Some("abc"));
        assert_eq!(authorization_credentials("BEARER  abc ", "Bearer"), Some("abc"));
        assert_eq!(authorization_credentials("Bearerabc", "Bearer"), None);
        assert_eq!(
            basic_credentials("basic dTpw"),
            Some(("u".to_string(), "p".to_string()))
        );
    }
}
