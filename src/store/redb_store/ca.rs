//! The CA generations of a rollover in the embedded store (see `store::ca_state`).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use scepd_ca::IssuerId;

use super::{decode, encode, encode_with_crl, RedbFile};
use crate::store::ca_state::{self, Activation, AddGeneration, CaGenerationRecord, CaStore, IssuerCrl};
use crate::store::{CrlState, StoreError, StoreItem, StoredCrl};

/// Issuer id (hex) → [`CaGenerationRecord`].
const CA_GENERATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("ca_generations");
/// Issuer id (hex) → [`IssuerCrl`].
const CA_CRLS: TableDefinition<&str, &[u8]> = TableDefinition::new("ca_crls");

pub(super) fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CA_GENERATIONS)?;
    txn.open_table(CA_CRLS)?;
    Ok(())
}

fn generations(table: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Vec<CaGenerationRecord>, StoreError> {
    let mut out: Vec<CaGenerationRecord> = Vec::new();
    for entry in table.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    out.sort_by_key(|g| (g.seq, g.added_at));
    Ok(out)
}

fn issuer_crl(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    issuer: &IssuerId,
) -> Result<IssuerCrl, StoreError> {
    Ok(match table.get(issuer.to_hex().as_str())? {
        Some(v) => decode(v.value())?,
        None => IssuerCrl {
            issuer: *issuer,
            last_number: 0,
            published: None,
        },
    })
}

pub(super) fn export(
    txn: &redb::ReadTransaction,
    sink: &mut dyn FnMut(StoreItem) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for generation in generations(&txn.open_table(CA_GENERATIONS)?)? {
        sink(StoreItem::CaGeneration(generation))?;
    }
    for entry in txn.open_table(CA_CRLS)?.iter()? {
        sink(StoreItem::IssuerCrl(decode(entry?.1.value())?))?;
    }
    Ok(())
}

pub(super) fn import(txn: &redb::WriteTransaction, item: &StoreItem) -> Result<(), StoreError> {
    match item {
        StoreItem::CaGeneration(g) => {
            txn.open_table(CA_GENERATIONS)?
                .insert(g.issuer.to_hex().as_str(), encode(g)?.as_slice())?;
        }
        StoreItem::IssuerCrl(c) => {
            txn.open_table(CA_CRLS)?.insert(
                c.issuer.to_hex().as_str(),
                encode_with_crl(c, c.published.as_ref().map_or(0, |p| p.der.len()))?.as_slice(),
            )?;
        }
        _ => {}
    }
    Ok(())
}

impl CaStore for RedbFile {
    fn ca_generations(&self) -> Result<Vec<CaGenerationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        generations(&txn.open_table(CA_GENERATIONS)?)
    }

    fn add_ca_generation(&self, generation: &CaGenerationRecord, now: u64) -> Result<AddGeneration, StoreError> {
        let txn = self.db.begin_write()?;
        let verdict = {
            let mut table = txn.open_table(CA_GENERATIONS)?;
            let existing = generations(&table)?;
            let verdict = ca_state::may_add(&existing, generation, now);
            if verdict == AddGeneration::Added {
                let numbered = ca_state::numbered(&existing, generation);
                table.insert(generation.issuer.to_hex().as_str(), encode(&numbered)?.as_slice())?;
            }
            verdict
        };
        txn.commit()?;
        Ok(verdict)
    }

    fn activate_next_ca(&self, at: u64) -> Result<Activation, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let mut table = txn.open_table(CA_GENERATIONS)?;
            let all = generations(&table)?;
            match ca_state::to_activate(&all) {
                None => Activation::NoNext,
                Some(next) => {
                    let activated = CaGenerationRecord {
                        activate_at: Some(at),
                        ..next.clone()
                    };
                    table.insert(activated.issuer.to_hex().as_str(), encode(&activated)?.as_slice())?;
                    Activation::Scheduled(activated)
                }
            }
        };
        txn.commit()?;
        Ok(outcome)
    }

    fn remove_ca_generation(&self, issuer: &IssuerId, at: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut table = txn.open_table(CA_GENERATIONS)?;
            let key = issuer.to_hex();
            let found: Option<CaGenerationRecord> = table.get(key.as_str())?.map(|v| decode(v.value())).transpose()?;
            match found.filter(|g| g.removed_at.is_none()) {
                Some(g) => {
                    let removed = CaGenerationRecord {
                        removed_at: Some(at),
                        ..g
                    };
                    table.insert(key.as_str(), encode(&removed)?.as_slice())?;
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(removed)
    }

    fn issuer_crl(&self, issuer: &IssuerId) -> Result<CrlState, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(issuer_crl(&txn.open_table(CA_CRLS)?, issuer)?.state())
    }

    fn publish_issuer_crl(&self, issuer: &IssuerId, crl: &StoredCrl) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let published = {
            let mut table = txn.open_table(CA_CRLS)?;
            let current = issuer_crl(&table, issuer)?;
            if current.last_number + 1 != crl.number {
                false
            } else {
                let next = IssuerCrl {
                    issuer: *issuer,
                    last_number: crl.number,
                    published: Some(crl.clone()),
                };
                table.insert(
                    issuer.to_hex().as_str(),
                    encode_with_crl(&next, crl.der.len())?.as_slice(),
                )?;
                true
            }
        };
        if !published {
            txn.abort()?;
            return Ok(false);
        }
        txn.commit()?;
        Ok(true)
    }
}
