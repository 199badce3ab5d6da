//! What the store keeps about a certificate.

use scepd_ca::Serial;
use serde::{Deserialize, Serialize};

/// Stored status. `expired` is not stored: it is derived from notAfter when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    Active,
    Superseded,
    Revoked,
    Expired,
}

impl CertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Active => "active",
            CertStatus::Superseded => "superseded",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }
}

/// One issued certificate. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Upper-case hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub subject: String,
    pub not_before: u64,
    pub not_after: u64,
    pub status: CertStatus,
    pub device_id: Option<String>,
    pub transaction_id: String,
    /// SHA-256 of the CSR, hex: a retry with the same transactionID must carry the same CSR.
    pub csr_sha256: String,
    pub issued_at: u64,
}

impl CertRecord {
    /// The status as of `now`: an active or superseded certificate past notAfter is expired.
    pub fn status_at(&self, now: u64) -> CertStatus {
        match self.status {
            CertStatus::Active | CertStatus::Superseded if self.not_after <= now => CertStatus::Expired,
            s => s,
        }
    }
}

/// A certificate to record.
#[derive(Clone, Debug)]
pub struct Issuance {
    pub serial: Serial,
    pub record: CertRecord,
    pub der: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IssuanceOutcome {
    Stored,
    /// The transactionID was already issued for the same CSR: this is that certificate.
    AlreadyIssued(CertRecord, Vec<u8>),
    /// The transactionID was already used for a different CSR.
    TransactionConflict,
    SerialTaken,
}

/// Which certificates to list.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    pub device_id: Option<String>,
    pub status: Option<CertStatus>,
}
