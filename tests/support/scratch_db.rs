//! A scratch PostgreSQL database per test, on the server `SCEPD_TEST_DATABASE_URL` names
//! (`.ci/run` sets it); created empty and dropped when the test ends. Without the variable the
//! PostgreSQL tests say that they were skipped (and fail under CI=true, see `skip.rs`), so the
//! test command still works on a machine without PostgreSQL.

use std::sync::atomic::{AtomicU32, Ordering};

use super::skip::skip;

pub const ENV: &str = "SCEPD_TEST_DATABASE_URL";

pub struct ScratchDb {
    admin_url: String,
    name: String,
    /// The scratch database's URL.
    pub url: String,
}

impl ScratchDb {
    /// A new empty database, or None when `SCEPD_TEST_DATABASE_URL` is unset (see [`skip`]).
    pub fn create(test: &str) -> Option<ScratchDb> {
        let Some(admin_url) = std::env::var(ENV).ok().filter(|u| !u.is_empty()) else {
            skip(test, &format!("{ENV} is not set (PostgreSQL tests need a server)"));
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "scepd_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("{ENV}={admin_url} is set but not reachable: {e}"));
        client.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        Some(ScratchDb {
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// `url` naming database `name` instead (its query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
