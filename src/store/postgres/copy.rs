//! `scepd store copy` on PostgreSQL: every record out, from one snapshot, page by page; and in,
//! with its own sequence numbers and counters.

use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel, Row};

use super::super::{StoreError, StoreItem};
use super::pool::{self, Session};
use super::records::{
    crl_state, insert_audit_in, insert_certificate, insert_challenges_in, insert_mdm_client_in, put_crl_in, set_counter,
};
use super::rows::{self, int, AUDIT_COLUMNS, CERT_COLUMNS, CHALLENGE_COLUMNS, MDM_COLUMNS};
use super::{Tx, TxError};

/// Rows per page.
const PAGE: i64 = 1000;

/// Hands every row of `sql` (which takes the last key seen as `$1` and the page size as `$2`)
/// to `emit`, a page at a time; `key` is the ordering key of a row.
fn paged<K: ToSql + Sync>(
    session: &mut Session<'_, impl GenericClient>,
    sql: &str,
    mut last: K,
    key: impl Fn(&Row) -> Result<K, StoreError>,
    mut emit: impl FnMut(&Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    loop {
        let page = session.query(sql, &[&last, &PAGE])?;
        for row in &page {
            emit(row)?;
            last = key(row)?;
        }
        if (page.len() as i64) < PAGE {
            return Ok(());
        }
    }
}

pub(super) fn export(
    conn: &mut pool::Connection,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let pool::Connection { client, statements, .. } = conn;
    // One snapshot for every page (on CockroachDB REPEATABLE READ is SERIALIZABLE).
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let mut tx = Session {
        client: &mut tx,
        statements,
    };
    paged(
        &mut tx,
        &format!("SELECT {CERT_COLUMNS}, der FROM certificates WHERE seq > $1 ORDER BY seq LIMIT $2"),
        -1i64,
        |row| Ok(row.get::<_, i64>("seq")),
        |row| sink(StoreItem::Certificate(rows::certificate(row)?, row.get("der"))),
    )?;
    paged(
        &mut tx,
        &format!("SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE hash > $1 ORDER BY hash LIMIT $2"),
        Vec::<u8>::new(),
        |row| Ok(rows::challenge_hash(row)?.to_vec()),
        |row| sink(StoreItem::Challenge(rows::challenge_hash(row)?, rows::challenge(row))),
    )?;
    paged(
        &mut tx,
        &format!("SELECT {MDM_COLUMNS} FROM mdm_clients WHERE name > $1 ORDER BY name LIMIT $2"),
        String::new(),
        |row| Ok(row.get::<_, String>("name")),
        |row| sink(StoreItem::MdmClient(rows::mdm_client(row))),
    )?;
    paged(
        &mut tx,
        &format!("SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
        0i64,
        |row| Ok(row.get::<_, i64>("seq")),
        |row| sink(StoreItem::Audit(rows::audit(row)?)),
    )?;
    for row in tx.query("SELECT name, value FROM counters WHERE name <> 'ping'", &[])? {
        sink(StoreItem::Counter(row.get(0), row.get::<_, i64>(1) as u64))?;
    }
    let cert_seq: Option<i64> = tx.query_one("SELECT max(seq) FROM certificates", &[])?.get(0);
    sink(StoreItem::Counter("cert_seq".into(), cert_seq.unwrap_or(0) as u64))?;
    if let Some(crl) = crl_state(&mut tx)?.published {
        sink(StoreItem::Crl(crl))?;
    }
    for row in tx.query("SELECT name, value FROM identity", &[])? {
        sink(StoreItem::Identity(row.get(0), row.get(1)))?;
    }
    super::ca::export(&mut tx, sink)?;
    super::outbox::export(&mut tx, sink)?;
    super::console::export(&mut tx, sink)?;
    Ok(())
}

pub(super) fn import(tx: &mut Tx<'_, '_>, items: &[StoreItem]) -> Result<(), TxError> {
    let mut challenges = Vec::new();
    let mut audit = Vec::new();
    for item in items {
        match item {
            // Every certificate since the first release carries its issuance number.
            StoreItem::Certificate(record, _) if record.seq == 0 => {
                return Err(StoreError::Corrupt(format!(
                    "certificate {} has no issuance number (a development build wrote it)",
                    record.serial
                ))
                .into())
            }
            StoreItem::Certificate(record, der) => insert_certificate(tx, record, der, Some(record.seq))?,
            StoreItem::Challenge(hash, record) => challenges.push((*hash, record.clone())),
            StoreItem::MdmClient(client) => {
                insert_mdm_client_in(tx, client, "")?;
            }
            StoreItem::Audit(entry) => audit.push(entry.clone()),
            // The certificates' sequence continues after the highest copied.
            StoreItem::Counter(name, value) if name == "cert_seq" => {
                tx.query_one(
                    "SELECT setval('certificate_seq', GREATEST($1, (SELECT COALESCE(max(seq), 1) FROM certificates)))",
                    &[&int(*value)],
                )?;
            }
            StoreItem::Counter(name, value) => set_counter(tx, name, *value)?,
            StoreItem::Crl(crl) => put_crl_in(tx, crl)?,
            StoreItem::CaGeneration(_) | StoreItem::IssuerCrl(_) => super::ca::import(tx, item)?,
            StoreItem::WebhookEndpoint(_) | StoreItem::WebhookDelivery(_) | StoreItem::Announced(..) => {
                super::outbox::import(tx, item)?
            }
            StoreItem::Identity(name, value) => {
                tx.execute(
                    "INSERT INTO identity (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    &[name, value],
                )?;
            }
            StoreItem::ConsoleAccount(account) => {
                super::console::insert_account(tx, account)?;
            }
        }
    }
    insert_challenges_in(tx, &challenges)?;
    insert_audit_in(tx, &audit)?;
    if let Some(last) = audit.last() {
        // A copy from redb carries no audit counter: the trail continues after its last entry.
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('audit_seq', $1)
             ON CONFLICT (name) DO UPDATE SET value = GREATEST(counters.value, excluded.value)",
            &[&int(last.seq)],
        )?;
    }
    Ok(())
}
