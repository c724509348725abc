//! `missing-lock-timeout`: the trace saw a statement take a lock that
//! blocks writes while `lock_timeout` was 0. Queued behind one long
//! transaction, such a request stalls every query on the table; with
//! lock_timeout it fails fast with 55P03 and can be retried.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::LockReport;

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(trace) = &report.trace else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeSet::new();
    trace
        .statements
        .iter()
        .filter(|s| matches!(s.lock_timeout.trim(), "0" | "0ms" | "0s"))
        .filter_map(|s| {
            let (table, mode) = s
                .acquired
                .iter()
                .filter(|l| l.relation.is_some() && l.mode.blocks_writes())
                .filter(|l| matches!(l.relkind.as_deref(), Some("r" | "p" | "m")))
                .map(|l| (l.relation.clone().unwrap_or_default(), l.mode))
                .max_by_key(|(_, m)| *m)?;
            // One finding per migration: the first statement shows it.
            seen.insert(s.version.clone()).then(|| {
                Finding::new(
                    CheckId::MissingLockTimeout,
                    Severity::Warning,
                    format!(
                        "migration {} line {} takes {mode} on {table} with no lock_timeout: set lock_timeout so a queued request fails fast (55P03) instead of stalling the table",
                        s.version, s.line
                    ),
                    json!({ "version": s.version, "line": s.line, "table": table, "mode": mode }),
                )
            })
        })
        .collect()
}
