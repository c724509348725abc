//! `double-application`: more than one replica applied the same version
//! (the timeline shows several `applied` events), or the bookkeeping table
//! recorded it more than once. Happens with runners without a lock whose
//! bookkeeping has no unique constraint (Django's `django_migrations`).

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckId, Finding, Severity, actor_name};
use crate::migrate::source::compare_versions;
use crate::timeline::{EventKind, RaceRecord};

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let mut by_version: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &record.timeline.events {
        if let EventKind::Applied { version, .. } = &e.kind {
            by_version
                .entry(version)
                .or_default()
                .push(actor_name(e.actor));
        }
    }
    let mut out = Vec::new();
    for (version, actors) in by_version.into_iter().filter(|(_, a)| a.len() > 1) {
        let recorded = record
            .bookkeeping
            .applied
            .iter()
            .filter(|v| compare_versions(v, version).is_eq())
            .count();
        out.push(Finding::new(
            CheckId::DoubleApplication,
            Severity::Error,
            format!(
                "migration {version} was applied {} times ({}); the runner does not serialise replicas: \
                 use an advisory lock or a single migration job",
                actors.len(),
                actors.join(", ")
            ),
            json!({ "version": version, "replicas": actors, "recorded": recorded }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::ExitStatus;

    #[test]
    fn bad_two_replicas_apply_the_same_version() {
        let r = record(vec![
            applied(1, 0, "0002"),
            applied(2, 1, "0002"),
            exited(3, 0, ExitStatus::Success),
        ]);
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("applied 2 times"), "{}", f[0].message);
        assert_eq!(f[0].details["version"], "0002");
    }

    #[test]
    fn good_one_application_per_version() {
        let r = record(vec![applied(1, 0, "0002"), applied(2, 0, "0003")]);
        assert!(check(&r).is_empty());
    }
}
