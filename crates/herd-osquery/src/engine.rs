//! The engine: one SQLite connection with every table and function registered, and a bounded way to run
//! a query (time limit, row cap).

use crate::table::Table;
use crate::vtab::TableVTab;
use rusqlite::Connection;
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::vtab::eponymous_only_module;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

thread_local! {
    /// When the query running on this thread must end: tables that wait on IO (curl, helpers) stop by then,
    /// since SQLite's progress handler cannot interrupt a table while it generates rows.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Time left for the query running on this thread; outside a query, the default limit.
pub(crate) fn time_left() -> Duration {
    match DEADLINE.with(Cell::get) {
        Some(deadline) => deadline.saturating_duration_since(Instant::now()),
        None => Limits::default().timeout,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Sql(String),
    #[error("query ran longer than {0:?}")]
    Timeout(Duration),
    #[error("query returned more than {0} rows")]
    TooManyRows(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(30), max_rows: 100_000 }
    }
}

/// Rows as osquery gives them: column names in order, values as text or NULL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl QueryOutput {
    /// Rows as maps of column → value, for JSON (`osqueryi --json` shape).
    pub fn records(&self) -> Vec<std::collections::BTreeMap<String, Option<String>>> {
        self.rows.iter().map(|row| self.columns.iter().cloned().zip(row.iter().cloned()).collect()).collect()
    }
}

pub struct Engine {
    conn: Connection,
    tables: Vec<Arc<dyn Table>>,
    interrupted: Arc<AtomicBool>,
}

impl Engine {
    /// An engine with every table this platform has and osquery's functions; osquery_flags shows
    /// osquery's defaults.
    pub fn new() -> Result<Engine, EngineError> {
        Engine::with_flags(crate::tables::default_flags())
    }

    /// An engine whose osquery_flags table shows `flags` (the running agent's settings).
    pub fn with_flags(flags: crate::tables::SharedFlags) -> Result<Engine, EngineError> {
        Engine::with_tables(crate::tables::all(flags))
    }

    pub fn with_tables(tables: Vec<Arc<dyn Table>>) -> Result<Engine, EngineError> {
        let sql = |e: rusqlite::Error| EngineError::Sql(e.to_string());
        let conn = Connection::open_in_memory().map_err(sql)?;
        // osquery's SQLite accepts double-quoted string literals ("foo" = 'foo' when no column is named foo).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, true).map_err(sql)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, true).map_err(sql)?;
        crate::functions::register(&conn).map_err(sql)?;
        for table in &tables {
            conn.create_module(table.name(), eponymous_only_module::<TableVTab>(), Some(table.clone())).map_err(sql)?;
        }
        Ok(Engine { conn, tables, interrupted: Arc::new(AtomicBool::new(false)) })
    }

    pub fn tables(&self) -> &[Arc<dyn Table>] {
        &self.tables
    }

    pub fn table(&self, name: &str) -> Option<&Arc<dyn Table>> {
        self.tables.iter().find(|t| t.name() == name)
    }

    /// Runs one statement. Errors read like osquery's ("no such table: foo", "table file requires ...").
    pub fn query(&self, sql: &str, limits: Limits) -> Result<QueryOutput, EngineError> {
        let started = Instant::now();
        let interrupted = self.interrupted.clone();
        interrupted.store(false, Ordering::Relaxed);
        let flag = interrupted.clone();
        // SQLite calls this every few thousand VM steps; returning true interrupts the query.
        let sql_err = |e: rusqlite::Error| EngineError::Sql(e.to_string());
        self.conn
            .progress_handler(
                10_000,
                Some(move || {
                    let late = started.elapsed() > limits.timeout;
                    if late {
                        flag.store(true, Ordering::Relaxed);
                    }
                    late
                }),
            )
            .map_err(sql_err)?;
        DEADLINE.with(|d| d.set(Some(started + limits.timeout)));
        let outcome = self.run(sql, limits);
        DEADLINE.with(|d| d.set(None));
        self.conn.progress_handler(0, None::<fn() -> bool>).map_err(sql_err)?;
        match outcome {
            Err(_) if interrupted.load(Ordering::Relaxed) => Err(EngineError::Timeout(limits.timeout)),
            other => other,
        }
    }

    fn run(&self, sql: &str, limits: Limits) -> Result<QueryOutput, EngineError> {
        let sql_err = |e: rusqlite::Error| EngineError::Sql(e.to_string());
        let mut statement = self.conn.prepare(sql).map_err(sql_err)?;
        let columns: Vec<String> = statement.column_names().into_iter().map(String::from).collect();
        let mut rows = statement.query([]).map_err(sql_err)?;
        let mut output = QueryOutput { columns, rows: Vec::new() };
        while let Some(row) = rows.next().map_err(sql_err)? {
            if output.rows.len() == limits.max_rows {
                return Err(EngineError::TooManyRows(limits.max_rows));
            }
            let values = (0..output.columns.len())
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(v) => Some(v.to_string()),
                        ValueRef::Real(v) => Some(v.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)?;
            output.rows.push(values);
        }
        Ok(output)
    }

    /// `CREATE TABLE` text of a table, as osqueryi's `.schema` prints it.
    pub fn schema(&self, name: &str) -> Option<String> {
        let table = self.table(name)?;
        let columns: Vec<String> = table
            .columns()
            .iter()
            .map(|c| format!("`{}` {}{}", c.name, c.kind.sql(), if c.hidden { " HIDDEN" } else { "" }))
            .collect();
        Some(format!("CREATE TABLE {}({});", table.name(), columns.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, Constraints, Row, TableError, Value};

    /// A table whose one row is the time its generator was given.
    struct TimeGiven;

    impl Table for TimeGiven {
        fn name(&self) -> &'static str {
            "time_given"
        }
        fn description(&self) -> &'static str {
            "The time left when rows were generated."
        }
        fn columns(&self) -> &'static [Column] {
            const COLUMNS: &[Column] = &[Column::bigint("millis")];
            COLUMNS
        }
        fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
            Ok(vec![Row::from([("millis", Value::Int(time_left().as_millis() as i64))])])
        }
    }

    #[test]
    fn tables_are_given_the_time_left_to_their_query() {
        let engine = Engine::with_tables(vec![Arc::new(TimeGiven)]).unwrap();
        let limits = Limits { timeout: Duration::from_secs(5), max_rows: 10 };
        let out = engine.query("SELECT millis FROM time_given", limits).unwrap();
        let millis: i64 = out.rows[0][0].as_deref().unwrap().parse().unwrap();
        assert!((1..=5_000).contains(&millis), "{millis}");
        assert_eq!(time_left(), Limits::default().timeout, "outside a query: the default limit");
    }
}
