//! What the web console keeps in the store: operator accounts, sign-in sessions (so that any
//! node serves them) and the paged reads its pages make. Every list is read a page at a time
//! from an index or a bounded scan, never loaded whole: a store holds a million certificates.

use serde::{Deserialize, Serialize};

use scepd_ca::Serial;

use super::{AuditEntry, AuditEvent, CertRecord, CertStatus, StoreError};

/// What a console account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads every page; changes nothing.
    Viewer,
    /// Also revokes, mints challenges and manages MDM credentials.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator].into_iter().find(|r| r.as_str() == name)
    }

    pub fn may_change(self) -> bool {
        self == Role::Operator
    }
}

/// A named console account; the password is kept only as an Argon2id PHC string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: u64,
}

/// SHA-256 of a session id: what the store keeps instead of the id the browser holds.
pub type SessionHash = [u8; 32];

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The account name, or `admin` for the admin token: the actor on the audit trail.
    pub actor: String,
    pub role: Role,
    pub created_at: u64,
    /// Last request seen (updated at most once a minute: see the service).
    pub last_seen: u64,
}

/// Which certificates a list page shows.
#[derive(Clone, Debug, Default)]
pub struct CertQuery {
    pub status: Option<CertStatus>,
    /// A case-insensitive substring of the subject.
    pub subject: Option<String>,
    /// Continue after this serial (pages run in serial order: the primary key's).
    pub after: Option<Serial>,
}

/// One page of certificates; `next` continues the list (also when a bounded scan stopped
/// before filling the page).
#[derive(Clone, Debug, Default)]
pub struct CertPage {
    pub records: Vec<CertRecord>,
    pub next: Option<Serial>,
}

/// Which audit entries a page shows, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub event: Option<AuditEvent>,
    pub actor: Option<String>,
    /// Entries with a sequence number below this one.
    pub before: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next: Option<u64>,
}

/// A device id and how many certificates it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: String,
    pub certificates: u64,
}

/// The overview's certificate figures, from one pass over the store.
#[derive(Clone, Debug, Default)]
pub struct CertSummary {
    pub active: u64,
    pub superseded: u64,
    pub revoked: u64,
    pub expired: u64,
    /// Issuances per day, oldest first, the last being today (UTC).
    pub issued_per_day: Vec<u64>,
    /// Active certificates expiring within the window, soonest first (at most a page).
    pub expiring: Vec<CertRecord>,
    pub expiring_total: u64,
}

/// Records looked at by one bounded scan (a subject search, a status page): a page answers in
/// well under the console's 200 ms target on a million certificates, and offers to go on.
pub const SCAN_BUDGET: usize = 20_000;

/// The console's reads and writes; implemented once per backend.
pub trait ConsoleStore: Send + Sync {
    /// Creates an account unless one of that name exists (false, nothing written).
    fn add_account(&self, account: &Account) -> Result<bool, StoreError>;
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Removes the account and its sessions; whether it existed.
    fn remove_account(&self, name: &str) -> Result<bool, StoreError>;

    fn put_session(&self, hash: &SessionHash, session: &Session) -> Result<(), StoreError>;
    /// Moves an existing session's `last_seen` on; whether it still existed. Never recreates
    /// one: a sign-out or an account's removal that committed meanwhile stays in force.
    fn touch_session(&self, hash: &SessionHash, last_seen: u64) -> Result<bool, StoreError>;
    fn session(&self, hash: &SessionHash) -> Result<Option<Session>, StoreError>;
    fn remove_session(&self, hash: &SessionHash) -> Result<(), StoreError>;
    /// Removes sessions last seen before `idle_before` or created before `created_before`.
    fn sweep_sessions(&self, idle_before: u64, created_before: u64) -> Result<u64, StoreError>;

    /// A page of certificates in serial order.
    fn certificate_page(&self, query: &CertQuery, now: u64, limit: usize) -> Result<CertPage, StoreError>;
    /// Device ids starting with `prefix`, after `after`, in order.
    fn device_page(&self, prefix: &str, after: Option<&str>, limit: usize) -> Result<Vec<DeviceRow>, StoreError>;
    /// A page of the audit trail, newest first.
    fn audit_page(&self, query: &AuditQuery, limit: usize) -> Result<AuditPage, StoreError>;
    /// Counts by status, issuances per day over `days` days and what expires within
    /// `expiring_within` seconds.
    fn certificate_summary(&self, now: u64, days: u32, expiring_within: u64) -> Result<CertSummary, StoreError>;
}

/// Whether `record` belongs on a page for `query` (the filters every backend applies alike).
pub fn matches(record: &CertRecord, query: &CertQuery, now: u64) -> bool {
    query.status.is_none_or(|s| record.status_at(now) == s)
        && query
            .subject
            .as_ref()
            .is_none_or(|s| record.subject.to_lowercase().contains(&s.to_lowercase()))
}

/// Whether `entry` belongs on an audit page for `query`.
pub fn audit_matches(entry: &AuditEntry, query: &AuditQuery) -> bool {
    query.event.is_none_or(|e| entry.event == e) && query.actor.as_ref().is_none_or(|a| entry.actor == *a)
}

/// Adds one certificate to a summary being built (the one policy both backends follow).
pub struct SummaryBuilder {
    summary: CertSummary,
    now: u64,
    first_day: u64,
    expiring_until: u64,
}

const DAY: u64 = 86_400;
/// Expiring certificates listed on the overview (the total is counted).
const EXPIRING_LISTED: usize = 50;

impl SummaryBuilder {
    pub fn new(now: u64, days: u32, expiring_within: u64) -> SummaryBuilder {
        let today = now / DAY;
        SummaryBuilder {
            summary: CertSummary {
                issued_per_day: vec![0; days as usize],
                ..Default::default()
            },
            now,
            first_day: (today + 1).saturating_sub(u64::from(days)),
            expiring_until: now + expiring_within,
        }
    }

    pub fn add(&mut self, r: &CertRecord) {
        let s = &mut self.summary;
        match r.status_at(self.now) {
            CertStatus::Active => {
                s.active += 1;
                if r.not_after <= self.expiring_until {
                    s.expiring_total += 1;
                    s.expiring.push(r.clone());
                }
            }
            CertStatus::Superseded => s.superseded += 1,
            CertStatus::Revoked => s.revoked += 1,
            CertStatus::Expired => s.expired += 1,
        }
        let day = r.issued_at / DAY;
        if day >= self.first_day {
            if let Some(slot) = s.issued_per_day.get_mut((day - self.first_day) as usize) {
                *slot += 1;
            }
        }
        // Keep only the soonest few in memory, however many expire.
        if s.expiring.len() > EXPIRING_LISTED * 4 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.summary.expiring.sort_by_key(|r| (r.not_after, r.serial));
        self.summary.expiring.truncate(EXPIRING_LISTED);
    }

    pub fn finish(mut self) -> CertSummary {
        self.trim();
        self.summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_days_and_keeps_the_soonest_expiring() {
        let now = 100 * DAY + 10;
        let mut b = SummaryBuilder::new(now, 30, 30 * DAY);
        for i in 0..300u64 {
            let mut bytes = [0u8; 16];
            bytes[8..].copy_from_slice(&(i + 1).to_be_bytes());
            let serial = Serial::try_from(&bytes[..]).unwrap();
            let r = CertRecord::issued(&serial, format!("CN=d{i}"), 0, now + DAY + i, now - (i % 40) * DAY);
            b.add(&r);
        }
        let s = b.finish();
        assert_eq!(s.active, 300);
        assert_eq!(s.expiring_total, 300);
        assert_eq!(s.expiring.len(), EXPIRING_LISTED);
        assert_eq!(s.expiring[0].not_after, now + DAY);
        assert_eq!(s.issued_per_day.len(), 30);
        // Issued 0..29 days ago land in the window (7 full rounds of 30, then i = 280..299);
        // 30..39 days ago do not.
        assert_eq!(s.issued_per_day.iter().sum::<u64>(), 7 * 30 + 20);
        // Today: i = 0, 40, …, 280.
        assert_eq!(*s.issued_per_day.last().unwrap(), 8);
    }
}
