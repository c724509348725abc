//! `bookkeeping`: the runner's bookkeeping table is missing, marks a version
//! dirty (golang-migrate `dirty`, Flyway `success = false`: later runs refuse
//! to start until someone forces or repairs it), or lacks a pending version
//! (sqlx, dbmate, diesel, refinery: nothing recorded for a failed
//! migration, so the next run applies it again). The table is the layout's
//! own tool's, for built-in runners too.

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
    let single_row = book.applied.len() <= 1 && table == "schema_migrations";
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
                "{table} does not record {} as applied after the run{}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                retry(table, book.dirty.is_some(), book.applied.len()),
            ),
            json!({ "table": table, "missing": missing }),
        ));
    }
    out
}

/// What the tool owning `table` does on its next run with versions left
/// unrecorded and none marked failed: it applies them again (sqlx, dbmate,
/// diesel and refinery record a migration only once it succeeded; Flyway on
/// PostgreSQL rolls a failed transactional migration back with its row).
/// Empty when a version is marked: the dirty finding says why it refuses.
fn retry(table: &str, dirty: bool, rows: usize) -> String {
    if dirty {
        return String::new();
    }
    let tool = match table {
        "_sqlx_migrations" => "`sqlx migrate run`",
        "__diesel_schema_migrations" => "`diesel migration run`",
        "refinery_schema_history" => "refinery",
        "flyway_schema_history" => "`flyway migrate`",
        // golang-migrate keeps one row; dbmate one per version.
        "schema_migrations" if rows > 1 => "`dbmate up`",
        "schema_migrations" => "the tool (dbmate or golang-migrate)",
        _ => "the next run",
    };
    if tool == "the next run" {
        return "; nothing marks it failed, so the next run applies it again".into();
    }
    format!("; nothing marks it failed, so the next run of {tool} applies it again")
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

    fn book(table: &str, applied: &[&str], dirty: Option<&str>) -> BookkeepingState {
        BookkeepingState {
            table: Some(table.into()),
            ..state(applied, dirty)
        }
    }

    #[test]
    fn each_tool_after_a_failed_migration_says_what_its_next_run_does() {
        // The pending 0002 failed under the naive runner: what each layout's
        // table holds then (a run per layout in tests/races_tool_book.rs).
        let mut r = record(vec![]);
        r.runner = "naive".into();
        let cases = [
            (
                book("_sqlx_migrations", &["1"], None),
                "next run of `sqlx migrate run` applies it again",
            ),
            (
                book("schema_migrations", &["0001", "0003"], None),
                "next run of `dbmate up` applies it again",
            ),
            (
                book("__diesel_schema_migrations", &["0001"], None),
                "next run of `diesel migration run` applies it again",
            ),
            (
                book("schema_migrations", &["2"], Some("2")),
                "golang-migrate refuses every later run (\"Dirty database version 2\")",
            ),
        ];
        for (state, expected) in cases {
            r.bookkeeping = state.clone();
            let text: Vec<String> = check(&r).into_iter().map(|f| f.message).collect();
            assert!(
                text.iter().any(|m| m.contains(expected)),
                "{state:?}: {text:?}"
            );
            assert!(
                state.dirty.is_some() || !text.iter().any(|m| m.contains("dirty")),
                "{text:?}"
            );
        }
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
