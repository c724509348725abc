//! `bookkeeping`: the runner's bookkeeping table is missing, marks a version
//! dirty (golang-migrate `dirty`, Flyway `success = false`: later runs refuse
//! to start until someone forces or repairs it), or lacks a pending version.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::migrate::source::compare_versions;
use crate::timeline::RaceRecord;

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let book = &record.bookkeeping;
    let Some(table) = &book.table else {
        return Vec::new();
    };
    if !book.present {
        return vec![Finding::new(
            CheckId::Bookkeeping,
            Severity::Error,
            format!("bookkeeping table {table} is missing after the run"),
            json!({ "table": table }),
        )];
    }
    let mut out = Vec::new();
    if let Some(v) = &book.dirty {
        out.push(Finding::new(
            CheckId::Bookkeeping,
            Severity::Error,
            format!("{table} marks version {v} dirty: {}", refusal(table, v)),
            json!({ "table": table, "dirty": v }),
        ));
    }
    // golang-migrate keeps only the current version; others keep each. A
    // user's tool run as the job keeps its own layout's table (dbmate's
    // `schema_migrations` has a row per version), so one row is the
    // golang-migrate shape only when there is at most one.
    let single_row = book.applied.len() <= 1
        && (matches!(record.runner.as_str(), "session-advisory-lock" | "job")
            || table == "schema_migrations");
    let missing: Vec<&String> = record
        .pending
        .iter()
        .filter(|p| {
            if single_row {
                !book
                    .applied
                    .first()
                    .is_some_and(|c| compare_versions(p, c).is_le())
                    || book
                        .dirty
                        .as_deref()
                        .is_some_and(|d| compare_versions(p, d).is_eq())
            } else {
                !book.applied.iter().any(|a| compare_versions(a, p).is_eq())
            }
        })
        .collect();
    if !missing.is_empty() {
        out.push(Finding::new(
            CheckId::Bookkeeping,
            Severity::Warning,
            format!(
                "{table} does not record {} as applied after the run",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            json!({ "table": table, "missing": missing }),
        ));
    }
    out
}

/// What the tool owning `table` does on its next run after a failure left
/// `version` marked (each tool's documentation).
fn refusal(table: &str, version: &str) -> String {
    match table {
        "flyway_schema_history" => format!(
            "Flyway refuses to migrate (\"detected failed migration to version {version}\") until `flyway repair` removes the row"
        ),
        "_sqlx_migrations" => format!(
            "`sqlx migrate run` refuses (\"migration {version} is partially applied\") until the row is removed by hand"
        ),
        _ => format!(
            "golang-migrate refuses every later run (\"Dirty database version {version}\") until `migrate force` is run by hand"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::BookkeepingState;

    fn state(applied: &[&str], dirty: Option<&str>) -> BookkeepingState {
        BookkeepingState {
            table: Some("schema_migrations".into()),
            present: true,
            applied: applied.iter().map(|s| s.to_string()).collect(),
            dirty: dirty.map(String::from),
        }
    }

    #[test]
    fn bad_dirty_version() {
        let mut r = record(vec![]);
        r.runner = "session-advisory-lock".into();
        r.bookkeeping = state(&["2"], Some("2"));
        let f = check(&r);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("version 2 dirty"));
        assert!(f[1].message.contains("does not record 0002"));
    }

    #[test]
    fn bad_missing_table() {
        let mut r = record(vec![]);
        r.bookkeeping = BookkeepingState {
            table: Some("t".into()),
            ..Default::default()
        };
        assert!(check(&r)[0].message.contains("missing"));
    }

    #[test]
    fn good_all_recorded() {
        let mut r = record(vec![]);
        r.runner = "session-advisory-lock".into();
        r.bookkeeping = state(&["2"], None);
        assert!(check(&r).is_empty());
        r.runner = "naive".into();
        r.bookkeeping = state(&["0002"], None);
        assert!(check(&r).is_empty());
        r.bookkeeping = BookkeepingState::default();
        assert!(
            check(&r).is_empty(),
            "unknown bookkeeping (command runner) is not judged"
        );
    }
}
