//! What a table is: its schema, and a generator of rows for the constraints a query pushed down.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Integer,
    BigInt,
    Double,
    /// osquery-go's boolean columns (extension tables such as fleetd's): 1 or 0.
    Boolean,
}

impl ColumnType {
    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::BigInt => "BIGINT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Boolean => "BOOLEAN",
        }
    }
}

/// A column, with osquery's flags.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    /// Constraints on it are pushed down to the generator (equality and IN).
    pub index: bool,
    /// The table needs a constraint on this column (or on another required one).
    pub required: bool,
    /// `LIKE` constraints are pushed down too (osquery's file globs).
    pub like: bool,
    /// Not part of `SELECT *`.
    pub hidden: bool,
}

impl Column {
    pub const fn new(name: &'static str, kind: ColumnType) -> Column {
        Column { name, kind, index: false, required: false, like: false, hidden: false }
    }
    pub const fn text(name: &'static str) -> Column {
        Column::new(name, ColumnType::Text)
    }
    pub const fn int(name: &'static str) -> Column {
        Column::new(name, ColumnType::Integer)
    }
    pub const fn bigint(name: &'static str) -> Column {
        Column::new(name, ColumnType::BigInt)
    }
    pub const fn double(name: &'static str) -> Column {
        Column::new(name, ColumnType::Double)
    }
    pub const fn boolean(name: &'static str) -> Column {
        Column::new(name, ColumnType::Boolean)
    }
    pub const fn index(mut self) -> Column {
        self.index = true;
        self
    }
    pub const fn required(mut self) -> Column {
        self.required = true;
        self.index = true;
        self
    }
    pub const fn like(mut self) -> Column {
        self.like = true;
        self
    }
    pub const fn hidden(mut self) -> Column {
        self.hidden = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }
    pub fn opt_text(s: Option<impl Into<String>>) -> Value {
        s.map_or(Value::Null, |s| Value::Text(s.into()))
    }
    pub fn opt_int(v: Option<i64>) -> Value {
        v.map_or(Value::Null, Value::Int)
    }
    /// How osquery prints it: numbers in decimal, NULL as None.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Int(v) => Some(v.to_string()),
            Value::Real(v) => Some(v.to_string()),
            Value::Text(s) => Some(s.clone()),
        }
    }
}

/// A row: values by column name; columns left out are NULL.
pub type Row = BTreeMap<&'static str, Value>;

/// Constraints pushed down for one query: per column, the values it must equal (an `IN` list gives several)
/// and the LIKE patterns it must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    pub equals: BTreeMap<&'static str, Vec<Value>>,
    pub like: BTreeMap<&'static str, Vec<String>>,
}

impl Constraints {
    /// Text values a column must equal (non-text values converted as osquery would).
    pub fn texts(&self, column: &str) -> Vec<String> {
        self.equals.get(column).map(|vs| vs.iter().filter_map(Value::to_text).collect()).unwrap_or_default()
    }

    /// Integer values a column must equal.
    pub fn ints(&self, column: &str) -> Vec<i64> {
        self.equals
            .get(column)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| match v {
                        Value::Int(i) => Some(*i),
                        Value::Text(t) => t.trim().parse().ok(),
                        Value::Real(r) if r.fract() == 0.0 => Some(*r as i64),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn has(&self, column: &str) -> bool {
        self.equals.contains_key(column) || self.like.contains_key(column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Message(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One osquery table.
pub trait Table: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn columns(&self) -> &'static [Column];
    /// The rows for these constraints. Returning rows that do not match a constraint is allowed (SQLite checks
    /// every constraint again); leaving out rows that match is not.
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError>;
}
