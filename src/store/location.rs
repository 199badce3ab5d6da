//! Where a store is: `redb:DIR` (a data directory's embedded store) or `postgres://…`.

use std::path::PathBuf;
use std::sync::Arc;

use super::{PgStore, RedbStore, Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// The redb file (`DIR/scepd.redb` for `redb:DIR`, or a `.redb` file named directly).
    Redb(PathBuf),
    /// A PostgreSQL (or CockroachDB, YugabyteDB) connection URL.
    Postgres(String),
}

impl StoreLocation {
    pub fn parse(text: &str) -> Result<StoreLocation, StoreError> {
        if let Some(path) = text.strip_prefix("redb:") {
            let path = PathBuf::from(path);
            return Ok(StoreLocation::Redb(if path.extension().is_some_and(|e| e == "redb") {
                path
            } else {
                crate::datadir::DataDir::new(&path).store_path()
            }));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_string()));
        }
        Err(StoreError::Unsupported(format!(
            "store {:?}: expected redb:DIR or postgres://USER@HOST/DB",
            redact(text)
        )))
    }

    /// Opens the store (a PostgreSQL schema is migrated first, and up to `pool_size`
    /// connections are kept).
    pub fn open(&self, pool_size: u32) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreLocation::Redb(path) => Arc::new(RedbStore::open(path)?),
            StoreLocation::Postgres(url) => Arc::new(PgStore::connect_pooled(url, pool_size)?),
        })
    }

    pub fn is_shared(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }
}

impl std::fmt::Display for StoreLocation {
    /// Without a password, so it can be logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Redb(path) => write!(f, "redb:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`; a `password=` parameter too.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let authority_end = out[scheme_end + 3..]
            .find(['/', '?'])
            .map_or(out.len(), |i| scheme_end + 3 + i);
        if let Some(at) = out[..authority_end].rfind('@') {
            if let Some(colon) = out[scheme_end + 3..at].find(':') {
                out.replace_range(scheme_end + 3 + colon + 1..at, "***");
            }
        }
    }
    if let Some(start) = out.find("password=") {
        let value = start + "password=".len();
        let end = out[value..].find('&').map_or(out.len(), |i| value + i);
        out.replace_range(value..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        assert_eq!(
            StoreLocation::parse("redb:/var/lib/scepd").unwrap(),
            StoreLocation::Redb("/var/lib/scepd/scepd.redb".into())
        );
        assert_eq!(
            StoreLocation::parse("redb:/tmp/x.redb").unwrap(),
            StoreLocation::Redb("/tmp/x.redb".into())
        );
        assert!(StoreLocation::parse("mysql://x").is_err());
        let pg = StoreLocation::parse("postgres://scepd:hunter2@db:5432/scepd?password=other&sslmode=disable").unwrap();
        assert_eq!(
            pg.to_string(),
            "postgres://scepd:***@db:5432/scepd?password=***&sslmode=disable"
        );
        assert_eq!(redact("postgresql://scepd@db/scepd"), "postgresql://scepd@db/scepd");
    }
}
