//! herd-osquery: run osquery SQL against live host state.
//!
//! SQLite (through rusqlite) with one eponymous virtual table per osquery table, each with osquery's name,
//! columns and types, and osquery's constraint rules: index columns are pushed down to the table's generator
//! (equality and `IN` lists), and a table with required columns refuses to run without a constraint on one of
//! them. osquery's SQL functions are registered too, so policies written for osquery run unchanged.
//!
//! Honest data: every value comes from the real source (procfs, sysfs, /etc files, system calls). A value
//! that cannot be obtained is NULL — never invented. Each table's module says which columns are NULL and why.
//!
//! No network, no server knowledge: the agent hands SQL in and gets rows out.

pub mod engine;
pub mod functions;
pub mod table;
pub mod tables;
mod vtab;

pub use engine::{Engine, EngineError, Limits, QueryOutput};
pub use table::{Column, ColumnType, Constraints, Row, Table, TableError, Value};
