//! Issue 5: shared shape of the compatibility checks (one per class):
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
            let code = first
                .sqlstate
                .as_ref()
                .map_or("changed result shape".to_string(), |s| s.code().to_string());
            Finding::new(
                check,
                Severity::Error,
                format!(
                    "{what}: query `{query}` of version `{version}` on schema {}: {code}: {}",
                    first.state_label, first.message
                ),
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
