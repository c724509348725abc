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
    let acquired: Vec<(&crate::timeline::Event, i64, u64)> = record
        .timeline
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::LockAcquired { key, waited_us, .. } => Some((e, key, waited_us)),
            _ => None,
        })
        .collect();
    // A wait counts only if another actor got the same lock first: a lone
    // actor's round trip under load is not waiting.
    let waits: Vec<(String, u64)> = acquired
        .iter()
        .filter(|(e, key, waited)| {
            *waited >= NOISE_US
                && acquired
                    .iter()
                    .any(|(o, k, _)| k == key && o.actor != e.actor && o.at_us <= e.at_us)
        })
        .map(|(e, _, waited)| (actor_name(e.actor), *waited))
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
            u64::from(n),
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
        assert!(
            check(&record(vec![acquired(0, 50_000)])).is_empty(),
            "alone: no one to wait for"
        );
    }
}
