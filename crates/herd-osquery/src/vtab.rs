//! The bridge from a [`Table`] to an SQLite eponymous virtual table: schema, constraint pushdown, cursor.

use crate::table::{Column, Constraints, Table, Value};
use fallible_iterator::FallibleIterator;
use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, VTab, VTabConfig, VTabConnection, VTabCursor, sqlite3_vtab,
    sqlite3_vtab_cursor,
};
use rusqlite::{Error, ffi};
use std::ffi::c_int;
use std::marker::PhantomData;
use std::sync::Arc;

pub type Aux = Arc<dyn Table>;

/// `idx_num` flag: the plan has no constraint on any required column (the cursor reports osquery's error).
const MISSING_REQUIRED: c_int = 1;

#[repr(C)]
pub struct TableVTab {
    /// Must be first: SQLite sees this struct as an `sqlite3_vtab`.
    base: sqlite3_vtab,
    table: Aux,
}

fn create_statement(columns: &[Column]) -> String {
    let defs: Vec<String> = columns
        .iter()
        .map(|c| format!("\"{}\" {}{}", c.name, c.kind.sql(), if c.hidden { " HIDDEN" } else { "" }))
        .collect();
    format!("CREATE TABLE x({})", defs.join(", "))
}

fn required_names(columns: &[Column]) -> String {
    columns.iter().filter(|c| c.required).map(|c| c.name).collect::<Vec<_>>().join(" or ")
}

unsafe impl<'vtab> VTab<'vtab> for TableVTab {
    type Aux = Aux;
    type Cursor = TableCursor<'vtab>;

    fn connect(db: &mut VTabConnection, aux: Option<&Aux>, _args: &[&[u8]]) -> rusqlite::Result<(String, Self)> {
        let table =
            aux.cloned().ok_or_else(|| Error::ModuleError("table module registered without its table".into()))?;
        db.config(VTabConfig::Innocuous)?;
        Ok((create_statement(table.columns()), TableVTab { base: sqlite3_vtab::default(), table }))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let columns = self.table.columns();
        let mut plan: Vec<(usize, c_int, char)> = Vec::new(); // (constraint index, column, op)
        let mut required_usable = false;
        let mut required_unusable = false;
        for (i, constraint) in info.constraints().enumerate() {
            let Some(column) = usize::try_from(constraint.column()).ok().and_then(|c| columns.get(c)) else {
                continue;
            };
            let op = match constraint.operator() {
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ if column.index => 'e',
                IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LIKE if column.like => 'l',
                _ => continue,
            };
            if !constraint.is_usable() {
                required_unusable |= column.required;
                continue;
            }
            required_usable |= column.required;
            plan.push((i, constraint.column(), op));
        }
        let has_required = columns.iter().any(|c| c.required);
        if has_required && !required_usable && required_unusable {
            // Another join order can supply the value: tell the planner this one cannot work.
            return Err(Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_CONSTRAINT), None));
        }
        let mut encoded = Vec::with_capacity(plan.len());
        for (argv, (i, column, op)) in plan.iter().enumerate() {
            let mut op = *op;
            if op == 'e' && info.set_in_constraint(*i, true)? {
                op = 'i';
            }
            let mut usage = info.constraint_usage(*i);
            usage.set_argv_index(argv as c_int + 1);
            // SQLite checks every constraint again: a generator may return a superset.
            usage.set_omit(false);
            encoded.push(format!("{column}{op}"));
        }
        info.set_idx_str(&encoded.join(","));
        info.set_idx_num(if has_required && !required_usable { MISSING_REQUIRED } else { 0 });
        // Fewer rows with pushed-down constraints: prefer plans that use them.
        let cost = if plan.is_empty() { 1_000_000.0 } else { 10.0 / plan.len() as f64 };
        info.set_estimated_cost(cost);
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<TableCursor<'vtab>> {
        Ok(TableCursor {
            base: sqlite3_vtab_cursor::default(),
            table: self.table.clone(),
            rows: Vec::new(),
            at: 0,
            phantom: PhantomData,
        })
    }
}

#[repr(C)]
pub struct TableCursor<'vtab> {
    /// Must be first: SQLite sees this struct as an `sqlite3_vtab_cursor`.
    base: sqlite3_vtab_cursor,
    table: Aux,
    rows: Vec<Vec<Value>>,
    at: usize,
    phantom: PhantomData<&'vtab TableVTab>,
}

fn owned(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

unsafe impl VTabCursor for TableCursor<'_> {
    fn filter(&mut self, idx_num: c_int, idx_str: Option<&str>, args: &Filters<'_>) -> rusqlite::Result<()> {
        let columns = self.table.columns();
        if idx_num & MISSING_REQUIRED != 0 {
            return Err(Error::ModuleError(format!(
                "table {} requires a constraint on {}",
                self.table.name(),
                required_names(columns)
            )));
        }
        let mut constraints = Constraints::default();
        for (argv, spec) in idx_str.unwrap_or("").split(',').filter(|s| !s.is_empty()).enumerate() {
            let (column, op) = spec.split_at(spec.len() - 1);
            let column = column
                .parse::<usize>()
                .ok()
                .and_then(|c| columns.get(c))
                .ok_or_else(|| Error::ModuleError(format!("bad index plan {spec:?}")))?;
            match op {
                "i" => {
                    let mut values = args.in_values(argv)?;
                    let list = constraints.equals.entry(column.name).or_default();
                    while let Some(value) = values.next()? {
                        list.push(owned(value));
                    }
                }
                "e" => {
                    let value: rusqlite::types::Value = args.get(argv)?;
                    constraints.equals.entry(column.name).or_default().push(owned(ValueRef::from(&value)));
                }
                _ => {
                    let pattern: Option<String> = args.get(argv)?;
                    constraints.like.entry(column.name).or_default().extend(pattern);
                }
            }
        }
        let rows = self.table.generate(&constraints).map_err(|e| Error::ModuleError(e.to_string()))?;
        self.rows = rows
            .into_iter()
            .map(|mut row| columns.iter().map(|c| row.remove(c.name).unwrap_or(Value::Null)).collect())
            .collect();
        self.at = 0;
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        match self.rows.get(self.at).and_then(|row| row.get(i as usize)) {
            Some(Value::Int(v)) => ctx.set_result(v),
            Some(Value::Real(v)) => ctx.set_result(v),
            Some(Value::Text(v)) => ctx.set_result(v),
            Some(Value::Null) | None => ctx.set_result(&rusqlite::types::Null),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.at as i64)
    }
}
