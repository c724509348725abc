//! `rollout-halt`: a migration failed in a way no retry fixes, so the
//! rollout must halt: the migration job exited non-zero (replicas were not
//! started), every migrating actor failed, or the migration fails even in a
//! serial run.

use serde_json::json;

use super::{CheckId, Finding, Severity, failures};
use crate::timeline::{Actor, EventKind, ExitStatus, RaceRecord, Timeline};

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let t = &record.timeline;
    let fails = failures(t);
    let first = fails.iter().find(|f| f.version.is_some()).or(fails.first());
    let cause = first.map(|f| {
        format!(
            "migration {}{}{} failed: {}",
            f.version.unwrap_or("?"),
            f.line.map(|l| format!(" line {l}")).unwrap_or_default(),
            f.sqlstate.map(|s| format!(" [{s}]")).unwrap_or_default(),
            f.message
        )
    });
    let halted = t.events.iter().find_map(|e| match &e.kind {
        EventKind::RolloutHalted { reason } => Some(reason.clone()),
        _ => None,
    });
    let migrating: Vec<Actor> = t
        .actors()
        .into_iter()
        .filter(|a| matches!(a, Actor::Replica(_) | Actor::Job))
        .collect();
    let nobody_succeeded = !migrating.is_empty()
        && migrating
            .iter()
            .all(|a| t.exit_of(*a) != Some(ExitStatus::Success))
        && fails.iter().any(|f| f.version.is_some());
    let serial_error = record.reference.as_ref().and_then(|r| r.error.clone());
    let (why, detail) = if let Some(reason) = halted {
        (
            "the migration job failed and the rollout was halted before any replica started",
            reason,
        )
    } else if nobody_succeeded {
        (
            "every replica failed to migrate",
            cause.clone().unwrap_or_default(),
        )
    } else if let Some(e) = serial_error {
        ("the migrations fail even when run serially", e)
    } else {
        return Vec::new();
    };
    vec![Finding::new(
        CheckId::RolloutHalt,
        Severity::Error,
        format!(
            "the rollout must halt: {why}; {}",
            cause.as_deref().unwrap_or(&detail)
        ),
        json!({ "reason": why, "detail": detail, "cause": cause }),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::SqlState;

    fn job_failed() -> Vec<crate::timeline::Event> {
        vec![
            ev(
                1,
                Actor::Job,
                EventKind::Failed {
                    version: Some("0002".into()),
                    line: Some(1),
                    sqlstate: Some(SqlState::UndefinedTable),
                    message: "relation \"missing\" does not exist".into(),
                },
            ),
            ev(
                2,
                Actor::Job,
                EventKind::Exited {
                    status: ExitStatus::Failure,
                    code: Some(1),
                },
            ),
            ev(
                3,
                Actor::Harness,
                EventKind::RolloutHalted {
                    reason: "job failed".into(),
                },
            ),
        ]
    }

    #[test]
    fn bad_job_failure_halts() {
        let f = check(&record(job_failed()));
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .starts_with("the rollout must halt: the migration job failed"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("migration 0002 line 1 [42P01]"));
    }

    #[test]
    fn bad_every_replica_failed() {
        let mut events = job_failed();
        events.truncate(1);
        events[0].actor = Actor::Replica(0);
        events.push(exited(2, 0, ExitStatus::Failure));
        assert_eq!(check(&record(events)).len(), 1);
    }

    #[test]
    fn good_one_replica_succeeded() {
        let mut events = job_failed();
        events.truncate(1);
        events[0].actor = Actor::Replica(0);
        events.push(exited(2, 0, ExitStatus::Failure));
        events.push(exited(3, 1, ExitStatus::Success));
        assert!(check(&record(events)).is_empty());
    }
}

/// A rollout plan stopped by a failed migration step (the rollout records a
/// `RolloutHalted` event and runs no later step).
pub(super) fn check_rollout(timeline: &Timeline) -> Vec<Finding> {
    timeline
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RolloutHalted { reason } => Some(Finding::new(
                CheckId::RolloutHalt,
                Severity::Error,
                format!("the rollout must halt: {reason}; no later step ran"),
                json!({ "reason": reason }),
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod rollout_tests {
    use super::*;
    use crate::timeline::Event;

    #[test]
    fn a_halted_rollout_is_reported_and_a_finished_one_is_not() {
        let halted = Timeline {
            events: vec![Event {
                at_us: 5,
                actor: Actor::Harness,
                kind: EventKind::RolloutHalted {
                    reason: "migration 0002 failed".into(),
                },
            }],
        };
        let found = check_rollout(&halted);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].check, CheckId::RolloutHalt);
        assert!(found[0].message.contains("migration 0002 failed"));
        assert!(check_rollout(&Timeline::default()).is_empty());
    }
}
