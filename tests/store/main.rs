//! The Store contract: one generic suite of what every backend must guarantee, instantiated
//! for each backend: redb, and PostgreSQL when `SCEPD_TEST_DATABASE_URL` is set.

mod contract;
#[path = "../support/scratch_db.rs"]
mod scratch_db;

use std::any::Any;
use std::sync::Arc;

use scepd::store::{PgStore, RedbStore, Store};

type Backend = Option<(Arc<dyn Store>, Box<dyn Any>)>;

/// A fresh redb store in its own directory (kept alive by the returned guard).
fn redb(_test: &str) -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("scepd.redb")).unwrap();
    Some((Arc::new(store), Box::new(dir)))
}

/// A fresh PostgreSQL store in its own scratch database (dropped with the guard).
fn postgres(test: &str) -> Backend {
    let db = scratch_db::ScratchDb::create(test)?;
    let store = PgStore::connect(&db.url).unwrap();
    Some((Arc::new(store), Box::new(db)))
}

macro_rules! instantiate {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let Some((store, guard)) = super::$backend(concat!(stringify!($backend), "::", stringify!($case))) else { return };
                    super::contract::$case(store.as_ref());
                    // The store (and its connections) goes before the database is dropped.
                    drop(store);
                    drop(guard);
                }
            )*
        }
    };
}

instantiate!(redb: issuance_and_retries, challenge_redemption, supersede_and_max_valid, revocation, crl_publication,
    listing, challenge_sweep, mdm_clients, audit_trail, batch_sees_earlier_items, identity, copy_round_trip,
    backup_copy_opens);

// A PostgreSQL store is backed up with the database's tools: backup_copy_opens is redb's.
instantiate!(postgres: issuance_and_retries, challenge_redemption, supersede_and_max_valid, revocation, crl_publication,
    listing, challenge_sweep, mdm_clients, audit_trail, batch_sees_earlier_items, identity, copy_round_trip,
    backup_refused, concurrent_redemptions);
