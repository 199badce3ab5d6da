//! The console's accounts, sessions and paged reads on PostgreSQL (tables of migration 5).
//! Pages are `ORDER BY` an indexed key with `LIMIT`; the filters are those of
//! [`crate::store::console::matches`], written in SQL.

use postgres::{GenericClient, Row};

use super::super::console::{
    Account, AuditPage, AuditQuery, CertPage, CertQuery, CertSummary, ConsoleStore, DeviceRow, Role, Session,
    SessionHash,
};
use super::super::{StoreError, StoreItem};
use super::pool::Session as PgSession;
use super::rows::{self, int, AUDIT_COLUMNS, CERT_COLUMNS};
use super::{PgStore, Tx, TxError};

const ACCOUNT_COLUMNS: &str = "name, role, password_hash, created_at";

/// Expiring certificates listed on the overview (as the embedded store's summary).
const EXPIRING_LISTED: i64 = 50;
const DAY: u64 = 86_400;

fn role(row: &Row) -> Result<Role, StoreError> {
    let name: &str = row.get("role");
    Role::from_name(name).ok_or_else(|| StoreError::Corrupt(format!("role {name:?}")))
}

fn account(row: &Row) -> Result<Account, StoreError> {
    Ok(Account {
        name: row.get("name"),
        role: role(row)?,
        password_hash: row.get("password_hash"),
        created_at: row.get::<_, i64>("created_at") as u64,
    })
}

fn limit(n: usize) -> i64 {
    n.min(i64::MAX as usize) as i64
}

/// Inserts an account unless one of its name exists; whether it did.
pub(super) fn insert_account(tx: &mut Tx<'_, '_>, a: &Account) -> Result<bool, TxError> {
    let added = tx.execute(
        "INSERT INTO console_accounts (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
        &[&a.name, &a.role.as_str(), &a.password_hash, &int(a.created_at)],
    )?;
    Ok(added == 1)
}

/// The accounts, for a whole-store copy (inside its snapshot).
pub(super) fn export(
    session: &mut PgSession<'_, impl GenericClient>,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for row in session.query(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts ORDER BY name"),
        &[],
    )? {
        sink(StoreItem::ConsoleAccount(account(&row)?))?;
    }
    Ok(())
}

impl ConsoleStore for PgStore {
    fn add_account(&self, a: &Account) -> Result<bool, StoreError> {
        self.write(|tx| insert_account(tx, a))
    }

    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts WHERE name = $1"),
                &[&name],
            )?;
            Ok(row.map(|r| account(&r)).transpose()?)
        })
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|c| {
            let rows = c.query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM console_accounts ORDER BY name"),
                &[],
            )?;
            Ok(rows.iter().map(account).collect::<Result<_, _>>()?)
        })
    }

    fn remove_account(&self, name: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM console_sessions WHERE actor = $1", &[&name])?;
            Ok(tx.execute("DELETE FROM console_accounts WHERE name = $1", &[&name])? == 1)
        })
    }

    fn touch_session(&self, hash: &SessionHash, last_seen: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let touched = tx.execute(
                "UPDATE console_sessions SET last_seen = $2 WHERE id_hash = $1",
                &[&hash.as_slice(), &int(last_seen)],
            )?;
            Ok(touched > 0)
        })
    }

    fn put_session(&self, hash: &SessionHash, s: &Session) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO console_sessions (id_hash, actor, role, created_at, last_seen) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id_hash) DO UPDATE SET last_seen = EXCLUDED.last_seen",
                &[
                    &hash.as_slice(),
                    &s.actor,
                    &s.role.as_str(),
                    &int(s.created_at),
                    &int(s.last_seen),
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, hash: &SessionHash) -> Result<Option<Session>, StoreError> {
        self.read(|c| {
            let row = c.query_opt(
                "SELECT actor, role, created_at, last_seen FROM console_sessions WHERE id_hash = $1",
                &[&hash.as_slice()],
            )?;
            Ok(row
                .map(|r| -> Result<Session, StoreError> {
                    Ok(Session {
                        actor: r.get("actor"),
                        role: role(&r)?,
                        created_at: r.get::<_, i64>("created_at") as u64,
                        last_seen: r.get::<_, i64>("last_seen") as u64,
                    })
                })
                .transpose()?)
        })
    }

    fn remove_session(&self, hash: &SessionHash) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM console_sessions WHERE id_hash = $1", &[&hash.as_slice()])?;
            Ok(())
        })
    }

    fn sweep_sessions(&self, idle_before: u64, created_before: u64) -> Result<u64, StoreError> {
        self.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2",
                &[&int(idle_before), &int(created_before)],
            )?)
        })
    }

    fn certificate_page(&self, query: &CertQuery, now: u64, n: usize) -> Result<CertPage, StoreError> {
        let after = query.after.map(|s| s.to_hex());
        let status = query.status.map(|s| s.as_str());
        let records = self.read(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE ($1::TEXT IS NULL OR serial > $1)
                       AND CASE $2::TEXT
                           WHEN 'active' THEN status = 'active' AND not_after > $3
                           WHEN 'superseded' THEN status = 'superseded' AND not_after > $3
                           WHEN 'revoked' THEN status = 'revoked'
                           WHEN 'expired' THEN status <> 'revoked' AND not_after <= $3
                           ELSE TRUE END
                       AND ($4::TEXT IS NULL OR strpos(lower(subject), lower($4)) > 0)
                     ORDER BY serial LIMIT $5"
                ),
                &[&after, &status, &int(now), &query.subject, &limit(n)],
            )?;
            Ok(rows.iter().map(rows::certificate).collect::<Result<Vec<_>, _>>()?)
        })?;
        let next = (records.len() >= n).then(|| records.last().map(|r| r.serial)).flatten();
        Ok(CertPage { records, next })
    }

    fn device_page(&self, prefix: &str, after: Option<&str>, n: usize) -> Result<Vec<DeviceRow>, StoreError> {
        self.read(|c| {
            let rows = c.query(
                // The page's device ids first (an index scan that stops at the limit), then
                // their counts: never a count over every device.
                "SELECT device_id, count(*) AS n FROM certificates WHERE device_id IN (
                     SELECT DISTINCT device_id FROM certificates
                     WHERE device_id >= $1 AND left(device_id, char_length($1)) = $1
                       AND ($2::TEXT IS NULL OR device_id > $2)
                     ORDER BY device_id LIMIT $3)
                 GROUP BY device_id ORDER BY device_id",
                &[&prefix, &after, &limit(n)],
            )?;
            Ok(rows
                .iter()
                .map(|r| DeviceRow {
                    device_id: r.get("device_id"),
                    certificates: r.get::<_, i64>("n") as u64,
                })
                .collect())
        })
    }

    fn audit_page(&self, query: &AuditQuery, n: usize) -> Result<AuditPage, StoreError> {
        let before = query.before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let event = query.event.map(|e| e.as_str());
        let entries = self.read(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit
                     WHERE seq < $1 AND ($2::TEXT IS NULL OR event = $2) AND ($3::TEXT IS NULL OR actor = $3)
                     ORDER BY seq DESC LIMIT $4"
                ),
                &[&before, &event, &query.actor, &limit(n)],
            )?;
            Ok(rows.iter().map(rows::audit).collect::<Result<Vec<_>, _>>()?)
        })?;
        let next = (entries.len() >= n).then(|| entries.last().map(|e| e.seq)).flatten();
        Ok(AuditPage { entries, next })
    }

    fn certificate_summary(&self, now: u64, days: u32, expiring_within: u64) -> Result<CertSummary, StoreError> {
        let today = now / DAY;
        let first_day = (today + 1).saturating_sub(u64::from(days));
        let until = now + expiring_within;
        self.read(|c| {
            let counts = c.query_one(
                "SELECT count(*) FILTER (WHERE status = 'active' AND not_after > $1),
                        count(*) FILTER (WHERE status = 'superseded' AND not_after > $1),
                        count(*) FILTER (WHERE status = 'revoked'),
                        count(*) FILTER (WHERE status <> 'revoked' AND not_after <= $1),
                        count(*) FILTER (WHERE status = 'active' AND not_after > $1 AND not_after <= $2)
                 FROM certificates",
                &[&int(now), &int(until)],
            )?;
            let get = |i: usize| counts.get::<_, i64>(i) as u64;
            let mut per_day = vec![0u64; days as usize];
            for row in c.query(
                "SELECT issued_at - issued_at % 86400 AS day, count(*) AS n FROM certificates
                 WHERE issued_at >= $1 GROUP BY 1",
                &[&int(first_day * DAY)],
            )? {
                let day = row.get::<_, i64>("day") as u64 / DAY;
                if let Some(slot) = per_day.get_mut(day.saturating_sub(first_day) as usize) {
                    *slot += row.get::<_, i64>("n") as u64;
                }
            }
            let expiring = c.query(
                &format!(
                    "SELECT {CERT_COLUMNS} FROM certificates
                     WHERE status = 'active' AND not_after > $1 AND not_after <= $2
                     ORDER BY not_after, serial LIMIT $3"
                ),
                &[&int(now), &int(until), &EXPIRING_LISTED],
            )?;
            Ok(CertSummary {
                active: get(0),
                superseded: get(1),
                revoked: get(2),
                expired: get(3),
                issued_per_day: per_day,
                expiring: expiring.iter().map(rows::certificate).collect::<Result<_, _>>()?,
                expiring_total: get(4),
            })
        })
    }
}
