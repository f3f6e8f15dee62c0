//! The two migration trees (`migrations/sqlite`, `migrations/postgres`) are kept by hand; this applies both
//! and compares what they built: tables, columns (name, type family, nullability), primary keys, unique and
//! plain indexes (by their columns), and foreign keys (columns, target, ON DELETE). A change to any of those
//! made in one tree and forgotten in the other fails here, with the difference spelled out. Not compared:
//! column defaults, CHECK constraints and partial indexes' conditions; and a primary-key column counts as
//! NOT NULL on both (SQLite would accept a NULL in a non-integer one; herd never writes one).
//!
//! Needs PostgreSQL: ignored by plain `cargo test`, run by scripts/test (see `herd_store::testing`).

use herd_store::Store;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};
use std::collections::{BTreeMap, BTreeSet};

/// A foreign key: (table, columns, referenced table, referenced columns, ON DELETE action).
type ForeignKey = (String, Vec<String>, String, Vec<String>, String);

/// One schema, in terms both backends can be compared in.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// table → column → (type family, nullable)
    columns: BTreeMap<String, BTreeMap<String, (&'static str, bool)>>,
    /// (table, columns in order): primary keys.
    primary_keys: BTreeSet<(String, Vec<String>)>,
    /// (table, columns in order, unique): every other index, including those behind UNIQUE constraints.
    indexes: BTreeSet<(String, Vec<String>, bool)>,
    foreign_keys: BTreeSet<ForeignKey>,
}

/// Tables of the migration runner, not of the schema.
const BOOKKEEPING: [&str; 1] = ["herd_schema_migrations"];

/// The family of a declared type: what values it holds, whatever each backend calls it.
fn family(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    match t.as_str() {
        "integer" | "bigint" | "int" | "int8" | "int4" | "smallint" | "bigserial" | "serial" => "integer",
        "text" | "character varying" | "varchar" => "text",
        "real" | "double precision" | "double" | "float" | "float8" | "numeric" => "real",
        "blob" | "bytea" => "bytes",
        "boolean" | "bool" => "boolean",
        "jsonb" | "json" => "json",
        other => panic!("a column type this test does not know: {other:?} (add it to `family`)"),
    }
}

async fn sqlite_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for table in tables.into_iter().filter(|t| !BOOKKEEPING.contains(&t.as_str())) {
        let columns = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}') ORDER BY cid"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let entry = schema.columns.entry(table.clone()).or_default();
        for row in &columns {
            let (name, declared): (String, String) = (row.get(0), row.get(1));
            let (not_null, pk_position): (i64, i64) = (row.get(2), row.get(3));
            // SQLite lets a primary key column hold NULL unless declared NOT NULL; PostgreSQL never does.
            // Integer primary keys are the rowid and never NULL either.
            entry.insert(name.clone(), (family(&declared), not_null == 0 && pk_position == 0));
            if pk_position > 0 {
                pk.push((pk_position, name));
            }
        }
        pk.sort();
        if !pk.is_empty() {
            schema.primary_keys.insert((table.clone(), pk.into_iter().map(|(_, c)| c).collect()));
        }
        let indexes = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, \"unique\", origin FROM pragma_index_list('{table}')"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        for index in &indexes {
            let (name, unique, origin): (String, i64, String) = (index.get(0), index.get(1), index.get(2));
            if origin == "pk" {
                continue; // the primary key, compared above
            }
            let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            schema.indexes.insert((table.clone(), columns, unique == 1));
        }
        let keys = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('{table}') ORDER BY id, seq"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (Vec<String>, String, Vec<String>, String)> = BTreeMap::new();
        for key in &keys {
            let id: i64 = key.get(0);
            let entry = by_id.entry(id).or_insert_with(|| (Vec::new(), key.get(1), Vec::new(), key.get(4)));
            entry.0.push(key.get(2));
            entry.2.push(key.get(3));
        }
        for (_, (from, target, to, on_delete)) in by_id {
            schema.foreign_keys.insert((table.clone(), from, target, to, on_delete.to_ascii_uppercase()));
        }
    }
    schema
}

async fn postgres_schema(pool: &AnyPool) -> Schema {
    let mut schema = Schema::default();
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &columns {
        let (table, name, declared, nullable): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if BOOKKEEPING.contains(&table.as_str()) {
            continue;
        }
        schema.columns.entry(table).or_default().insert(name, (family(&declared), nullable == "YES"));
    }
    // Every index with its columns in order, and whether it backs the primary key.
    let indexes = sqlx::query(
        "SELECT t.relname::text, ix.indisunique, ix.indisprimary, \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(ix.indkey) WITH ORDINALITY k(attnum, n) \
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n), ',') \
         FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace \
         WHERE s.nspname = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &indexes {
        let (table, unique, primary, columns): (String, bool, bool, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if BOOKKEEPING.contains(&table.as_str()) {
            continue;
        }
        let columns: Vec<String> = columns.split(',').map(str::to_string).collect();
        if primary {
            schema.primary_keys.insert((table, columns));
        } else {
            schema.indexes.insert((table, columns, unique));
        }
    }
    let keys = sqlx::query(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.confdeltype::text, \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n) \
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n), ','), \
                array_to_string(ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n) \
                  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n), ',') \
         FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace \
         WHERE c.contype = 'f' AND s.nspname = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for row in &keys {
        let (table, target, action, from, to): (String, String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let on_delete = match action.as_str() {
            "a" => "NO ACTION",
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            other => panic!("unknown ON DELETE action {other:?}"),
        };
        let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        schema.foreign_keys.insert((table, split(&from), target, split(&to), on_delete.to_string()));
    }
    schema
}

/// What one schema has that the other has not, as lines a reader can act on.
fn differences(sqlite: &Schema, postgres: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite.columns.keys().chain(postgres.columns.keys()).collect();
    for table in tables {
        match (sqlite.columns.get(table), postgres.columns.get(table)) {
            (Some(_), None) => out.push(format!("table {table}: only in SQLite")),
            (None, Some(_)) => out.push(format!("table {table}: only in PostgreSQL")),
            (Some(a), Some(b)) => {
                let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for name in names {
                    if a.get(name) != b.get(name) {
                        out.push(format!(
                            "column {table}.{name}: SQLite {:?}, PostgreSQL {:?} (type family, nullable)",
                            a.get(name),
                            b.get(name)
                        ));
                    }
                }
            }
            (None, None) => unreachable!(),
        }
    }
    fn one_sided<T: Ord + std::fmt::Debug>(what: &str, a: &BTreeSet<T>, b: &BTreeSet<T>, out: &mut Vec<String>) {
        for only in a.difference(b) {
            out.push(format!("{what} only in SQLite: {only:?}"));
        }
        for only in b.difference(a) {
            out.push(format!("{what} only in PostgreSQL: {only:?}"));
        }
    }
    one_sided("primary key", &sqlite.primary_keys, &postgres.primary_keys, &mut out);
    one_sided("index", &sqlite.indexes, &postgres.indexes, &mut out);
    one_sided("foreign key", &sqlite.foreign_keys, &postgres.foreign_keys, &mut out);
    out
}

#[tokio::test]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn both_migration_trees_build_the_same_schema() {
    let postgres_url = herd_store::testing::fresh_postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = dir.path().join("herd.db");
    Store::open(sqlite_path.to_str().unwrap()).await.unwrap().close().await;
    Store::open(&postgres_url).await.unwrap().close().await;

    sqlx::any::install_default_drivers();
    let sqlite =
        AnyPoolOptions::new().max_connections(1).connect(&format!("sqlite://{}", sqlite_path.display())).await.unwrap();
    let postgres = AnyPoolOptions::new().max_connections(1).connect(&postgres_url).await.unwrap();
    let (sqlite_schema, postgres_schema) = (sqlite_schema(&sqlite).await, postgres_schema(&postgres).await);
    assert!(sqlite_schema.columns.len() > 20, "introspection found the tables: {:?}", sqlite_schema.columns.keys());
    eprintln!(
        "compared {} tables, {} columns, {} primary keys, {} indexes, {} foreign keys",
        sqlite_schema.columns.len(),
        sqlite_schema.columns.values().map(BTreeMap::len).sum::<usize>(),
        sqlite_schema.primary_keys.len(),
        sqlite_schema.indexes.len(),
        sqlite_schema.foreign_keys.len()
    );
    let found = differences(&sqlite_schema, &postgres_schema);
    assert!(found.is_empty(), "the migration trees disagree:\n{}", found.join("\n"));
}
