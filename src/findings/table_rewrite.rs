//! `table-rewrite`: the trace saw a table's storage replaced
//! (`pg_class.relfilenode` changed): the whole table was rewritten under
//! ACCESS EXCLUSIVE (REFERENCE.md, "Operations that hurt").

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::LockReport;

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(trace) = &report.trace else {
        return Vec::new();
    };
    trace
        .statements
        .iter()
        .filter(|s| !s.rewritten.is_empty())
        .map(|s| {
            Finding::new(
                CheckId::TableRewrite,
                Severity::Warning,
                format!(
                    "migration {} line {} rewrote {} ({} ms on the seeded data, under ACCESS EXCLUSIVE)",
                    s.version,
                    s.line,
                    s.rewritten.join(", "),
                    s.duration_us / 1_000
                ),
                json!({ "version": s.version, "line": s.line, "tables": s.rewritten, "duration_ms": s.duration_us / 1_000 }),
            )
        })
        .collect()
}
