//! `replica-timeout`: replicas that never finished within the timeout (the
//! harness terminated their backends). Says what each was doing last: a
//! replica stuck waiting on the migration lock behind a CREATE INDEX
//! CONCURRENTLY that waits for its snapshot is the classic hang.

use serde_json::json;

use super::{CheckId, Finding, Severity, actor_name};
use crate::timeline::{EventKind, ExitStatus, RaceRecord};

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let t = &record.timeline;
    let mut out = Vec::new();
    for actor in t.actors() {
        if t.exit_of(actor) != Some(ExitStatus::TimedOut) {
            continue;
        }
        let last = t
            .of(actor)
            .filter(|e| !matches!(e.kind, EventKind::Exited { .. }))
            .last()
            .map(|e| match &e.kind {
                EventKind::WaitingOnLock { key, .. } => format!("waiting on advisory lock {key}"),
                EventKind::StatementBegin { version, line, .. } => {
                    format!("running migration {version} line {line}")
                }
                EventKind::Started => "starting".to_string(),
                other => format!(
                    "after {}",
                    serde_json::to_value(other)
                        .ok()
                        .and_then(|v| v["event"].as_str().map(String::from))
                        .unwrap_or_default()
                ),
            })
            .unwrap_or_else(|| "not started".into());
        out.push(Finding::new(
            CheckId::ReplicaTimeout,
            Severity::Error,
            format!(
                "{} never finished (last: {last}); its backend was terminated",
                actor_name(actor)
            ),
            json!({ "replica": actor_name(actor), "last": last }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{Actor, LockScope};

    #[test]
    fn bad_a_replica_hung_on_the_lock() {
        let r = record(vec![
            ev(
                1,
                Actor::Replica(1),
                EventKind::WaitingOnLock {
                    key: 9,
                    scope: LockScope::Session,
                },
            ),
            exited(2, 1, ExitStatus::TimedOut),
        ]);
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("waiting on advisory lock 9"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn good_everyone_finished() {
        assert!(check(&record(vec![exited(1, 0, ExitStatus::Success)])).is_empty());
    }
}
