//! The Store contract: one generic suite of what every backend must guarantee, instantiated
//! for each backend (redb here; a networked backend adds its own instantiation).

mod contract;

use std::sync::Arc;

use scepd::store::{RedbStore, Store};

/// A fresh redb store in its own directory (kept alive by the returned guard).
fn redb() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("scepd.redb")).unwrap();
    (Arc::new(store), dir)
}

macro_rules! instantiate {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $case() {
                    let (store, _guard) = super::$backend();
                    super::contract::$case(store.as_ref());
                }
            )*
        }
    };
}

instantiate!(redb: issuance_and_retries, challenge_redemption, supersede_and_max_valid, revocation, crl_numbers,
    listing, challenge_sweep, mdm_clients, audit_trail, batch_sees_earlier_items, backup_copy_opens);
