//! `replica-waits`: replicas that waited on the migration lock, and how
//! long. Waiting is what a lock is for; a long wait delays a rollout (and
//! startup probes may kill the waiting replica).

use serde_json::json;

use super::{CheckId, Finding, Severity, actor_name};
use crate::timeline::{EventKind, RaceRecord};

/// Waits shorter than this are scheduling noise, not waiting.
const NOISE_US: u64 = 1_000;
/// Longer waits are worth a warning: a startup probe may give up first.
const LONG_US: u64 = 5_000_000;

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let waits: Vec<(String, u64)> = record
        .timeline
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LockAcquired { waited_us, .. } if waited_us >= NOISE_US => {
                Some((actor_name(e.actor), waited_us))
            }
            _ => None,
        })
        .collect();
    let Some((longest_actor, longest)) = waits.iter().max_by_key(|(_, w)| *w).cloned() else {
        return Vec::new();
    };
    let severity = if longest >= LONG_US {
        Severity::Warning
    } else {
        Severity::Info
    };
    vec![Finding::new(
        CheckId::ReplicaWaits,
        severity,
        format!(
            "{} replica(s) waited on the migration lock; longest {} ms ({longest_actor})",
            waits.len(),
            longest / 1000
        ),
        json!({ "waits_us": waits.iter().map(|(a, w)| json!({ "replica": a, "waited_us": w })).collect::<Vec<_>>() }),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{Actor, LockScope};

    fn acquired(n: u32, waited_us: u64) -> crate::timeline::Event {
        ev(
            1,
            Actor::Replica(n),
            EventKind::LockAcquired {
                key: 1,
                scope: LockScope::Session,
                waited_us,
            },
        )
    }

    #[test]
    fn bad_long_waits_warn() {
        let f = check(&record(vec![
            acquired(0, 10),
            acquired(1, 300_000),
            acquired(2, 6_000_000),
        ]));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(
            f[0].message.starts_with("2 replica(s) waited"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("6000 ms (replica 2)"));
    }

    #[test]
    fn good_no_waiting() {
        assert!(check(&record(vec![acquired(0, 5)])).is_empty());
    }
}
