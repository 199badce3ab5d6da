//! The CA generations of a rollover in PostgreSQL (see `store::ca_state`; schema migration 3).

use postgres::{GenericClient, Row};
use scepd_ca::IssuerId;

use super::pool::Session;
use super::rows::{int, opt_int};
use super::{PgStore, Tx, TxError};
use crate::store::ca_state::{self, Activation, AddGeneration, CaGenerationRecord, CaStore, IssuerCrl};
use crate::store::{CrlState, StoreError, StoreItem, StoredCrl};

const GENERATION_COLUMNS: &str = "issuer, ca_der, ra_der, added_at, activate_at, removed_at, seq";
const CRL_COLUMNS: &str = "issuer, last_number, number, epoch, this_update, next_update, der";

fn issuer(row: &Row) -> Result<IssuerId, StoreError> {
    let text: &str = row.get("issuer");
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("issuer {text:?}")))
}

fn generation(row: &Row) -> Result<CaGenerationRecord, StoreError> {
    Ok(CaGenerationRecord {
        issuer: issuer(row)?,
        ca_der: row.get("ca_der"),
        ra_der: row.get("ra_der"),
        added_at: row.get::<_, i64>("added_at") as u64,
        activate_at: row.get::<_, Option<i64>>("activate_at").map(|v| v as u64),
        removed_at: row.get::<_, Option<i64>>("removed_at").map(|v| v as u64),
        seq: row.get::<_, i64>("seq") as u64,
    })
}

fn issuer_crl(row: &Row) -> Result<IssuerCrl, StoreError> {
    Ok(IssuerCrl {
        issuer: issuer(row)?,
        last_number: row.get::<_, i64>("last_number") as u64,
        published: row.get::<_, Option<i64>>("number").map(|number| StoredCrl {
            number: number as u64,
            epoch: row.get::<_, i64>("epoch") as u64,
            this_update: row.get::<_, i64>("this_update") as u64,
            next_update: row.get::<_, i64>("next_update") as u64,
            der: row.get("der"),
        }),
    })
}

fn generations(session: &mut Session<'_, impl GenericClient>) -> Result<Vec<CaGenerationRecord>, TxError> {
    let rows = session.query(
        &format!("SELECT {GENERATION_COLUMNS} FROM ca_generations ORDER BY seq, added_at, issuer"),
        &[],
    )?;
    Ok(rows.iter().map(generation).collect::<Result<_, _>>()?)
}

fn put_generation(tx: &mut Tx<'_, '_>, g: &CaGenerationRecord) -> Result<(), TxError> {
    tx.execute(
        &format!(
            "INSERT INTO ca_generations ({GENERATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (issuer) DO UPDATE SET activate_at = excluded.activate_at, removed_at = excluded.removed_at"
        ),
        &[
            &g.issuer.to_hex(),
            &g.ca_der,
            &g.ra_der,
            &int(g.added_at),
            &opt_int(g.activate_at),
            &opt_int(g.removed_at),
            &int(g.seq),
        ],
    )?;
    Ok(())
}

fn put_crl(tx: &mut Tx<'_, '_>, c: &IssuerCrl) -> Result<(), TxError> {
    let p = c.published.as_ref();
    tx.execute(
        &format!(
            "INSERT INTO ca_crls ({CRL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (issuer) DO UPDATE SET last_number = excluded.last_number, number = excluded.number,
             epoch = excluded.epoch, this_update = excluded.this_update, next_update = excluded.next_update,
             der = excluded.der"
        ),
        &[
            &c.issuer.to_hex(),
            &int(c.last_number),
            &p.map(|p| int(p.number)),
            &p.map(|p| int(p.epoch)),
            &p.map(|p| int(p.this_update)),
            &p.map(|p| int(p.next_update)),
            &p.map(|p| p.der.clone()),
        ],
    )?;
    Ok(())
}

fn crl_of(session: &mut Session<'_, impl GenericClient>, id: &IssuerId) -> Result<IssuerCrl, TxError> {
    let row = session.query_opt(
        &format!("SELECT {CRL_COLUMNS} FROM ca_crls WHERE issuer = $1"),
        &[&id.to_hex()],
    )?;
    Ok(match row {
        Some(row) => issuer_crl(&row)?,
        None => IssuerCrl {
            issuer: *id,
            last_number: 0,
            published: None,
        },
    })
}

/// `store copy`: every generation and issuer CRL.
pub(super) fn export(
    session: &mut Session<'_, impl GenericClient>,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for g in generations(session)? {
        sink(StoreItem::CaGeneration(g))?;
    }
    for row in session.query(&format!("SELECT {CRL_COLUMNS} FROM ca_crls"), &[])? {
        sink(StoreItem::IssuerCrl(issuer_crl(&row)?))?;
    }
    Ok(())
}

pub(super) fn import(tx: &mut Tx<'_, '_>, item: &StoreItem) -> Result<(), TxError> {
    match item {
        StoreItem::CaGeneration(g) => put_generation(tx, g),
        StoreItem::IssuerCrl(c) => put_crl(tx, c),
        _ => Ok(()),
    }
}

impl CaStore for PgStore {
    fn ca_generations(&self) -> Result<Vec<CaGenerationRecord>, StoreError> {
        self.read(generations)
    }

    fn add_ca_generation(&self, new: &CaGenerationRecord, now: u64) -> Result<AddGeneration, StoreError> {
        self.write(|tx| {
            let existing = generations(tx)?;
            let verdict = ca_state::may_add(&existing, new, now);
            if verdict == AddGeneration::Added {
                put_generation(tx, &ca_state::numbered(&existing, new))?;
            }
            Ok(verdict)
        })
    }

    fn activate_next_ca(&self, at: u64) -> Result<Activation, StoreError> {
        self.write(|tx| {
            let all = generations(tx)?;
            let Some(next) = ca_state::to_activate(&all) else {
                return Ok(Activation::NoNext);
            };
            let activated = CaGenerationRecord {
                activate_at: Some(at),
                ..next.clone()
            };
            put_generation(tx, &activated)?;
            Ok(Activation::Scheduled(activated))
        })
    }

    fn issuer_crl(&self, id: &IssuerId) -> Result<CrlState, StoreError> {
        self.read(|c| Ok(crl_of(c, id)?.state()))
    }

    fn remove_ca_generation(&self, id: &IssuerId, at: u64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let removed = tx.execute(
                "UPDATE ca_generations SET removed_at = $2 WHERE issuer = $1 AND removed_at IS NULL",
                &[&id.to_hex(), &int(at)],
            )?;
            Ok(removed > 0)
        })
    }

    fn publish_issuer_crl(&self, id: &IssuerId, crl: &StoredCrl) -> Result<bool, StoreError> {
        self.write(|tx| {
            if crl_of(tx, id)?.last_number + 1 != crl.number {
                return Ok(false);
            }
            put_crl(
                tx,
                &IssuerCrl {
                    issuer: *id,
                    last_number: crl.number,
                    published: Some(crl.clone()),
                },
            )?;
            Ok(true)
        })
    }
}
