//! `traffic-stall`: app queries that took at least the stall
//! threshold during the rollout, with the migration statement that ran
//! meanwhile (typically a lock queue behind an ACCESS EXCLUSIVE request,
//! manual "Explicit Locking"). A warning: slow, not failed.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::workload::TrafficReport;

pub(super) fn check(traffic: &TrafficReport) -> Vec<Finding> {
    let Some(worst) = traffic.stalls.first() else {
        return Vec::new();
    };
    let during = if worst.during.is_empty() {
        "no migration statement was running".to_string()
    } else {
        format!("while migration statement {} ran", worst.during.join(", "))
    };
    vec![Finding::new(
        CheckId::TrafficStall,
        Severity::Warning,
        format!(
            "{} app quer(ies) stalled for at least {} ms; the longest, `{}` of version `{}`, took {} ms {during}",
            traffic.stalls.len(),
            traffic.stall_threshold_us / 1000,
            worst.query,
            worst.version,
            worst.latency_us / 1000
        ),
        json!({ "stalls": traffic.stalls }),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::traffic::Stall;

    #[test]
    fn bad_a_query_waited_behind_the_migration() {
        let mut t = TrafficReport {
            stall_threshold_us: 1_000_000,
            ..TrafficReport::default()
        };
        t.stalls.push(Stall {
            phase: 1,
            version: "old".into(),
            query: "get".into(),
            client: "rehearse-app-old-0".into(),
            start_us: 1,
            latency_us: 2_500_000,
            during: vec!["0002:3".into()],
        });
        let f = check(&t);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message
                .contains("2500 ms while migration statement 0002:3"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn good_no_stalls() {
        assert!(check(&TrafficReport::default()).is_empty());
    }
}
