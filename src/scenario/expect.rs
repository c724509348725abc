//! What `[expect]` names: the checks by their kebab-case ids ([`CheckId`],
//! the registry the findings run) and the lock budget the `lock-budget`
//! check holds figures against ([`LockBudget`]). Plain data; `findings/`
//! runs the checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every check, by its kebab-case id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    DoubleApplication,
    DuplicateData,
    ReplicaErrors,
    ReplicaWaits,
    ReplicaTimeout,
    SchemaDrift,
    DataDrift,
    LeakedAdvisoryLock,
    InvalidIndex,
    Bookkeeping,
    RolloutHalt,
    FaultRecovery,
    // Read a rollout's compat/traffic report, see `check_rollout`.
    OldOnNew,
    NewOnOld,
    RollbackUnsafe,
    DataDependentBreakage,
    TrafficErrors,
    TrafficStall,
    // Lock checks: they run on a lock report, see `check_locks`.
    LongAccessExclusive,
    LockQueue,
    BlockedBackends,
    TableRewrite,
    MissingLockTimeout,
    LockLint,
    LockBudget,
}

impl CheckId {
    /// The registry, in report order.
    pub const ALL: [CheckId; 25] = [
        CheckId::DoubleApplication,
        CheckId::DuplicateData,
        CheckId::ReplicaErrors,
        CheckId::ReplicaWaits,
        CheckId::ReplicaTimeout,
        CheckId::SchemaDrift,
        CheckId::DataDrift,
        CheckId::LeakedAdvisoryLock,
        CheckId::InvalidIndex,
        CheckId::Bookkeeping,
        CheckId::RolloutHalt,
        CheckId::FaultRecovery,
        CheckId::OldOnNew,
        CheckId::NewOnOld,
        CheckId::RollbackUnsafe,
        CheckId::DataDependentBreakage,
        CheckId::TrafficErrors,
        CheckId::TrafficStall,
        CheckId::LongAccessExclusive,
        CheckId::LockQueue,
        CheckId::BlockedBackends,
        CheckId::TableRewrite,
        CheckId::MissingLockTimeout,
        CheckId::LockLint,
        CheckId::LockBudget,
    ];

    /// The kebab-case id used in scenario files and reports.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            CheckId::DoubleApplication => "double-application",
            CheckId::DuplicateData => "duplicate-data",
            CheckId::ReplicaErrors => "replica-errors",
            CheckId::ReplicaWaits => "replica-waits",
            CheckId::ReplicaTimeout => "replica-timeout",
            CheckId::SchemaDrift => "schema-drift",
            CheckId::DataDrift => "data-drift",
            CheckId::LeakedAdvisoryLock => "leaked-advisory-lock",
            CheckId::InvalidIndex => "invalid-index",
            CheckId::Bookkeeping => "bookkeeping",
            CheckId::RolloutHalt => "rollout-halt",
            CheckId::FaultRecovery => "fault-recovery",
            CheckId::OldOnNew => "old-on-new",
            CheckId::NewOnOld => "new-on-old",
            CheckId::RollbackUnsafe => "rollback-unsafe",
            CheckId::DataDependentBreakage => "data-dependent-breakage",
            CheckId::TrafficErrors => "traffic-errors",
            CheckId::TrafficStall => "traffic-stall",
            CheckId::LongAccessExclusive => "long-access-exclusive",
            CheckId::LockQueue => "lock-queue",
            CheckId::BlockedBackends => "blocked-backends",
            CheckId::TableRewrite => "table-rewrite",
            CheckId::MissingLockTimeout => "missing-lock-timeout",
            CheckId::LockLint => "lock-lint",
            CheckId::LockBudget => "lock-budget",
        }
    }

    /// The check reads a rollout (see
    /// [`check_rollout`](crate::findings::check_rollout)), not a race.
    #[must_use]
    pub fn reads_rollout(self) -> bool {
        matches!(
            self,
            CheckId::OldOnNew
                | CheckId::NewOnOld
                | CheckId::RollbackUnsafe
                | CheckId::DataDependentBreakage
                | CheckId::TrafficErrors
                | CheckId::TrafficStall
        )
    }

    /// Parses a kebab-case id.
    #[must_use]
    pub fn from_id(id: &str) -> Option<CheckId> {
        CheckId::ALL.into_iter().find(|c| c.id() == id)
    }

    /// One line on what the check looks for.
    #[must_use]
    pub fn summary(self) -> &'static str {
        match self {
            CheckId::DoubleApplication => {
                "a migration version was applied by more than one replica"
            }
            CheckId::DuplicateData => {
                "a data migration inserted rows more than once (vs a serial run)"
            }
            CheckId::ReplicaErrors => "replicas failed, grouped by SQLSTATE",
            CheckId::ReplicaWaits => "replicas waited on the migration lock",
            CheckId::ReplicaTimeout => "replicas never finished within the timeout",
            CheckId::SchemaDrift => {
                "the final schema differs from a serial run of the same migrations"
            }
            CheckId::DataDrift => "the final data of touched tables differs from a serial run",
            CheckId::LeakedAdvisoryLock => "advisory locks still held after the run",
            CheckId::InvalidIndex => "indexes left INVALID",
            CheckId::Bookkeeping => "bookkeeping left dirty, missing or incomplete",
            CheckId::RolloutHalt => "a migration failed: the rollout must halt",
            CheckId::FaultRecovery => {
                "state after a killed replica, and whether a re-run converges"
            }
            CheckId::OldOnNew => "old code still serving breaks on the migrated schema",
            CheckId::NewOnOld => "new code deployed before its migration breaks",
            CheckId::RollbackUnsafe => "rolling back to old code breaks on the later schema",
            CheckId::DataDependentBreakage => "a query that prepares fails with some data",
            CheckId::TrafficErrors => "app queries failed on locks, timeouts or deadlocks",
            CheckId::TrafficStall => "app queries stalled while a migration statement ran",
            CheckId::LongAccessExclusive => "a migration held ACCESS EXCLUSIVE on a table for long",
            CheckId::LockQueue => {
                "application queries queued behind a migration's waiting lock request"
            }
            CheckId::BlockedBackends => {
                "application sessions waited on locks (blocked-backend-seconds)"
            }
            CheckId::TableRewrite => "a statement rewrote a whole table",
            CheckId::MissingLockTimeout => "a strong lock was taken with no lock_timeout",
            CheckId::LockLint => "dangerous statements, confirmed or not by execution",
            CheckId::LockBudget => {
                "a blocking lock on an existing table, or an app lock wait, lasted past the lock budget"
            }
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The default budget: one second. A request that waits one second is
/// already the slowest a user tolerates from an interactive page, and most
/// production `lock_timeout`/`statement_timeout` advice starts about there
/// (a lock held longer than the clients' own timeouts turns into errors).
/// Holds below it are sampled noise on a small rehearsal machine; holds
/// above it are what grows with the table (a build, a rewrite, a scan).
pub const DEFAULT_LOCK_BUDGET_MS: u64 = 1_000;

/// Which figure is held against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetFigure {
    /// A migration held a lock that blocks reads or writes on a table that
    /// existed before it.
    BlockingHold,
    /// An application query waited on a lock behind a migration.
    AppLockWait,
}

impl BudgetFigure {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            BudgetFigure::BlockingHold => "lock that blocks reads or writes held",
            BudgetFigure::AppLockWait => "application lock wait",
        }
    }
}

/// How long a lock may block the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBudget {
    pub ms: u64,
}

impl Default for LockBudget {
    fn default() -> Self {
        LockBudget {
            ms: DEFAULT_LOCK_BUDGET_MS,
        }
    }
}

impl LockBudget {
    #[must_use]
    pub fn from_ms(ms: u64) -> Self {
        LockBudget { ms }
    }

    #[must_use]
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.ms)
    }

    /// Whether `figure` lasting `took` is over the budget. The one place
    /// the comparison is made: rehearsed and forecast figures alike.
    #[must_use]
    pub fn exceeded(self, _figure: BudgetFigure, took: Duration) -> bool {
        took > self.duration()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kebab_case_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in CheckId::ALL {
            assert!(seen.insert(c.id()));
            assert_eq!(CheckId::from_id(c.id()), Some(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.id())
            );
            assert!(!c.summary().is_empty());
        }
    }
}
