//! A connection to PostgreSQL and the statements prepared on it, shared by
//! its reads and by the transactions it runs.

use std::time::Duration;

use postgres::{Client, Row, Statement, Transaction};

/// A connection and the statements prepared on it: a statement is then one
/// round trip, its SQL parsed once per connection rather than per call
/// (and PostgreSQL may keep its plan).
pub struct Conn {
    pub(super) client: Client,
    pub(super) cache: Statements,
}

type Params<'a> = &'a [&'a (dyn postgres::types::ToSql + Sync)];
type PgResult<T> = std::result::Result<T, postgres::Error>;

/// How long a prepared statement (and so its plan) is kept: then it is
/// prepared again, planned from the statistics of the tables as they have
/// grown since (autovacuum's ANALYZE keeps them).
const REPLAN_EVERY: Duration = Duration::from_secs(600);

/// The statements prepared on one connection, by their SQL.
pub(super) struct Statements {
    by_sql: std::collections::HashMap<String, Statement>,
    since: std::time::Instant,
}

impl Default for Statements {
    fn default() -> Statements {
        Statements {
            by_sql: std::collections::HashMap::new(),
            since: std::time::Instant::now(),
        }
    }
}

impl Statements {
    /// `sql` prepared, through `prepare` the first time it is asked for.
    fn get(
        &mut self,
        sql: &str,
        prepare: impl FnOnce(&str) -> PgResult<Statement>,
    ) -> PgResult<Statement> {
        if self.since.elapsed() >= REPLAN_EVERY {
            *self = Statements::default();
        }
        if let Some(s) = self.by_sql.get(sql) {
            return Ok(s.clone());
        }
        let s = prepare(sql)?;
        if self.by_sql.len() >= 256 {
            self.by_sql.clear();
        }
        self.by_sql.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// The statements both a connection and a transaction on it run, each
/// prepared once per connection.
pub trait Run {
    type Client: postgres::GenericClient;
    fn statement(&mut self, sql: &str) -> PgResult<Statement>;
    fn client(&mut self) -> &mut Self::Client;

    fn query(&mut self, sql: &str, p: Params<'_>) -> PgResult<Vec<Row>> {
        let s = self.statement(sql)?;
        postgres::GenericClient::query(self.client(), &s, p)
    }

    fn query_one(&mut self, sql: &str, p: Params<'_>) -> PgResult<Row> {
        let s = self.statement(sql)?;
        postgres::GenericClient::query_one(self.client(), &s, p)
    }

    fn query_opt(&mut self, sql: &str, p: Params<'_>) -> PgResult<Option<Row>> {
        let s = self.statement(sql)?;
        postgres::GenericClient::query_opt(self.client(), &s, p)
    }

    fn execute(&mut self, sql: &str, p: Params<'_>) -> PgResult<u64> {
        let s = self.statement(sql)?;
        postgres::GenericClient::execute(self.client(), &s, p)
    }
}

impl Conn {
    pub(super) fn new(client: Client) -> Conn {
        Conn {
            client,
            cache: Statements::default(),
        }
    }
}

impl Run for Conn {
    type Client = Client;
    fn statement(&mut self, sql: &str) -> PgResult<Statement> {
        let client = &mut self.client;
        self.cache.get(sql, |sql| client.prepare(sql))
    }

    fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A transaction whose statements come from its connection's cache.
pub struct Tx<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) cache: &'a mut Statements,
}

impl<'a> Run for Tx<'a> {
    type Client = Transaction<'a>;
    fn statement(&mut self, sql: &str) -> PgResult<Statement> {
        let tx = &mut self.tx;
        self.cache.get(sql, |sql| tx.prepare(sql))
    }

    fn client(&mut self) -> &mut Transaction<'a> {
        &mut self.tx
    }
}
