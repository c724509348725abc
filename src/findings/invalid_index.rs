//! `invalid-index`: indexes with `indisvalid = false` after the run. An
//! interrupted or failed CREATE INDEX CONCURRENTLY leaves one behind; it is
//! maintained on every write but never used, and a re-run of
//! `CREATE INDEX CONCURRENTLY IF NOT EXISTS` silently keeps it.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::timeline::RaceRecord;

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    record
        .invalid_indexes
        .iter()
        .map(|name| {
            Finding::new(
                CheckId::InvalidIndex,
                Severity::Error,
                format!(
                    "index {name} is INVALID: drop it (DROP INDEX CONCURRENTLY) and build it again"
                ),
                json!({ "index": name }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn bad_an_invalid_index_is_left() {
        let mut r = record(vec![]);
        r.invalid_indexes = vec!["public.users_email_idx".into()];
        assert_eq!(check(&r).len(), 1);
    }

    #[test]
    fn good_none() {
        assert!(check(&record(vec![])).is_empty());
    }
}
