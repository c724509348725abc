//! `lock-budget`: the default verdict on locks. Without any `[expect]`
//! setting, a scenario fails when a migration held a lock that blocks reads
//! or writes on a table that existed before it, or an application query
//! waited on a lock behind the migration, for longer than the lock budget
//! (default [`DEFAULT_LOCK_BUDGET_MS`](super::DEFAULT_LOCK_BUDGET_MS);
//! `docs/verdicts.md`).
//!
//! The budget is a plain value judged by [`LockBudget::exceeded`], so that
//! a figure forecast at production size is held against the same budget as
//! a figure measured in the rehearsal.

use std::time::Duration;

use serde_json::json;

use super::{BudgetFigure, CheckId, Finding, LockBudget, Severity};
use crate::locks::{LockMode, LockReport};

pub(super) fn check(report: &LockReport, budget: LockBudget) -> Vec<Finding> {
    let Some(sampled) = &report.sampled else {
        return Vec::new();
    };
    let us = Duration::from_micros;
    let mut out = Vec::new();
    // The longest blocking hold per table and mode (index, toast and
    // sequence locks are folded into their table by the analysis; holds on
    // relations the migration created are not in `holds`).
    let mut worst: std::collections::BTreeMap<(&str, LockMode), &crate::locks::analysis::Hold> =
        std::collections::BTreeMap::new();
    for h in sampled.holds.iter().filter(|h| {
        h.holder.is_migration()
            && h.mode.blocks_writes()
            && budget.exceeded(BudgetFigure::BlockingHold, us(h.hold_us))
    }) {
        let entry = worst.entry((h.relation.as_str(), h.mode)).or_insert(h);
        if h.hold_us > entry.hold_us {
            *entry = h;
        }
    }
    for ((relation, mode), h) in worst {
        let blocks = if mode.blocks_reads() {
            "reads and writes"
        } else {
            "writes"
        };
        out.push(Finding::new(
            CheckId::LockBudget,
            Severity::Error,
            format!(
                "{} held {mode} on {relation} for {} ms, over the {} ms lock budget: {blocks} on it waited",
                h.holder,
                h.hold_us / 1_000,
                budget.ms
            ),
            json!({ "figure": BudgetFigure::BlockingHold, "relation": relation, "mode": mode,
                    "holder": h.holder, "ms": h.hold_us / 1_000, "budget_ms": budget.ms }),
        ));
    }
    let waits = sampled.waits.iter().filter(|w| {
        !w.holder.is_migration()
            && w.blocked_by.iter().any(|b| b.holder.is_migration())
            && budget.exceeded(BudgetFigure::AppLockWait, us(w.wait_us))
    });
    if let Some(w) = waits.clone().max_by_key(|w| w.wait_us) {
        let statement = w
            .lock_taken_by
            .as_ref()
            .or(w.statement.as_ref())
            .map_or_else(String::new, |s| {
                format!(" behind migration {} line {}", s.version, s.line)
            });
        out.push(Finding::new(
            CheckId::LockBudget,
            Severity::Error,
            format!(
                "{} application {} over the {} ms lock budget; the longest: {} waited {} ms on {}{statement}",
                waits.count(),
                BudgetFigure::AppLockWait.describe(),
                budget.ms,
                w.holder,
                w.wait_us / 1_000,
                w.relation.as_deref().unwrap_or("a lock"),
            ),
            json!({ "figure": BudgetFigure::AppLockWait, "relation": w.relation,
                    "holder": w.holder, "ms": w.wait_us / 1_000, "budget_ms": budget.ms,
                    "statement": w.lock_taken_by.as_ref().or(w.statement.as_ref()) }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::analysis::{Blocker, Hold, Wait};
    use crate::locks::{Holder, LockAnalysis, LockType};

    fn hold(mode: LockMode, holder: Holder, ms: u64) -> Hold {
        Hold {
            relation: "public.t".into(),
            mode,
            holder,
            pid: 2,
            from_us: 0,
            to_us: ms * 1_000,
            hold_us: ms * 1_000,
        }
    }

    fn wait(blocker: Holder, ms: u64) -> Wait {
        Wait {
            pid: 3,
            holder: Holder::App("app".into()),
            locktype: LockType::Relation,
            mode: LockMode::RowExclusive,
            relation: Some("public.t".into()),
            from_us: 0,
            to_us: ms * 1_000,
            wait_us: ms * 1_000,
            blocked_by: vec![Blocker {
                pid: 2,
                holder: blocker,
                queued: false,
            }],
            statement: None,
            lock_taken_by: None,
            query: "UPDATE t SET x = 1".into(),
        }
    }

    fn report(holds: Vec<Hold>, waits: Vec<Wait>) -> LockReport {
        LockReport {
            sampled: Some(LockAnalysis {
                holds,
                waits,
                ..LockAnalysis::default()
            }),
            ..LockReport::default()
        }
    }

    #[test]
    fn the_budget_is_one_comparison_for_every_figure() {
        let budget = LockBudget::default();
        assert_eq!(budget.ms, 1_000);
        for figure in [BudgetFigure::BlockingHold, BudgetFigure::AppLockWait] {
            assert!(!budget.exceeded(figure, Duration::from_millis(1_000)));
            assert!(budget.exceeded(figure, Duration::from_millis(1_001)));
        }
    }

    #[test]
    fn bad_a_share_lock_held_past_the_budget_fails() {
        let r = report(
            vec![hold(LockMode::Share, Holder::Replica(0), 4_800)],
            vec![],
        );
        let f = check(&r, LockBudget::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].message.contains("SHARE on public.t for 4800 ms")
                && f[0].message.contains("writes"),
            "{}",
            f[0].message
        );
        // A tighter or looser budget decides.
        assert!(check(&r, LockBudget::from_ms(5_000)).is_empty());
    }

    #[test]
    fn bad_an_app_wait_behind_the_migration_fails() {
        let r = report(vec![], vec![wait(Holder::Job, 1_500)]);
        let f = check(&r, LockBudget::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("waited 1500 ms"), "{}", f[0].message);
    }

    #[test]
    fn good_weak_locks_apps_short_holds_and_app_on_app_waits_pass() {
        let r = report(
            vec![
                // CREATE INDEX CONCURRENTLY's mode blocks neither reads nor writes.
                hold(LockMode::ShareUpdateExclusive, Holder::Replica(0), 9_000),
                // A long read of the application is not the migration's.
                hold(LockMode::AccessShare, Holder::App("report".into()), 9_000),
                hold(LockMode::AccessExclusive, Holder::Replica(0), 900),
            ],
            vec![wait(Holder::App("other".into()), 9_000)],
        );
        assert!(check(&r, LockBudget::default()).is_empty());
    }
}
