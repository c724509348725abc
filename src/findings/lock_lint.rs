//! `lock-lint`: static lint findings on the pending statements, each
//! marked confirmed / not confirmed / contradicted by the trace. Confirmed
//! ones are warnings; the others are notes (a finding the execution
//! contradicts is reported as such, not as an error).

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::{Confirmation, LockReport, RuleId};

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    report
        .lint
        .iter()
        // The missing-lock-timeout check reports that from the trace itself.
        .filter(|f| f.rule != RuleId::MissingLockTimeout || report.trace.is_none())
        .map(|f| {
            let (severity, mark) = match (&f.suppressed, f.confirmation) {
                // Suppressed by a `-- rehearse:ignore` comment: still
                // reported, never silently dropped.
                (Some(_), _) => (Severity::Info, "suppressed"),
                (None, Confirmation::Confirmed) => (Severity::Warning, "confirmed by execution"),
                (None, Confirmation::NotConfirmed) => (Severity::Info, "not confirmed by execution"),
                (None, Confirmation::Contradicted) => (Severity::Info, "contradicted by execution"),
            };
            let mark = match &f.suppressed {
                Some(reason) => format!("{mark}: {reason}"),
                None => mark.to_string(),
            };
            Finding::new(
                CheckId::LockLint,
                severity,
                format!(
                    "{} (migration {} line {}): {}; fix: {} [{mark}]",
                    f.rule, f.version, f.line, f.message, f.fix
                ),
                json!({ "rule": f.rule, "version": f.version, "line": f.line, "fix": f.fix, "confirmation": f.confirmation, "suppressed": f.suppressed }),
            )
        })
        .collect()
}
