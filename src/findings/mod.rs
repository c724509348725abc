//! Findings: checks over a recorded race, one check per file.
//!
//! Every check is a pure function of a [`RaceRecord`]; none talks to
//! Postgres, so each is tested beside its code from hand-built records.

mod blocked_backends;
mod bookkeeping;
mod data_drift;
mod double_application;
mod duplicate_data;
mod fault_recovery;
mod invalid_index;
mod leaked_lock;
mod lock_budget;
mod lock_lint;
mod lock_queue;
mod long_access_exclusive;
mod missing_lock_timeout;
mod replica_errors;
mod replica_timeout;
mod replica_waits;
mod rollout_halt;
mod schema_drift;
mod table_rewrite;
mod verdict;
// Compatibility and traffic checks over a rollout.
mod breakage;
mod data_dependent;
mod new_on_old;
mod old_on_new;
mod rollback_unsafe;
#[cfg(test)]
mod rollout_examples;
mod traffic_errors;
mod traffic_stall;

use serde::{Deserialize, Serialize};

use crate::locks::LockReport;
use crate::timeline::{Actor, EventKind, ExitStatus, RaceRecord, SqlState, Timeline};

pub use crate::scenario::expect::{BudgetFigure, CheckId, DEFAULT_LOCK_BUDGET_MS, LockBudget};
pub use fault_recovery::{FaultClass, classify as classify_fault};
pub use schema_drift::diff_schema;
pub use verdict::{Judgement, judge, judge_with_locks};

impl CheckId {
    fn run(self, record: &RaceRecord) -> Vec<Finding> {
        match self {
            CheckId::DoubleApplication => double_application::check(record),
            CheckId::DuplicateData => duplicate_data::check(record),
            CheckId::ReplicaErrors => replica_errors::check(record),
            CheckId::ReplicaWaits => replica_waits::check(record),
            CheckId::ReplicaTimeout => replica_timeout::check(record),
            CheckId::SchemaDrift => schema_drift::check(record),
            CheckId::DataDrift => data_drift::check(record),
            CheckId::LeakedAdvisoryLock => leaked_lock::check(record),
            CheckId::InvalidIndex => invalid_index::check(record),
            CheckId::Bookkeeping => bookkeeping::check(record),
            CheckId::RolloutHalt => rollout_halt::check(record),
            CheckId::FaultRecovery => fault_recovery::check(record),
            // These read a rollout, not a race (`check_rollout`).
            CheckId::OldOnNew
            | CheckId::NewOnOld
            | CheckId::RollbackUnsafe
            | CheckId::DataDependentBreakage
            | CheckId::TrafficErrors
            | CheckId::TrafficStall => Vec::new(),
            // Lock checks read a lock report, not the race: `check_locks`.
            CheckId::LongAccessExclusive
            | CheckId::LockQueue
            | CheckId::BlockedBackends
            | CheckId::TableRewrite
            | CheckId::MissingLockTimeout
            | CheckId::LockLint
            | CheckId::LockBudget => Vec::new(),
        }
    }

    /// Whether this check runs on a lock report (see [`check_locks`]).
    #[must_use]
    pub fn is_lock_check(self) -> bool {
        LOCK_CHECKS.contains(&self)
    }

    fn run_locks(self, report: &LockReport, budget: LockBudget) -> Vec<Finding> {
        match self {
            CheckId::LockBudget => lock_budget::check(report, budget),
            CheckId::LongAccessExclusive => long_access_exclusive::check(report),
            CheckId::LockQueue => lock_queue::check(report),
            CheckId::BlockedBackends => blocked_backends::check(report),
            CheckId::TableRewrite => table_rewrite::check(report),
            CheckId::MissingLockTimeout => missing_lock_timeout::check(report),
            CheckId::LockLint => lock_lint::check(report),
            _ => Vec::new(),
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub check: CheckId,
    pub severity: Severity,
    pub message: String,
    /// Structured evidence (versions, replicas, SQLSTATEs, diffs).
    pub details: serde_json::Value,
}

impl Finding {
    fn new(
        check: CheckId,
        severity: Severity,
        message: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Finding {
            check,
            severity,
            message: message.into(),
            details,
        }
    }
}

/// Runs every check on a recorded race.
#[must_use]
pub fn check_race(record: &RaceRecord) -> Vec<Finding> {
    CheckId::ALL
        .into_iter()
        .flat_map(|c| c.run(record))
        .collect()
}

/// Every rollout check on a rollout's compatibility and traffic
/// reports.
#[must_use]
pub fn check_rollout(
    compat: &crate::compat::CompatReport,
    traffic: &crate::workload::TrafficReport,
    timeline: &Timeline,
) -> Vec<Finding> {
    let mut findings = rollout_halt::check_rollout(timeline);
    findings.extend(old_on_new::check(compat));
    findings.extend(new_on_old::check(compat));
    findings.extend(rollback_unsafe::check(compat));
    findings.extend(data_dependent::check(compat));
    findings.extend(traffic_errors::check(compat));
    findings.extend(traffic_stall::check(traffic));
    findings
}

/// The checks that run on a lock report.
const LOCK_CHECKS: [CheckId; 7] = [
    CheckId::LongAccessExclusive,
    CheckId::LockQueue,
    CheckId::BlockedBackends,
    CheckId::TableRewrite,
    CheckId::MissingLockTimeout,
    CheckId::LockLint,
    CheckId::LockBudget,
];

/// Runs every lock check on a lock report (pure data: trace, lint and
/// sampler analysis), against the default lock budget.
#[must_use]
pub fn check_locks(report: &LockReport) -> Vec<Finding> {
    check_locks_within(report, LockBudget::default())
}

/// Runs every lock check on a lock report, `lock-budget` against `budget`.
#[must_use]
pub fn check_locks_within(report: &LockReport, budget: LockBudget) -> Vec<Finding> {
    LOCK_CHECKS
        .into_iter()
        .flat_map(|c| c.run_locks(report, budget))
        .collect()
}

/// A replica failure as the checks see it.
pub(crate) struct Failure<'a> {
    pub actor: Actor,
    pub version: Option<&'a str>,
    pub line: Option<usize>,
    pub sqlstate: Option<&'a SqlState>,
    pub message: &'a str,
}

/// Failures of actors that were not killed by fault injection (a killed
/// replica's error is the fault, not a finding of its own).
pub(crate) fn failures(t: &Timeline) -> Vec<Failure<'_>> {
    // Killed actors, found in one pass: asking `exit_of` per event scanned
    // the whole timeline for each one (quadratic in events).
    let mut first_exit = std::collections::BTreeMap::new();
    for e in &t.events {
        if let EventKind::Exited { status, .. } = e.kind {
            first_exit.entry(e.actor).or_insert(status);
        }
    }
    t.events
        .iter()
        .filter(|e| first_exit.get(&e.actor) != Some(&ExitStatus::Killed))
        .filter_map(|e| match &e.kind {
            EventKind::Failed {
                version,
                line,
                sqlstate,
                message,
            } => Some(Failure {
                actor: e.actor,
                version: version.as_deref(),
                line: *line,
                sqlstate: sqlstate.as_ref(),
                message,
            }),
            _ => None,
        })
        .collect()
}

/// A readable actor name for messages.
pub(crate) fn actor_name(actor: Actor) -> String {
    match actor {
        Actor::Replica(n) => format!("replica {n}"),
        Actor::Job => "the migration job".into(),
        Actor::Rerun => "the re-run".into(),
        Actor::Harness => "the harness".into(),
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Hand-built records for the checks' tests.

    use crate::timeline::{Actor, Event, EventKind, ExitStatus, RaceRecord, Timeline};

    pub(crate) fn ev(at_us: u64, actor: Actor, kind: EventKind) -> Event {
        Event { at_us, actor, kind }
    }

    pub(crate) fn exited(at_us: u64, n: u32, status: ExitStatus) -> Event {
        ev(
            at_us,
            Actor::Replica(n),
            EventKind::Exited { status, code: None },
        )
    }

    pub(crate) fn applied(at_us: u64, n: u32, v: &str) -> Event {
        ev(
            at_us,
            Actor::Replica(n),
            EventKind::Applied {
                version: v.into(),
                duration_us: 10,
            },
        )
    }

    pub(crate) fn record(events: Vec<Event>) -> RaceRecord {
        RaceRecord {
            runner: "naive".into(),
            replicas: 2,
            pending: vec!["0002".into()],
            timeline: Timeline { events },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A race recorded against a real Postgres (8 naive replicas, a data
    /// migration), judged without a database.
    #[test]
    fn recorded_naive_race_is_judged_from_plain_data() {
        let record: RaceRecord =
            serde_json::from_str(include_str!("../../tests/fixtures/naive-8-replicas.json"))
                .unwrap();
        let findings = check_race(&record);
        let ids: Vec<CheckId> = findings.iter().map(|f| f.check).collect();
        assert!(ids.contains(&CheckId::DoubleApplication), "{findings:#?}");
        assert!(ids.contains(&CheckId::DuplicateData), "{findings:#?}");
        assert!(!ids.contains(&CheckId::SchemaDrift), "{findings:#?}");
        assert!(findings.iter().all(|f| !f.message.is_empty()));
    }

    /// A record each check must flag. The match is exhaustive: a new check
    /// without an example does not compile.
    fn bad_example(check: CheckId) -> RaceRecord {
        use crate::timeline::{
            BookkeepingState, FaultRecord, FaultState, HeldAdvisoryLock, LockScope, ReferenceRun,
            SchemaSnapshot, TableData,
        };
        use fixtures::*;
        let mut r = record(vec![]);
        let failed = |n: u32, code: &str| {
            ev(
                1,
                Actor::Replica(n),
                EventKind::Failed {
                    version: Some("0002".into()),
                    line: Some(1),
                    sqlstate: Some(SqlState::from_code(code)),
                    message: "boom".into(),
                },
            )
        };
        let data = |rows: i64, sum: &str| {
            vec![TableData {
                table: "public.t".into(),
                rows,
                checksum: Some(sum.into()),
            }]
        };
        match check {
            CheckId::DoubleApplication => {
                r.timeline.events = vec![applied(1, 0, "0002"), applied(2, 1, "0002")];
            }
            CheckId::DuplicateData => {
                r.data = data(2, "x");
                r.reference = Some(ReferenceRun {
                    data: data(1, "y"),
                    ..Default::default()
                });
            }
            CheckId::ReplicaErrors => r.timeline.events = vec![failed(1, "42P07")],
            CheckId::ReplicaWaits => {
                let acquired = |at: u64, n: u32| {
                    ev(
                        at,
                        Actor::Replica(n),
                        EventKind::LockAcquired {
                            key: 1,
                            scope: LockScope::Session,
                            waited_us: 50_000,
                        },
                    )
                };
                r.timeline.events = vec![acquired(1, 0), acquired(2, 1)];
            }
            CheckId::ReplicaTimeout => r.timeline.events = vec![exited(1, 0, ExitStatus::TimedOut)],
            CheckId::SchemaDrift => {
                let mut s = SchemaSnapshot::default();
                s.tables
                    .insert("public.t".into(), crate::timeline::Table::default());
                r.schema = s;
                r.reference = Some(ReferenceRun::default());
            }
            CheckId::DataDrift => {
                r.data = data(1, "x");
                r.reference = Some(ReferenceRun {
                    data: data(1, "y"),
                    ..Default::default()
                });
            }
            CheckId::LeakedAdvisoryLock => {
                r.leaked_locks = vec![HeldAdvisoryLock {
                    key: 1,
                    pid: 2,
                    application_name: None,
                }];
            }
            CheckId::InvalidIndex => r.invalid_indexes = vec!["public.i".into()],
            CheckId::Bookkeeping => {
                r.bookkeeping = BookkeepingState {
                    table: Some("t".into()),
                    ..Default::default()
                };
            }
            CheckId::RolloutHalt => {
                r.timeline.events = vec![failed(0, "42703"), exited(2, 0, ExitStatus::Failure)];
            }
            // Rollout checks have their examples in rollout_examples.
            CheckId::OldOnNew
            | CheckId::NewOnOld
            | CheckId::RollbackUnsafe
            | CheckId::DataDependentBreakage
            | CheckId::TrafficErrors
            | CheckId::TrafficStall => {}
            // Lock checks have their examples in `lock_bad_example`.
            CheckId::LongAccessExclusive
            | CheckId::LockQueue
            | CheckId::BlockedBackends
            | CheckId::TableRewrite
            | CheckId::MissingLockTimeout
            | CheckId::LockLint
            | CheckId::LockBudget => {}
            CheckId::FaultRecovery => {
                r.fault = Some(FaultState {
                    fault: FaultRecord {
                        replica: 0,
                        version: "0002".into(),
                        index: 0,
                        line: 1,
                        transactional: true,
                        mid_statement: true,
                        process_killed: false,
                    },
                    rerun: None,
                });
            }
        }
        r
    }

    #[test]
    fn every_check_flags_its_bad_example_and_only_its_own_check_id() {
        // Rollout and lock checks read other reports; they have their own
        // tests below.
        for check in CheckId::ALL
            .into_iter()
            .filter(|c| !c.reads_rollout() && !c.is_lock_check())
        {
            let found = check.run(&bad_example(check));
            assert!(!found.is_empty(), "{check} does not flag its bad example");
            assert!(found.iter().all(|f| f.check == check), "{check}: {found:?}");
        }
    }

    /// Each compatibility check flags its bad example, and only
    /// with its own id (traffic-stall is tested from a traffic report).
    #[test]
    fn every_rollout_check_flags_its_bad_example_and_only_its_own_check_id() {
        let traffic = crate::workload::TrafficReport::default();
        assert!(
            check_rollout(
                &crate::compat::CompatReport::default(),
                &traffic,
                &Timeline::default()
            )
            .is_empty()
        );
        for check in CheckId::ALL.into_iter().filter(|c| c.reads_rollout()) {
            if check == CheckId::TrafficStall {
                continue;
            }
            let found = check_rollout(
                &rollout_examples::bad(check),
                &traffic,
                &Timeline::default(),
            );
            assert!(!found.is_empty(), "{check} does not flag its bad example");
            assert!(found.iter().all(|f| f.check == check), "{check}: {found:?}");
        }
    }

    /// A lock report each lock check must flag.
    fn lock_bad_example(check: CheckId) -> LockReport {
        use crate::locks::analysis::{Blocker, Hold, StatementRef, Wait};
        use crate::locks::{
            Confirmation, HeldLock, Holder, LintFinding, LockAnalysis, LockMode, LockType, RuleId,
            Trace, TraceOutcome, TracedStatement,
        };
        let traced = TracedStatement {
            version: "0002".into(),
            index: 0,
            line: 1,
            sql: "ALTER TABLE t ALTER COLUMN id TYPE bigint".into(),
            duration_us: 2_000_000,
            acquired: vec![HeldLock {
                locktype: LockType::Relation,
                mode: LockMode::AccessExclusive,
                relation: Some("public.t".into()),
                relkind: Some("r".into()),
                object: None,
            }],
            rewritten: vec!["public.t".into()],
            lock_timeout: "0".into(),
            outcome: TraceOutcome::Ran,
            ..TracedStatement::default()
        };
        let wait = Wait {
            pid: 3,
            holder: Holder::App("app".into()),
            locktype: LockType::Relation,
            mode: LockMode::AccessShare,
            relation: Some("public.t".into()),
            from_us: 0,
            to_us: 500_000,
            wait_us: 510_000,
            blocked_by: vec![Blocker {
                pid: 2,
                holder: Holder::Replica(0),
                queued: true,
            }],
            statement: Some(StatementRef {
                version: "0002".into(),
                index: 0,
                line: 1,
            }),
            lock_taken_by: None,
            query: "SELECT 1".into(),
        };
        let mut r = LockReport::default();
        match check {
            CheckId::LongAccessExclusive | CheckId::LockBudget => {
                r.sampled = Some(LockAnalysis {
                    holds: vec![Hold {
                        relation: "public.t".into(),
                        mode: LockMode::AccessExclusive,
                        holder: Holder::Replica(0),
                        pid: 2,
                        from_us: 0,
                        to_us: 2_000_000,
                        hold_us: 2_010_000,
                    }],
                    ..LockAnalysis::default()
                });
            }
            CheckId::LockQueue | CheckId::BlockedBackends => {
                r.sampled = Some(LockAnalysis {
                    waits: vec![wait],
                    blocked_backend_seconds: 0.51,
                    ..LockAnalysis::default()
                });
            }
            CheckId::TableRewrite | CheckId::MissingLockTimeout => {
                r.trace = Some(Trace {
                    statements: vec![traced],
                    ..Trace::default()
                });
            }
            CheckId::LockLint => {
                r.lint = vec![LintFinding {
                    rule: RuleId::CreateIndexNotConcurrently,
                    version: "0002".into(),
                    index: 0,
                    line: 1,
                    message: "blocks writes".into(),
                    fix: "CONCURRENTLY".into(),
                    confirmation: Confirmation::Confirmed,
                    suppressed: None,
                }];
            }
            other => panic!("{other} is not a lock check"),
        }
        r
    }

    #[test]
    fn every_lock_check_flags_its_bad_example_and_an_empty_report_is_clean() {
        for check in CheckId::ALL.into_iter().filter(|c| c.is_lock_check()) {
            let found = check.run_locks(&lock_bad_example(check), LockBudget::default());
            assert!(!found.is_empty(), "{check} does not flag its bad example");
            assert!(found.iter().all(|f| f.check == check), "{check}: {found:?}");
            assert!(found.iter().all(|f| !f.message.is_empty()));
        }
        assert_eq!(check_locks(&LockReport::default()), vec![]);
    }

    #[test]
    fn a_clean_record_has_no_findings() {
        use fixtures::*;
        let r = record(vec![
            applied(1, 0, "0002"),
            exited(2, 0, ExitStatus::Success),
            ev(
                3,
                Actor::Replica(1),
                EventKind::Skipped {
                    version: "0002".into(),
                },
            ),
            exited(4, 1, ExitStatus::Success),
        ]);
        let mut r = r;
        r.bookkeeping = crate::timeline::BookkeepingState {
            table: Some("t".into()),
            present: true,
            applied: vec!["0002".into()],
            dirty: None,
        };
        assert_eq!(check_race(&r), vec![]);
    }
}
