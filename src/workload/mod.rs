//! Application workloads: the queries each application version sends, and
//! the clients that send them during a rollout.
//!
//! A workload file is TOML (format in `docs/scenario-format.md`): named
//! queries in plain SQL with `$1..` parameters, a weight each, optionally a
//! multi-statement transaction, and where each parameter's values come from.
//! Parsing keeps spans, so errors name `file:line:column`. Queries can also
//! be imported from sqlx's offline files (`.sqlx/query-<hash>.json`), each
//! parameter's source inferred from the SQL and sqlx's recorded types
//! ([`import_sqlx`]). The files' types and parser live with the scenario
//! ([`crate::scenario::workload`]) and are re-exported here; this module
//! runs them.

mod client;
pub mod traffic;

pub use client::{ClientPool, Execution, WorkloadRun};
pub use traffic::{QueryTraffic, TrafficReport, traffic_report};

use crate::scenario::workload::placeholders;
pub use crate::scenario::workload::{
    Pace, ParamHint, ParamSource, ParamUse, Query, Workload, import_sqlx, max_placeholder,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
