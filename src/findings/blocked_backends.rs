//! `blocked-backends`: application sessions waited on locks during the
//! rehearsal. Blocked-backend-seconds (waiting sessions x seconds) is the
//! figure that best predicts user-visible impact; each long wait
//! names the migration statement that caused it.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::LockReport;

/// Application waits shorter than this are not reported.
const NOTICEABLE_MS: u64 = 100;

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(sampled) = &report.sampled else {
        return Vec::new();
    };
    let long: Vec<_> = sampled
        .waits
        .iter()
        .filter(|w| !w.holder.is_migration() && w.wait_us / 1_000 >= NOTICEABLE_MS)
        .collect();
    if long.is_empty() {
        return Vec::new();
    }
    let caused: Vec<_> = long
        .iter()
        .filter_map(|w| w.lock_taken_by.as_ref().or(w.statement.as_ref()))
        .collect();
    vec![Finding::new(
        CheckId::BlockedBackends,
        Severity::Warning,
        format!(
            "{} application lock wait(s) of {NOTICEABLE_MS} ms or more ({:.2} blocked-backend-seconds, longest {} ms), {} caused by a migration statement",
            long.len(),
            sampled.blocked_backend_seconds,
            sampled.max_app_wait_us() / 1_000,
            caused.len()
        ),
        json!({
            "blocked_backend_seconds": sampled.blocked_backend_seconds,
            "max_app_wait_ms": sampled.max_app_wait_us() / 1_000,
            "statements": caused,
        }),
    )]
}
