//! Application workloads: the queries each application version sends, and
//! the clients that send them during a rollout (issue 5).
//!
//! A workload file is TOML (format in `docs/scenario-format.md`): named
//! queries in plain SQL with `$1..` parameters, a weight each, optionally a
//! multi-statement transaction, and where each parameter's values come from.
//! Parsing keeps spans, so errors name `file:line:column`. Queries can also
//! be imported from sqlx's offline files (`.sqlx/query-<hash>.json`).

mod client;
pub mod traffic;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

pub use client::{ClientPool, Execution, WorkloadRun};
pub use traffic::{QueryTraffic, TrafficReport, traffic_report};

use crate::scenario::ScenarioError;

/// Where a parameter's values come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum ParamSource {
    /// Values of an existing column, `table.column` (or `schema.table.column`),
    /// read once when the clients start.
    From(String),
    /// A random integer in `[low, high]`.
    Int([i64; 2]),
    /// Random text of this many characters.
    Text(usize),
    /// A random UUID (v4); the value is `true`.
    Uuid(bool),
    /// Always this value, as written (TOML strings, integers, booleans).
    Value(toml::Value),
}

/// One named query of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub name: String,
    /// The statements: one for a plain query, several for a transaction
    /// (sent between BEGIN and COMMIT, sharing the parameters).
    pub statements: Vec<String>,
    pub weight: u32,
    pub params: Vec<ParamSource>,
    /// `true` when the query writes (INSERT/UPDATE/DELETE/MERGE or a
    /// transaction that does).
    pub writes: bool,
}

/// How often each client sends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pace {
    /// Next query as soon as the previous one returns.
    ClosedLoop,
    /// A target rate per client, in executions per second.
    Rate(f64),
}

/// One application version's workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// The version, as the scenario names it (`old`, `new`, `v2`).
    pub version: String,
    pub path: PathBuf,
    /// Clients per running replica of this version.
    pub clients: u32,
    pub pace: Pace,
    /// `lock_timeout` of the clients' sessions (manual, "Client Connection
    /// Defaults"): an app that gives up on locks fails with 55P03 instead
    /// of queueing behind a migration.
    #[serde(default)]
    pub lock_timeout_ms: Option<u64>,
    pub queries: Vec<Query>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    #[serde(default)]
    clients: Option<Spanned<u32>>,
    #[serde(default)]
    rate: Option<Spanned<f64>>,
    #[serde(default)]
    lock_timeout_ms: Option<Spanned<u64>>,
    /// A folder of sqlx offline query files to import.
    #[serde(default)]
    sqlx: Option<Spanned<PathBuf>>,
    #[serde(default)]
    query: Vec<RawQuery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    name: Spanned<String>,
    #[serde(default)]
    sql: Option<Spanned<String>>,
    #[serde(default)]
    transaction: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    weight: Option<Spanned<u32>>,
    #[serde(default)]
    params: Vec<Spanned<ParamSource>>,
}

/// The fields sqlx writes into `.sqlx/query-<hash>.json` that we use.
#[derive(Debug, Deserialize)]
struct SqlxQueryFile {
    query: String,
}

impl Workload {
    /// Loads the workload of `version` from `path`.
    pub fn load(version: &str, path: &Path) -> Result<Workload, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::parse(version, &text, path)
    }

    /// Parses workload text; `path` names the file in errors and anchors
    /// the `sqlx` folder.
    pub fn parse(version: &str, text: &str, path: &Path) -> Result<Workload, ScenarioError> {
        let raw: RawWorkload = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            ScenarioError::at(path, text, at, e.message().trim_end().to_string())
        })?;
        let err = |at: usize, message: String| ScenarioError::at(path, text, at, message);
        let clients = match raw.clients {
            Some(c) if *c.get_ref() == 0 || *c.get_ref() > 64 => {
                return Err(err(c.span().start, "`clients` must be 1-64".into()));
            }
            Some(c) => c.into_inner(),
            None => 1,
        };
        let pace = match raw.rate {
            Some(r) if !(*r.get_ref() > 0.0 && r.get_ref().is_finite()) => {
                return Err(err(
                    r.span().start,
                    "`rate` must be a positive number".into(),
                ));
            }
            Some(r) => Pace::Rate(r.into_inner()),
            None => Pace::ClosedLoop,
        };
        let lock_timeout_ms = match raw.lock_timeout_ms {
            Some(t) if *t.get_ref() == 0 => {
                return Err(err(
                    t.span().start,
                    "`lock_timeout_ms` must be positive".into(),
                ));
            }
            t => t.map(Spanned::into_inner),
        };
        let mut queries = Vec::new();
        for q in raw.query {
            let name = q.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(err(
                    q.name.span().start,
                    "query `name` must not be empty".into(),
                ));
            }
            if queries.iter().any(|other: &Query| other.name == name) {
                return Err(err(
                    q.name.span().start,
                    format!("query `{name}` is defined twice"),
                ));
            }
            let statements = match (q.sql, q.transaction) {
                (Some(sql), None) => vec![sql.into_inner()],
                (None, Some(tx)) if !tx.get_ref().is_empty() => tx.into_inner(),
                _ => {
                    return Err(err(
                        q.name.span().start,
                        format!(
                            "query `{name}` needs exactly one of `sql` or a non-empty `transaction`"
                        ),
                    ));
                }
            };
            let params: Vec<ParamSource> = q.params.iter().map(|p| p.get_ref().clone()).collect();
            for p in &q.params {
                if let Err(message) = validate_param(p.get_ref()) {
                    return Err(err(p.span().start, format!("query `{name}`: {message}")));
                }
            }
            let needed = statements
                .iter()
                .map(|s| max_placeholder(s))
                .max()
                .unwrap_or(0);
            if needed != params.len() {
                return Err(err(
                    q.name.span().start,
                    format!(
                        "query `{name}` uses {needed} parameter(s) ($1..) but `params` lists {}",
                        params.len()
                    ),
                ));
            }
            let weight = q.weight.map_or(1, Spanned::into_inner);
            queries.push(Query {
                writes: statements.iter().any(|s| is_write(s)),
                name,
                statements,
                weight,
                params,
            });
        }
        if let Some(dir) = raw.sqlx {
            let resolved = path.parent().unwrap_or(Path::new(".")).join(dir.get_ref());
            let imported = import_sqlx(&resolved)
                .map_err(|message| err(dir.span().start, format!("`sqlx`: {message}")))?;
            for q in imported {
                if !queries.iter().any(|other| other.name == q.name) {
                    queries.push(q);
                }
            }
        }
        if queries.is_empty() {
            return Err(err(
                0,
                "a workload needs at least one `[[query]]` (or `sqlx`)".into(),
            ));
        }
        if queries.iter().all(|q| q.weight == 0) {
            return Err(err(0, "every query has weight 0: nothing would run".into()));
        }
        Ok(Workload {
            version: version.to_string(),
            path: path.to_path_buf(),
            clients,
            pace,
            lock_timeout_ms,
            queries,
        })
    }
}

fn validate_param(p: &ParamSource) -> Result<(), String> {
    match p {
        ParamSource::From(col) => {
            let parts = col.split('.').count();
            if (2..=3).contains(&parts) && col.split('.').all(|s| !s.is_empty()) {
                Ok(())
            } else {
                Err(format!("`from = \"{col}\"` must be `table.column`"))
            }
        }
        ParamSource::Int([lo, hi]) if lo > hi => Err(format!("`int = [{lo}, {hi}]` is empty")),
        ParamSource::Text(0) => Err("`text` length must be at least 1".into()),
        ParamSource::Uuid(false) => Err("`uuid` must be `true`".into()),
        ParamSource::Value(toml::Value::Table(_) | toml::Value::Array(_)) => {
            Err("`value` must be a string, number or boolean".into())
        }
        _ => Ok(()),
    }
}

/// Imports every `query-*.json` in a sqlx offline folder; each query is
/// named `sqlx-<first 12 hex of its hash>` and its parameters are generated
/// as text, so imported queries are prepared (the compatibility matrix)
/// but only run live when they take no parameters.
pub fn import_sqlx(dir: &Path) -> Result<Vec<Query>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("query-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let parsed: SqlxQueryFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("query-");
        let hash = stem.trim_start_matches("query-");
        let name = format!("sqlx-{}", &hash[..hash.len().min(12)]);
        let needed = max_placeholder(&parsed.query);
        queries.push(Query {
            writes: is_write(&parsed.query),
            name,
            // Without parameter sources an imported query only joins the
            // live mix when it needs none.
            weight: u32::from(needed == 0),
            params: vec![ParamSource::Value(toml::Value::String(String::new())); needed],
            statements: vec![parsed.query],
        });
    }
    Ok(queries)
}

/// The highest `$n` placeholder in `sql` (0 when none).
#[must_use]
pub fn max_placeholder(sql: &str) -> usize {
    placeholders(sql)
        .into_iter()
        .map(|(_, _, n)| n)
        .max()
        .unwrap_or(0)
}

/// `(start, end, n)` of every `$n` outside quotes and comments.
fn placeholders(sql: &str) -> Vec<(usize, usize, usize)> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
            {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if let Ok(n) = sql[start + 1..i].parse() {
                    found.push((start, i, n));
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// `sql` with every `$n` replaced by the literal `values[n-1]` (`None` is
/// NULL). Literals are untyped, so the server infers each parameter's type
/// from its context, as it does for a prepared statement's parameters.
#[must_use]
pub fn bind_literals(sql: &str, values: &[Option<String>]) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut last = 0;
    for (start, end, n) in placeholders(sql) {
        out.push_str(&sql[last..start]);
        match values.get(n.wrapping_sub(1)) {
            Some(Some(v)) => out.push_str(&crate::provision::quote_literal(v)),
            _ => out.push_str("NULL"),
        }
        last = end;
    }
    out.push_str(&sql[last..]);
    out
}

fn is_write(sql: &str) -> bool {
    let first = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let upper = sql.to_ascii_uppercase();
    matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE")
        || (first == "WITH"
            && ["INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|w| upper.contains(w)))
        || upper.contains("FOR UPDATE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Workload, ScenarioError> {
        Workload::parse("old", text, Path::new("/w/old.toml"))
    }

    #[test]
    fn a_workload_parses_with_params_and_transactions() {
        let w = parse(
            r#"clients = 3
rate = 20.0
[[query]]
name = "get"
sql = "SELECT email FROM customers WHERE id = $1"
weight = 5
params = [{ from = "customers.id" }]
[[query]]
name = "report"
transaction = ["SELECT count(*) FROM customers WHERE id > $1", "SELECT pg_sleep(0.1)"]
params = [{ int = [1, 10] }]
[[query]]
name = "add"
sql = "INSERT INTO customers (email, ref) VALUES ($1, $2)"
params = [{ text = 8 }, { uuid = true }]
"#,
        )
        .unwrap();
        assert_eq!(w.clients, 3);
        assert_eq!(w.pace, Pace::Rate(20.0));
        assert_eq!(w.queries.len(), 3);
        assert_eq!(
            w.queries[0].params,
            vec![ParamSource::From("customers.id".into())]
        );
        assert_eq!(w.queries[1].statements.len(), 2);
        assert!(!w.queries[1].writes);
        assert!(w.queries[2].writes);
    }

    #[test]
    fn errors_point_at_the_line() {
        let e = parse("[[query]]\nname = \"a\"\nsql = \"SELECT $1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("old.toml:2:8:") && e.contains("uses 1 parameter"),
            "{e}"
        );
        let e = parse("[[query]]\nname = \"a\"\nsql = \"SELECT 1\"\nwieght = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("old.toml:4:1:") && e.contains("unknown field `wieght`"),
            "{e}"
        );
        let e =
            parse("[[query]]\nname = \"a\"\nsql = \"SELECT $1\"\nparams = [{ from = \"x\" }]\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("old.toml:4:11:") && e.contains("table.column"),
            "{e}"
        );
        let e = parse("clients = 0\n[[query]]\nname = \"a\"\nsql = \"SELECT 1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("old.toml:1:11:"), "{e}");
    }

    #[test]
    fn literals_replace_placeholders_outside_quotes() {
        let sql = "SELECT '$1', $1, $10 FROM t -- $2\nWHERE a = $2";
        assert_eq!(max_placeholder(sql), 10);
        let mut values = vec![None; 10];
        values[0] = Some("it's".to_string());
        values[1] = Some("7".to_string());
        values[9] = Some("x".to_string());
        assert_eq!(
            bind_literals(sql, &values),
            "SELECT '$1', 'it''s', 'x' FROM t -- $2\nWHERE a = '7'"
        );
    }

    #[test]
    fn sqlx_offline_files_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("query-0123456789abcdef.json"),
            r#"{"db_name":"PostgreSQL","query":"SELECT id FROM customers","describe":{},"hash":"x"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("query-ffff.json"),
            r#"{"query":"DELETE FROM customers WHERE id = $1"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        let q = import_sqlx(dir.path()).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].name, "sqlx-0123456789ab");
        assert_eq!(q[0].weight, 1);
        assert_eq!(q[1].weight, 0);
        assert!(q[1].writes);
    }
}
