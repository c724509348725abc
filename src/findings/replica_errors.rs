//! `replica-errors`: replica failures grouped by SQLSTATE, each with what it
//! means under concurrency.

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckId, Finding, Severity, actor_name, failures};
use crate::timeline::{EventKind, RaceRecord, SqlState};

/// What a SQLSTATE means when replicas race, and how bad it is.
fn explain(state: Option<&SqlState>, sample: &str) -> (Severity, &'static str) {
    match state {
        Some(SqlState::DuplicateTable) => (
            Severity::Error,
            "a replica created a relation another replica had just created: the runner does not serialise replicas",
        ),
        Some(SqlState::DuplicateColumn) => (
            Severity::Error,
            "a column was added twice: the migration ran in more than one replica",
        ),
        Some(SqlState::DuplicateObject) => (
            Severity::Error,
            "an object was created twice: the migration ran in more than one replica",
        ),
        Some(SqlState::UniqueViolation) if is_catalog_race(sample) => (
            Severity::Error,
            "concurrent CREATE ... IF NOT EXISTS collided in the catalog (pg_type / pg_class): IF NOT EXISTS does not make DDL safe under concurrency",
        ),
        Some(SqlState::UniqueViolation) => (
            Severity::Error,
            "a unique constraint was violated: rows or bookkeeping were written twice",
        ),
        Some(SqlState::DeadlockDetected) => (
            Severity::Error,
            "deadlock: typically CREATE INDEX CONCURRENTLY waiting for the snapshot of a replica that waits on the migration lock",
        ),
        Some(SqlState::LockNotAvailable) => (
            Severity::Warning,
            "lock_timeout expired while waiting for a lock: the replica gave up instead of hanging",
        ),
        Some(SqlState::ActiveSqlTransaction) => (
            Severity::Error,
            "the statement cannot run inside a transaction block: mark the migration as no-transaction in your tool",
        ),
        None if sample.contains("another migration") => (
            Severity::Warning,
            "the migration lock was busy and the replica failed fast: it must be restarted (crash loop) until the migration is done",
        ),
        None if sample.contains("dirty database") => (
            Severity::Error,
            "an earlier failure left the bookkeeping dirty, and the runner refuses to migrate past it",
        ),
        _ => (Severity::Error, "the replica failed"),
    }
}

/// A unique violation on a system catalog's index (`pg_type_typname_nsp_index`,
/// `pg_class_relname_nsp_index`, ...): two sessions created the same name,
/// each unable to see the other's uncommitted row.
fn is_catalog_race(message: &str) -> bool {
    message.contains("unique constraint \"pg_")
}

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let mut groups: BTreeMap<Option<SqlState>, Vec<super::Failure<'_>>> = BTreeMap::new();
    for f in failures(&record.timeline) {
        groups.entry(f.sqlstate.cloned()).or_default().push(f);
    }
    let busy = record
        .timeline
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::LockBusy { .. }));
    let mut out = Vec::new();
    for (state, list) in groups {
        // Prefer a catalog collision as the sample: it explains the group.
        let sample = list
            .iter()
            .map(|f| f.message)
            .find(|m| is_catalog_race(m))
            .unwrap_or(list[0].message);
        let (severity, meaning) = explain(
            state.as_ref(),
            if busy && state.is_none() {
                "another migration"
            } else {
                sample
            },
        );
        let replicas: Vec<String> = list.iter().map(|f| actor_name(f.actor)).collect();
        let at: Vec<String> = list
            .iter()
            .filter_map(|f| {
                f.version
                    .map(|v| format!("{v}{}", f.line.map(|l| format!(":{l}")).unwrap_or_default()))
            })
            .collect();
        let code = state
            .as_ref()
            .map_or("no SQLSTATE".to_string(), |s| format!("SQLSTATE {s}"));
        out.push(Finding::new(
            CheckId::ReplicaErrors,
            severity,
            format!(
                "{} replica(s) failed with {code}: {meaning} (first: {sample})",
                list.len()
            ),
            json!({ "sqlstate": state, "replicas": replicas, "at": at, "message": sample }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{Actor, ExitStatus};

    fn failed(at: u64, n: u32, code: &str, message: &str) -> crate::timeline::Event {
        ev(
            at,
            Actor::Replica(n),
            EventKind::Failed {
                version: Some("0002".into()),
                line: Some(3),
                sqlstate: Some(SqlState::from_code(code)),
                message: message.into(),
            },
        )
    }

    #[test]
    fn bad_grouped_by_sqlstate_with_pg_type_race_named() {
        let r = record(vec![
            failed(1, 1, "42P07", "relation \"t\" already exists"),
            failed(2, 2, "42P07", "relation \"t\" already exists"),
            failed(
                3,
                3,
                "23505",
                "duplicate key value violates unique constraint \"pg_type_typname_nsp_index\"",
            ),
        ]);
        let f = check(&r);
        assert_eq!(f.len(), 2);
        assert!(f.iter().any(|f| {
            f.message
                .starts_with("2 replica(s) failed with SQLSTATE 42P07")
        }));
        assert!(
            f.iter()
                .any(|f| f.message.contains("IF NOT EXISTS does not make DDL safe"))
        );
        assert_eq!(f[0].details["at"][0], "0002:3");
    }

    #[test]
    fn killed_replicas_are_not_reported_here() {
        let r = record(vec![
            failed(1, 1, "57P01", "terminating connection"),
            exited(2, 1, ExitStatus::Killed),
        ]);
        assert!(check(&r).is_empty());
    }

    #[test]
    fn good_no_failures() {
        assert!(check(&record(vec![applied(1, 0, "0002")])).is_empty());
    }
}
