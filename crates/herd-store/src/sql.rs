//! Small helpers for building SQL whose shape depends on the request (filters, IN lists), with every value
//! bound as a parameter: no request text is ever spliced into SQL. (Bulk statements may inline integers,
//! which are typed and cannot carry SQL: see `SqlBuilder::push_int`.)

use crate::Backend;
use sqlx::Any;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// SQL text with `$n` placeholders and the values they stand for.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub text: String,
    args: Vec<Arg>,
}

impl SqlBuilder {
    pub fn new(text: &str) -> Self {
        SqlBuilder { text: text.to_string(), args: Vec::new() }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends an integer as a literal. For bulk statements of thousands of values: SQLite finds a `$n`
    /// parameter by scanning the statement's parameter list, so binding n values costs n², and a one-off
    /// statement gains nothing from parameters. An `i64` cannot carry SQL.
    pub fn push_int(&mut self, value: i64) -> &mut Self {
        self.text.push_str(&value.to_string());
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    /// Appends a subquery yielding `ids`, for `column IN <set>`: the whole list is ONE parameter, a JSON array
    /// (sqlx's `Any` driver binds no arrays, but text it does). One parameter per id would hit SQLite's and
    /// PostgreSQL's parameter limits (32,766 and 65,535) on a big request, and SQLite finds a `$n` by scanning
    /// the statement's parameter list, so n parameters cost n². The statement text does not depend on how many
    /// ids there are, so it is prepared once and cached. Every IN list over ids goes through here.
    pub fn bind_id_set(&mut self, backend: Backend, ids: &[i64]) -> &mut Self {
        let json = serde_json::to_string(ids).expect("integers serialize");
        match backend {
            Backend::Sqlite => self.push("(SELECT value FROM json_each(").bind(Arg::Text(json)).push("))"),
            Backend::Postgres => self
                .push("(SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(")
                .bind(Arg::Text(json))
                .push(" AS JSON)))"),
        }
    }

    /// The query, not kept in the connection's prepared-statement cache: for one-off bulk statements whose
    /// text changes every time (they would push the hot statements out of the cache).
    pub fn one_off_query(&self) -> Query<'_, Any, AnyArguments> {
        self.query().persistent(false)
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.text.clone()));
        for arg in &self.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

/// `text` as a LIKE pattern matching it anywhere, with LIKE's own wildcards escaped (ESCAPE '\').
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn to_bool(v: i64) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("Web_1%"), "%web\\_1\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn builder_numbers_placeholders() {
        let mut b = SqlBuilder::new("SELECT * FROM t WHERE a = ");
        b.bind(Arg::Int(1))
            .push(" AND id IN ")
            .bind_id_set(Backend::Sqlite, &[4, 5])
            .push(" AND b = ")
            .bind(Arg::Int(2));
        assert_eq!(b.text, "SELECT * FROM t WHERE a = $1 AND id IN (SELECT value FROM json_each($2)) AND b = $3");
        assert!(matches!(&b.args[1], Arg::Text(json) if json == "[4,5]"));
        let mut pg = SqlBuilder::new("x IN ");
        pg.bind_id_set(Backend::Postgres, &[]);
        assert_eq!(pg.text, "x IN (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST($1 AS JSON)))");
        assert!(matches!(&pg.args[0], Arg::Text(json) if json == "[]"));
    }
}
