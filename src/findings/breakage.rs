//! Shared shape of the compatibility checks (one per class):
//! one finding per broken (version, query), naming every schema state and
//! SQLSTATE it broke with. Breakages the plan never runs stay in the matrix
//! only.

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::compat::{Breakage, BreakageClass, CompatReport};

pub(super) fn findings(
    compat: &CompatReport,
    class: BreakageClass,
    check: CheckId,
    what: &str,
) -> Vec<Finding> {
    let mut by_query: BTreeMap<(&str, &str), Vec<&Breakage>> = BTreeMap::new();
    for b in compat
        .breakages
        .iter()
        .filter(|b| b.class == class && b.live)
    {
        by_query.entry((&b.version, &b.query)).or_default().push(b);
    }
    by_query
        .into_iter()
        .map(|((version, query), list)| {
            let first = list[0];
            // A result shape that changed (int4 -> int8, a column added)
            // while the query still prepared and no live execution failed
            // is a change to look at, not a breakage: most drivers read an
            // int8 into the same integer type.
            let changed_only = list
                .iter()
                .all(|b| b.sqlstate.is_none() && b.failed_executions == 0);
            let code = first
                .sqlstate
                .as_ref()
                .map_or("changed result shape".to_string(), |s| s.code().to_string());
            let (severity, message) = if changed_only {
                (
                    Severity::Warning,
                    format!(
                        "changed: query `{query}` of version `{version}` returns a different result shape on schema {} ({}); it still runs and no live execution failed",
                        first.state_label, first.message
                    ),
                )
            } else {
                (
                    Severity::Error,
                    format!(
                        "{what}: query `{query}` of version `{version}` on schema {}: {code}: {}",
                        first.state_label, first.message
                    ),
                )
            };
            Finding::new(
                check,
                severity,
                message,
                json!({
                    "version": version,
                    "query": query,
                    "breakages": list.iter().map(|b| json!({
                        "state": b.state_label,
                        "sqlstate": b.sqlstate.as_ref().map(|s| s.code().to_string()),
                        "message": b.message,
                        "evidence": b.evidence,
                        "failed_executions": b.failed_executions,
                    })).collect::<Vec<_>>(),
                }),
            )
        })
        .collect()
}
