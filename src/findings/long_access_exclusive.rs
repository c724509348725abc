//! `long-access-exclusive`: a migration held ACCESS EXCLUSIVE on a table
//! for a long time. Every query on the table, reads included, waits for it
//! (manual, "Explicit Locking": it conflicts with every mode).

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::{LockMode, LockReport};

/// Holds at least this long are reported; `[expect]
/// max_access_exclusive_ms` sets the limit that fails a scenario.
pub(crate) const LONG_MS: u64 = 1_000;

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(sampled) = &report.sampled else {
        return Vec::new();
    };
    sampled
        .holds
        .iter()
        .filter(|h| h.mode == LockMode::AccessExclusive && h.holder.is_migration())
        .filter(|h| h.hold_us / 1_000 >= LONG_MS)
        .map(|h| {
            Finding::new(
                CheckId::LongAccessExclusive,
                Severity::Warning,
                format!(
                    "{} held ACCESS EXCLUSIVE on {} for {} ms: every query on it waited",
                    h.holder,
                    h.relation,
                    h.hold_us / 1_000
                ),
                json!({ "relation": h.relation, "holder": h.holder, "hold_ms": h.hold_us / 1_000 }),
            )
        })
        .collect()
}
