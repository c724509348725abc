//! `lock-queue`: an application query waited behind a migration's *queued*
//! lock request, not a held lock. A waiting ACCESS EXCLUSIVE request blocks
//! every later request on the table, even plain SELECTs (REFERENCE.md,
//! "Operations that hurt"); lock_timeout bounds it.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::LockReport;

/// Queues shorter than this are not reported: a few sampling intervals of
/// queueing is what any ALTER costs on a busy table, and no user notices
/// it (the same floor as `blocked-backends`).
pub(crate) const QUEUE_MIN_MS: u64 = 100;

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(sampled) = &report.sampled else {
        return Vec::new();
    };
    let queued: Vec<_> = sampled
        .queued_waits()
        .filter(|w| !w.holder.is_migration() && w.wait_us / 1_000 >= QUEUE_MIN_MS)
        .collect();
    let Some(worst) = queued.iter().max_by_key(|w| w.wait_us) else {
        return Vec::new();
    };
    let ahead = worst
        .blocked_by
        .iter()
        .find(|b| b.queued)
        .map_or_else(String::new, |b| b.holder.to_string());
    // The statement that took the lock is the one to fix; the one running
    // when the wait began may be a later statement of the same transaction.
    let statement = worst
        .lock_taken_by
        .as_ref()
        .or(worst.statement.as_ref())
        .map_or_else(String::new, |s| {
            format!(" (migration {} statement at line {})", s.version, s.line)
        });
    vec![Finding::new(
        CheckId::LockQueue,
        Severity::Warning,
        format!(
            "{} application lock request(s) queued behind {ahead}'s waiting lock request{statement} on {}; the longest waited {} ms",
            queued.len(),
            worst.relation.as_deref().unwrap_or("a lock"),
            worst.wait_us / 1_000
        ),
        json!({
            "waits": queued.len(),
            "max_wait_ms": worst.wait_us / 1_000,
            "relation": worst.relation,
            "statement": worst.lock_taken_by.as_ref().or(worst.statement.as_ref()),
        }),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::analysis::{Blocker, Wait};
    use crate::locks::{Holder, LockAnalysis, LockMode, LockType};

    fn queued(ms: u64) -> LockReport {
        LockReport {
            sampled: Some(LockAnalysis {
                waits: vec![Wait {
                    pid: 3,
                    holder: Holder::App("app".into()),
                    locktype: LockType::Relation,
                    mode: LockMode::AccessShare,
                    relation: Some("public.t".into()),
                    from_us: 0,
                    to_us: ms * 1_000,
                    wait_us: ms * 1_000,
                    blocked_by: vec![Blocker {
                        pid: 2,
                        holder: Holder::Job,
                        queued: true,
                    }],
                    statement: None,
                    lock_taken_by: None,
                    query: "SELECT 1".into(),
                }],
                ..LockAnalysis::default()
            }),
            ..LockReport::default()
        }
    }

    #[test]
    fn a_40_ms_queue_is_noise_and_a_300_ms_queue_is_reported() {
        assert!(check(&queued(40)).is_empty());
        let f = check(&queued(300));
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("waited 300 ms"), "{}", f[0].message);
    }
}
