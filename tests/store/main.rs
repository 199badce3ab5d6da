//! The Store contract: one generic suite of what every backend must guarantee, instantiated
//! for each backend: redb, and PostgreSQL when `SCEPD_TEST_DATABASE_URL` is set.

mod console;
mod contract;
mod outbox;
#[path = "../support/scratch_db.rs"]
mod scratch_db;
#[path = "../support/skip.rs"]
mod skip;

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

instantiate!(redb: issuance_and_retries, challenge_redemption, supersede_and_max_valid, unbound_issuances_never_revoke, revocation, crl_publication,
    listing, challenge_sweep, mdm_clients, audit_trail, batch_sees_earlier_items, identity, copy_round_trip,
    backup_copy_opens, ca_generations);

// A PostgreSQL store is backed up with the database's tools: backup_copy_opens is redb's.
instantiate!(postgres: issuance_and_retries, challenge_redemption, supersede_and_max_valid, unbound_issuances_never_revoke, revocation, crl_publication,
    listing, challenge_sweep, mdm_clients, audit_trail, batch_sees_earlier_items, identity, copy_round_trip,
    backup_refused, concurrent_redemptions, ca_generations);

/// The webhook outbox's contract on both backends.
macro_rules! instantiate_outbox {
    ($name:ident = $backend:ident: $($case:ident),* $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $case() {
                    let Some((store, guard)) = super::$backend(concat!(stringify!($name), "::", stringify!($case))) else { return };
                    super::outbox::$case(store.as_ref());
                    drop(store);
                    drop(guard);
                }
            )*
        }
    };
}

instantiate_outbox!(redb_outbox = redb: events_commit_with_their_cause, leases_give_each_delivery_to_one_node,
    concurrent_claims_are_disjoint, expiring_is_announced_once, announced_once, delivered_ones_are_pruned,
    copies_carry_webhooks, replacing_an_endpoint_is_compare_and_swap);
instantiate_outbox!(postgres_outbox = postgres: events_commit_with_their_cause, leases_give_each_delivery_to_one_node,
    concurrent_claims_are_disjoint, expiring_is_announced_once, announced_once, delivered_ones_are_pruned,
    copies_carry_webhooks, replacing_an_endpoint_is_compare_and_swap);

/// TLS to PostgreSQL with libpq's sslmode meanings, against the test server's own certificate
/// (Debian's PostgreSQL serves a self-signed "snakeoil" one for `localhost`); whether the
/// connections are encrypted is read from the server's `pg_stat_ssl`.
#[test]
fn postgres_tls_modes() {
    let Some(db) = scratch_db::ScratchDb::create("postgres_tls_modes") else {
        return;
    };
    let mut admin = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    if admin.query_one("SHOW ssl", &[]).unwrap().get::<_, String>(0) != "on" {
        skip::skip("postgres_tls_modes", "the server has ssl = off");
        return;
    }
    let with = |params: &str| format!("{}{}{params}", db.url, if db.url.contains('?') { '&' } else { '?' });
    // Each store names its connections, so one store's closing connections are not counted as
    // the next one's.
    let encrypted = |admin: &mut ::postgres::Client, name: &str| -> Vec<bool> {
        admin
            .query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1 AND a.datname = current_database()",
                &[&name],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let store = PgStore::connect(&with("sslmode=require&application_name=tls_require")).unwrap();
    store.ping().unwrap();
    let seen = encrypted(&mut admin, "tls_require");
    assert!(!seen.is_empty() && seen.iter().all(|s| *s), "sslmode=require: {seen:?}");
    drop(store);

    let store = PgStore::connect(&with("sslmode=disable&application_name=tls_disable")).unwrap();
    store.ping().unwrap();
    let seen = encrypted(&mut admin, "tls_disable");
    assert!(
        !seen.is_empty() && seen.iter().all(|s| !*s),
        "sslmode=disable: {seen:?}"
    );
    drop(store);

    // The server's certificate as the root: verify-ca accepts it; verify-full also wants the
    // host name, which 127.0.0.1 is not.
    let cert_file: String = admin.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let cert_file =
        std::path::Path::new(&admin.query_one("SHOW data_directory", &[]).unwrap().get::<_, String>(0)).join(cert_file);
    let pem = std::fs::read_to_string(&cert_file).unwrap();
    let cert: x509_cert::Certificate = der::DecodePem::from_pem(pem.as_bytes()).unwrap();
    if cert.tbs_certificate().issuer() != cert.tbs_certificate().subject() {
        skip::skip(
            "postgres_tls_modes (verify-ca part)",
            "the server certificate is not self-signed",
        );
        return;
    }
    let root = format!("sslrootcert={}", cert_file.display());
    PgStore::connect(&with(&format!("sslmode=verify-ca&{root}")))
        .unwrap()
        .ping()
        .unwrap();
    if db.url.contains("@127.0.0.1") {
        let Err(e) = PgStore::connect(&with(&format!("sslmode=verify-full&{root}"))) else {
            panic!("verify-full accepted 127.0.0.1")
        };
        assert!(e.to_string().contains("not valid for name"), "{e}");
    }
    // Another root: refused.
    let other = scepd_ca::Authority::create(&scepd_ca::CaParams::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other_root = dir.path().join("other.pem");
    std::fs::write(&other_root, scepd_ca::pem::encode("CERTIFICATE", &other.ca.der)).unwrap();
    let Err(e) = PgStore::connect(&with(&format!(
        "sslmode=verify-ca&sslrootcert={}",
        other_root.display()
    ))) else {
        panic!("a server certificate from another root was accepted")
    };
    assert!(e.to_string().contains("invalid peer certificate"), "{e}");
}

/// The server closes the pool's connection (as a restart or a failover does): the next read,
/// and the next write, go through on a fresh connection instead of failing. A pool of one, so
/// that the closed connection is the one the next call draws.
#[test]
fn postgres_reconnects_after_the_server_closed_its_connections() {
    let Some(db) = scratch_db::ScratchDb::create("postgres_reconnects_after_the_server_closed_its_connections") else {
        return;
    };
    let url = format!(
        "{}{}application_name=reconnect",
        db.url,
        if db.url.contains('?') { '&' } else { '?' }
    );
    let store = PgStore::connect_pooled(&url, 1).unwrap();
    let reconnects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&reconnects);
    store.observe(Arc::new(move |event| {
        if event == scepd::store::StoreEvent::Reconnected {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }));
    let mut admin = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let mut close_connections = || {
        let terminated: Vec<bool> = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'reconnect'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!terminated.is_empty() && terminated.iter().all(|t| *t));
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    store.ping().unwrap();
    close_connections();
    assert!(store
        .certificate(&scepd_ca::Serial::fresh())
        .expect("a read after the server closed the connection")
        .is_none());
    assert_eq!(reconnects.load(std::sync::atomic::Ordering::SeqCst), 1);
    close_connections();
    store.ping().expect("a write after the server closed the connection");
    assert_eq!(reconnects.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// A node keeps at most `store_pool_size` connections, however many requests it serves at once.
#[test]
fn postgres_pool_size_is_a_ceiling() {
    let Some(db) = scratch_db::ScratchDb::create("postgres_pool_size_is_a_ceiling") else {
        return;
    };
    let url = format!(
        "{}{}application_name=pool_ceiling",
        db.url,
        if db.url.contains('?') { '&' } else { '?' }
    );
    let store = PgStore::connect_pooled(&url, 3).unwrap();
    let mut admin = ::postgres::Client::connect(&db.url, ::postgres::NoTls).unwrap();
    let most = std::sync::atomic::AtomicI64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..12 {
            scope.spawn(|| {
                for _ in 0..20 {
                    store.ping().unwrap();
                }
            });
        }
        for _ in 0..20 {
            let open: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pool_ceiling'",
                    &[],
                )
                .unwrap()
                .get(0);
            most.fetch_max(open, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let most = most.into_inner();
    assert!((1..=3).contains(&most), "{most} connections open");
}
