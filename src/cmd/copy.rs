//! `coord store copy FROM TO`: a SQLite store (the embedded one or a
//! `--db` file) into PostgreSQL, or back (a backup), keeping ids, read
//! state, presence, todos, locks and the idempotency keys of the last week.
//! Rows already in the target (by key) are left alone, so running it twice
//! copies nothing new; the counts are checked after.

use std::path::PathBuf;

use postgres::types::ToSql;
use rusqlite::types::Value as Lite;

use crate::error::{Error, Result};

/// One end of a copy.
enum End {
    Sqlite(PathBuf),
    Postgres(String),
}

impl End {
    fn parse(s: &str) -> End {
        if crate::pgstore::is_url(s) {
            End::Postgres(s.to_string())
        } else {
            End::Sqlite(PathBuf::from(s))
        }
    }

    fn shown(&self) -> String {
        match self {
            End::Sqlite(p) => p.display().to_string(),
            End::Postgres(u) => crate::pgstore::redact(u),
        }
    }
}

/// A column's kind: how it is read from one engine and written to the other.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    /// 0/1 in SQLite, a boolean in PostgreSQL.
    Bool,
    /// Text in SQLite, its UTF-8 bytes in PostgreSQL (a message's body).
    Bytes,
}

use Kind::*;

/// A table: its name, its key (for "already there") and its columns.
type Table = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// The tables in the order their references need.
const TABLES: &[Table] = &[
    (
        "messages",
        "id",
        &[
            ("id", Int),
            ("from_session", Text),
            ("to_session", Text),
            ("subject", Bytes),
            ("body", Bytes),
            ("created_by_user", Text),
            ("created_by_machine", Text),
            ("created_at", Int),
            ("read_at", Int),
            ("in_reply_to", Int),
            ("shown_at", Int),
        ],
    ),
    (
        "deliveries",
        "message_id, session",
        &[
            ("message_id", Int),
            ("session", Text),
            ("shown_at", Int),
            ("read_at", Int),
        ],
    ),
    (
        "message_reads",
        "message_id, session",
        &[("message_id", Int), ("session", Text), ("read_at", Int)],
    ),
    (
        "broadcast_marks",
        "session",
        &[("session", Text), ("upto", Int), ("at", Int)],
    ),
    (
        "sessions",
        "session_id",
        &[
            ("session_id", Text),
            ("user", Text),
            ("machine", Text),
            ("name", Text),
            ("project", Text),
            ("client", Text),
            ("first_seen", Int),
            ("last_seen", Int),
            ("closed_at", Int),
        ],
    ),
    (
        "touches",
        "project, path, session",
        &[
            ("project", Text),
            ("path", Text),
            ("session", Text),
            ("at", Int),
        ],
    ),
    (
        "todos",
        "id",
        &[
            ("id", Int),
            ("text", Text),
            ("user", Text),
            ("project", Text),
            ("parent_id", Int),
            ("source", Text),
            ("auto", Bool),
            ("status", Text),
            ("created_by_user", Text),
            ("created_by_machine", Text),
            ("created_at", Int),
            ("completed_by", Text),
            ("completed_at", Int),
        ],
    ),
    (
        "locks",
        "project, resource",
        &[
            ("id", Int),
            ("project", Text),
            ("resource", Text),
            ("session_id", Text),
            ("note", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("paths", Text),
        ],
    ),
    (
        "components",
        "project, component",
        &[
            ("project", Text),
            ("component", Text),
            ("state", Text),
            ("version", Text),
            ("notes", Text),
            ("updated_by", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "workflows",
        "name",
        &[
            ("name", Text),
            ("state", Text),
            ("detail", Text),
            ("updated_by", Text),
            ("updated_at", Int),
        ],
    ),
    (
        "idempotency",
        "key",
        &[
            ("key", Text),
            ("status", Int),
            ("body", Text),
            ("created_at", Int),
            ("op", Text),
            ("ref", Int),
        ],
    ),
];

/// A value on its way: what both engines can say.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Val {
    Null,
    Int(i64),
    Text(String),
}

/// An open end: its rows by table, and a way to add rows.
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

fn lite_err(what: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Failed(format!("{what}: {e}"))
}

fn pg_err(what: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |e| {
        let said = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_string());
        Error::Failed(format!("{what}: {said}"))
    }
}

fn quoted(col: &str) -> String {
    format!("\"{col}\"")
}

impl Conn {
    /// Opens (and migrates: the schema is the one this build writes) an end.
    fn open(end: &End) -> Result<Conn> {
        Ok(match end {
            End::Sqlite(p) => {
                drop(crate::store::LocalStore::open(p)?);
                Conn::Sqlite(
                    rusqlite::Connection::open(p)
                        .map_err(|e| Error::Failed(format!("{}: {e}", p.display())))?,
                )
            }
            End::Postgres(url) => {
                drop(crate::pgstore::PgStore::open(url)?);
                let shown = crate::pgstore::redact(url);
                Conn::Postgres(
                    crate::pgstore::target(url)?
                        .connect()
                        .map_err(pg_err(&shown))?,
                )
            }
        })
    }

    fn rows(&mut self, table: &str, cols: &[(&str, Kind)]) -> Result<Vec<Vec<Val>>> {
        let list = cols
            .iter()
            .map(|(c, _)| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {list} FROM {table}");
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare(&sql).map_err(lite_err(table))?;
                let rows = st
                    .query_map([], |r| {
                        (0..cols.len())
                            .map(|i| {
                                Ok(match r.get::<_, Lite>(i)? {
                                    Lite::Null => Val::Null,
                                    Lite::Integer(n) => Val::Int(n),
                                    Lite::Real(f) => Val::Int(f as i64),
                                    Lite::Text(t) => Val::Text(t),
                                    Lite::Blob(b) => {
                                        Val::Text(String::from_utf8_lossy(&b).into_owned())
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<Val>>>()
                    })
                    .map_err(lite_err(table))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(lite_err(table))
            }
            Conn::Postgres(c) => {
                let rows = c.query(&sql, &[]).map_err(pg_err(table))?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        cols.iter()
                            .enumerate()
                            .map(|(i, (_, k))| match k {
                                // BIGINT, or INTEGER (idempotency.status).
                                Int => r
                                    .try_get::<_, Option<i64>>(i)
                                    .or_else(|_| {
                                        r.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from))
                                    })
                                    .ok()
                                    .flatten()
                                    .map_or(Val::Null, Val::Int),
                                Text => r.get::<_, Option<String>>(i).map_or(Val::Null, Val::Text),
                                Bool => r
                                    .get::<_, Option<bool>>(i)
                                    .map_or(Val::Null, |b| Val::Int(i64::from(b))),
                                Bytes => r.get::<_, Option<Vec<u8>>>(i).map_or(Val::Null, |b| {
                                    Val::Text(String::from_utf8_lossy(&b).into_owned())
                                }),
                            })
                            .collect()
                    })
                    .collect())
            }
        }
    }

    /// Adds the rows not already there (by key); answers how many it added.
    fn add(
        &mut self,
        table: &str,
        key: &str,
        cols: &[(&str, Kind)],
        rows: &[Vec<Val>],
    ) -> Result<usize> {
        let list = cols
            .iter()
            .map(|(c, _)| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let key = key.split(", ").map(quoted).collect::<Vec<_>>().join(", ");
        match self {
            Conn::Sqlite(c) => {
                let marks = (1..=cols.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let tx = c.transaction().map_err(lite_err(table))?;
                let mut n = 0;
                {
                    let mut st = tx
                        .prepare(&format!(
                            "INSERT INTO {table} ({list}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING"
                        ))
                        .map_err(lite_err(table))?;
                    for row in rows {
                        let vals: Vec<Lite> = row
                            .iter()
                            .map(|v| match v {
                                Val::Null => Lite::Null,
                                Val::Int(i) => Lite::Integer(*i),
                                Val::Text(t) => Lite::Text(t.clone()),
                            })
                            .collect();
                        n += st
                            .execute(rusqlite::params_from_iter(vals))
                            .map_err(lite_err(table))?;
                    }
                }
                tx.commit().map_err(lite_err(table))?;
                Ok(n)
            }
            Conn::Postgres(c) => {
                let marks = (1..=cols.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut tx = c.transaction().map_err(pg_err(table))?;
                let st = tx
                    .prepare(&format!(
                        "INSERT INTO {table} ({list}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING"
                    ))
                    .map_err(pg_err(table))?;
                let mut n = 0;
                for row in rows {
                    let vals: Vec<Box<dyn ToSql + Sync>> = row
                        .iter()
                        .zip(cols)
                        .map(|(v, (_, k))| -> Box<dyn ToSql + Sync> {
                            match (k, v) {
                                (Int, Val::Int(i)) if table == "idempotency" => {
                                    Box::new(i32::try_from(*i).ok())
                                }
                                (Int, Val::Int(i)) => Box::new(Some(*i)),
                                (Int, _) if table == "idempotency" => Box::new(None::<i32>),
                                (Int, _) => Box::new(None::<i64>),
                                (Bool, v) => Box::new(matches!(v, Val::Int(i) if *i != 0)),
                                (Bytes, Val::Text(t)) => Box::new(Some(t.as_bytes().to_vec())),
                                (Bytes, _) => Box::new(None::<Vec<u8>>),
                                (Text, Val::Text(t)) => Box::new(Some(t.clone())),
                                (Text, Val::Int(i)) => Box::new(Some(i.to_string())),
                                (Text, Val::Null) => Box::new(None::<String>),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|b| b.as_ref()).collect();
                    n += tx.execute(&st, &refs).map_err(pg_err(table))? as usize;
                }
                // New ids continue after the copied ones.
                if cols.iter().any(|(c, _)| *c == "id") {
                    tx.execute(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                             GREATEST((SELECT COALESCE(max(id), 0) FROM {table}), 1))"
                        ),
                        &[],
                    )
                    .map_err(pg_err(table))?;
                }
                tx.commit().map_err(pg_err(table))?;
                // Statistics for the rows just loaded: the servers plan
                // their statements once per connection, from these.
                c.batch_execute(&format!("ANALYZE {table}"))
                    .map_err(pg_err(table))?;
                Ok(n)
            }
        }
    }

    fn count(&mut self, table: &str) -> Result<i64> {
        let sql = format!("SELECT count(*) FROM {table}");
        match self {
            Conn::Sqlite(c) => c.query_row(&sql, [], |r| r.get(0)).map_err(lite_err(table)),
            Conn::Postgres(c) => Ok(c.query_one(&sql, &[]).map_err(pg_err(table))?.get(0)),
        }
    }
}

/// What a copy did, per table: rows in the source, added to the target,
/// and in the target after.
pub struct Copied {
    pub table: &'static str,
    pub source: usize,
    pub added: usize,
    pub target: i64,
}

/// Copies every table of `from` into `to`; checks after that every source
/// row is in the target exactly as it is in the source.
pub fn copy(from: &str, to: &str) -> Result<Vec<Copied>> {
    let (from, to) = (End::parse(from), End::parse(to));
    if from.shown() == to.shown() {
        return Err(Error::Usage(format!(
            "{} is both FROM and TO; give two stores",
            from.shown()
        )));
    }
    if let End::Sqlite(p) = &from
        && !p.is_file()
    {
        return Err(Error::Usage(format!(
            "{}: no such store; FROM is a SQLite file or a postgres:// URL",
            p.display()
        )));
    }
    let mut src = Conn::open(&from)?;
    let mut dst = Conn::open(&to)?;
    let mut out = Vec::new();
    for (table, key, cols) in TABLES {
        let rows = src.rows(table, cols)?;
        let added = dst.add(table, key, cols, &rows)?;
        let target = dst.count(table)?;
        // Every source row is in the target as it is in the source: a key
        // the target already used for another row is named, not skipped.
        let there: std::collections::HashSet<Vec<Val>> =
            dst.rows(table, cols)?.into_iter().collect();
        let differ = rows.iter().filter(|r| !there.contains(*r)).count();
        if differ > 0 {
            return Err(Error::Failed(format!(
                "{table}: {differ} of the {} rows of {} are not in {} as they are in the source (its keys are taken by other rows there); copy into an empty store",
                rows.len(),
                from.shown(),
                to.shown()
            )));
        }
        out.push(Copied {
            table,
            source: rows.len(),
            added,
            target,
        });
    }
    Ok(out)
}

/// `coord store copy FROM TO`, said for a person or as JSON.
pub fn run(json_out: bool, from: &str, to: &str) -> Result<()> {
    let done = copy(from, to)?;
    let json = serde_json::json!({
        "from": End::parse(from).shown(),
        "to": End::parse(to).shown(),
        "tables": done.iter().map(|c| serde_json::json!({
            "table": c.table, "source": c.source, "copied": c.added, "target": c.target,
        })).collect::<Vec<_>>(),
    });
    let mut text = format!(
        "copied {} -> {}\n",
        End::parse(from).shown(),
        End::parse(to).shown()
    );
    for c in &done {
        text.push_str(&format!(
            "  {:<16} {:>8} in the source, {:>8} copied now, {:>8} in the target\n",
            c.table, c.source, c.added, c.target
        ));
    }
    text.push_str("verified: every row of the source is in the target as it is in the source\n");
    if json_out {
        crate::out::out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ));
    } else {
        crate::out::out(&text);
    }
    Ok(())
}
