//! `traffic-errors`: app queries failed during the rollout for
//! reasons other than code and schema disagreeing: lock timeouts (55P03),
//! deadlocks (40P01), cancellations (57014, e.g. the statement timeout
//! while queued behind a migration's ACCESS EXCLUSIVE lock), lost
//! connections (08xxx). Users see these as errors.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::compat::CompatReport;

pub(super) fn check(compat: &CompatReport) -> Vec<Finding> {
    compat
        .transient
        .iter()
        .map(|t| {
            Finding::new(
                CheckId::TrafficErrors,
                Severity::Error,
                format!(
                    "query `{}` of version `{}` failed {} time(s) in phase {} with {}: {}",
                    t.query,
                    t.version,
                    t.count,
                    t.phase,
                    t.sqlstate.code(),
                    t.message
                ),
                json!({ "version": t.version, "query": t.query, "phase": t.phase,
                        "sqlstate": t.sqlstate.code(), "count": t.count }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures::*;

    #[test]
    fn bad_a_lock_timeout_during_the_migration() {
        let f = check(&super::super::rollout_examples::bad(CheckId::TrafficErrors));
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("55P03"), "{}", f[0].message);
    }

    #[test]
    fn good_compatibility_errors_are_not_traffic_errors() {
        let probes = [
            probed(0, "old", "get", shape(&[])),
            probed(1, "old", "get", shape(&[])),
        ];
        let r = report(
            &probes,
            &migrate_then_deploy(),
            &[exec("old", "get", 1, Some("23502"))],
        );
        assert!(check(&r).is_empty());
    }
}
