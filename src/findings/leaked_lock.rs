//! `leaked-advisory-lock`: advisory locks still granted after every replica
//! finished. A session lock is released only by unlock or disconnect
//! (manual, "Advisory Locks"): a failed migrator whose connection stays in
//! the app's pool blocks every later migration run (the sqlx failure mode).

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::timeline::RaceRecord;

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    record
        .leaked_locks
        .iter()
        .map(|l| {
            let holder = l.application_name.clone().unwrap_or_else(|| format!("pid {}", l.pid));
            Finding::new(
                CheckId::LeakedAdvisoryLock,
                Severity::Error,
                format!(
                    "advisory lock {} is still held by {holder} after the run: later migrations will wait on it until that connection closes",
                    l.key
                ),
                json!({ "key": l.key, "holder": holder }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::HeldAdvisoryLock;

    #[test]
    fn bad_a_lock_is_still_held() {
        let mut r = record(vec![]);
        r.leaked_locks = vec![HeldAdvisoryLock {
            key: 42,
            pid: 7,
            application_name: Some("rehearse-replica-1".into()),
        }];
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("rehearse-replica-1"));
    }

    #[test]
    fn good_no_locks() {
        assert!(check(&record(vec![])).is_empty());
    }
}
