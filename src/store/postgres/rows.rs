//! Between the store's records and PostgreSQL rows. Unsigned values are stored as BIGINT: Unix
//! times and counters stay far below 2^63, and a request id keeps its bits either way.

use postgres::Row;

use scepd_ca::{Reason, Serial};

use super::super::{
    AuditEntry, AuditEvent, CertRecord, CertStatus, ChallengeRecord, IssuanceKind, MdmClient, StoreError,
};

/// The columns of [`CertRecord`], in the order [`certificate`] reads them.
pub const CERT_COLUMNS: &str =
    "serial, subject, not_before, not_after, status, device_id, transaction_id, csr_sha256, \
     issued_at, kind, superseded_by, superseded_at, revoked_at, revocation_reason, seq, device_bound, issuer, challenge";

pub const CHALLENGE_COLUMNS: &str =
    "hash, expires_at, created_at, minted_by, endpoint, device_id, subject_cn, san, payload_identifier, okta_device_access, redeemed_at";

pub const AUDIT_COLUMNS: &str = "seq, at, event, actor, request_id, serial, device_id, detail";

pub const MDM_COLUMNS: &str = "name, password_hmac, created_at, challenge_ttl_seconds";

pub fn int(value: u64) -> i64 {
    value as i64
}

pub fn opt_int(value: Option<u64>) -> Option<i64> {
    value.map(int)
}

fn uint(row: &Row, column: &str) -> u64 {
    row.get::<_, i64>(column) as u64
}

fn opt_uint(row: &Row, column: &str) -> Option<u64> {
    row.get::<_, Option<i64>>(column).map(|v| v as u64)
}

/// A text column holding a domain value by its name; a name the type does not know is corruption.
fn named<T>(row: &Row, column: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let text: &str = row.get(column);
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column} {text:?}")))
}

fn opt_named<T>(row: &Row, column: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, StoreError> {
    match row.get::<_, Option<&str>>(column) {
        None => Ok(None),
        Some(_) => named(row, column, parse).map(Some),
    }
}

pub fn serial(row: &Row, column: &str) -> Result<Serial, StoreError> {
    named(row, column, |t| t.parse().ok())
}

pub fn certificate(row: &Row) -> Result<CertRecord, StoreError> {
    let status = match row.get::<_, &str>("status") {
        "active" => CertStatus::Active,
        "superseded" => CertStatus::Superseded,
        "revoked" => CertStatus::Revoked,
        other => return Err(StoreError::Corrupt(format!("certificate status {other:?}"))),
    };
    Ok(CertRecord {
        serial: serial(row, "serial")?,
        subject: row.get("subject"),
        not_before: uint(row, "not_before"),
        not_after: uint(row, "not_after"),
        status,
        device_id: row.get("device_id"),
        transaction_id: row.get("transaction_id"),
        csr_sha256: row.get("csr_sha256"),
        issued_at: uint(row, "issued_at"),
        kind: named(row, "kind", IssuanceKind::from_name)?,
        superseded_by: opt_named(row, "superseded_by", |t| t.parse().ok())?,
        superseded_at: opt_uint(row, "superseded_at"),
        revoked_at: opt_uint(row, "revoked_at"),
        revocation_reason: opt_named(row, "revocation_reason", Reason::from_name)?,
        seq: uint(row, "seq"),
        device_bound: row.get("device_bound"),
        issuer: opt_named(row, "issuer", |t| t.parse().ok())?,
        challenge: opt_named(row, "challenge", |t| serde_json::from_str(t).ok())?,
    })
}

pub fn challenge(row: &Row) -> ChallengeRecord {
    ChallengeRecord {
        expires_at: uint(row, "expires_at"),
        created_at: uint(row, "created_at"),
        minted_by: row.get("minted_by"),
        endpoint: row.get("endpoint"),
        device_id: row.get("device_id"),
        subject_cn: row.get("subject_cn"),
        san: row.get("san"),
        payload_identifier: row.get("payload_identifier"),
        okta_device_access: row.get("okta_device_access"),
        redeemed_at: opt_uint(row, "redeemed_at"),
    }
}

pub fn challenge_hash(row: &Row) -> Result<[u8; 32], StoreError> {
    row.get::<_, &[u8]>("hash")
        .try_into()
        .map_err(|_| StoreError::Corrupt("challenge hash length".into()))
}

pub fn mdm_client(row: &Row) -> MdmClient {
    MdmClient {
        name: row.get("name"),
        password_hmac: row.get("password_hmac"),
        created_at: uint(row, "created_at"),
        challenge_ttl_seconds: opt_uint(row, "challenge_ttl_seconds"),
    }
}

pub fn audit(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: uint(row, "seq"),
        at: uint(row, "at"),
        event: named(row, "event", AuditEvent::from_name)?,
        actor: row.get("actor"),
        request_id: opt_uint(row, "request_id"),
        serial: opt_named(row, "serial", |t| t.parse().ok())?,
        device_id: row.get("device_id"),
        detail: row.get("detail"),
    })
}
