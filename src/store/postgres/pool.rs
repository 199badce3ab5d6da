//! The connection pool: r2d2 over synchronous `postgres` clients, each connection with its own
//! prepared statements (PostgreSQL parses and plans a statement once per connection, not once
//! per query, and a query is one round trip instead of two).

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub struct Manager {
    pub config: postgres::Config,
    pub tls: MakeRustlsConnect,
}

/// A pooled connection and the statements prepared on it.
pub struct Connection {
    pub client: postgres::Client,
    pub statements: HashMap<String, Statement>,
    /// Set when an error showed the server is gone: the pool drops the connection.
    pub lost: bool,
}

impl Connection {
    /// Whether `error` (from this connection) means the connection is gone: the server closed
    /// it (a restart, a failover, an administrator) or the network did. Marks it so.
    pub fn check_lost(&mut self, error: &postgres::Error) -> bool {
        let code = error.code().map(|c| c.code());
        // 08: connection exception; 57P01-57P03: the server shutting down or starting.
        // 25006 (read-only transaction): the session was opened read-only (the database's
        // default_transaction_read_only, or a primary that became a standby) and stays so for
        // its life even once the database takes writes again: only a new session sees that.
        let server_gone =
            code.is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "25006"));
        self.lost |= server_gone || error.is_closed() || self.client.is_closed();
        self.lost
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Connection, postgres::Error> {
        Ok(Connection {
            client: self.config.connect(self.tls.clone())?,
            statements: HashMap::new(),
            lost: false,
        })
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    /// A connection the server closed is dropped when it comes back to the pool.
    fn has_broken(&self, conn: &mut Connection) -> bool {
        conn.lost || conn.client.is_closed()
    }
}

/// A client (a connection, or a transaction on it) whose queries go through the connection's
/// prepared statements.
pub struct Session<'a, C: GenericClient> {
    pub client: &'a mut C,
    pub statements: &'a mut HashMap<String, Statement>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Session<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    pub fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    pub fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    /// A statement not worth keeping (its text varies, as a multi-row INSERT's does).
    pub fn execute_once(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
        self.client.execute(sql, params)
    }
}
