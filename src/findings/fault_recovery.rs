//! `fault-recovery`: after a replica was killed mid-migration, what state
//! was left (fully before, fully after, partial, invalid index, leaked lock,
//! dirty bookkeeping) and whether a serial re-run converges on the schema
//! of a clean serial run.

use serde::Serialize;
use serde_json::json;

use super::{CheckId, Finding, Severity, diff_schema};
use crate::migrate::source::compare_versions;
use crate::timeline::RaceRecord;

/// A property of the state a killed migration left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultClass {
    /// Nothing of the killed migration remains (its transaction rolled back).
    Before,
    /// The migration is recorded as applied (another replica finished it).
    After,
    /// Some statements of a non-transactional migration took effect.
    Partial,
    InvalidIndex,
    LeakedLock,
    DirtyBookkeeping,
}

/// Classifies the state after the fault, from recorded data only.
#[must_use]
pub fn classify(record: &RaceRecord) -> Vec<FaultClass> {
    let Some(state) = &record.fault else {
        return Vec::new();
    };
    let f = &state.fault;
    let book = &record.bookkeeping;
    let single_row = matches!(record.runner.as_str(), "session-advisory-lock" | "job");
    let recorded = if single_row {
        book.dirty.is_none()
            && book
                .applied
                .first()
                .is_some_and(|c| compare_versions(&f.version, c).is_le())
    } else {
        book.applied
            .iter()
            .any(|a| compare_versions(a, &f.version).is_eq())
    };
    let mut out = Vec::new();
    if f.process_killed {
        // Which statement the user's tool was running is unknown.
    } else if recorded {
        out.push(FaultClass::After);
    } else if f.transactional || (f.index == 0 && f.mid_statement) {
        out.push(FaultClass::Before);
    } else {
        out.push(FaultClass::Partial);
    }
    if !record.invalid_indexes.is_empty() {
        out.push(FaultClass::InvalidIndex);
    }
    if !record.leaked_locks.is_empty() {
        out.push(FaultClass::LeakedLock);
    }
    if book.dirty.is_some() {
        out.push(FaultClass::DirtyBookkeeping);
    }
    out
}

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let Some(state) = &record.fault else {
        return Vec::new();
    };
    let f = &state.fault;
    let classes = classify(record);
    let names: Vec<String> = classes
        .iter()
        .filter_map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
        })
        .collect();
    let converged = state.rerun.as_ref().map(|r| {
        let drift = record
            .reference
            .as_ref()
            .map(|reference| diff_schema(&r.schema, &reference.schema))
            .unwrap_or_default();
        (r.error.clone(), r.invalid_indexes.clone(), drift)
    });
    let (severity, verdict) = match &converged {
        None => (Severity::Warning, "no re-run was attempted".to_string()),
        Some((Some(e), _, _)) => (Severity::Error, format!("a re-run fails: {e}")),
        Some((None, invalid, _)) if !invalid.is_empty() => (
            Severity::Error,
            format!(
                "a re-run succeeds but leaves {} INVALID",
                invalid.join(", ")
            ),
        ),
        Some((None, _, drift)) if !drift.is_empty() => (
            Severity::Error,
            format!(
                "a re-run succeeds but the schema differs from a clean run: {}",
                drift[0]
            ),
        ),
        Some(_) => {
            let sev = if classes.contains(&FaultClass::Partial) {
                Severity::Warning
            } else {
                Severity::Info
            };
            (sev, "a re-run converges".to_string())
        }
    };
    let where_ = if f.process_killed {
        "a random point (process killed)".to_string()
    } else {
        format!(
            "migration {} statement {} (line {})",
            f.version,
            f.index + 1,
            f.line
        )
    };
    vec![Finding::new(
        CheckId::FaultRecovery,
        severity,
        format!(
            "replica {} was killed at {where_}; state left: {}; {verdict}",
            f.replica,
            if names.is_empty() {
                "nothing detectable".to_string()
            } else {
                names.join(", ")
            }
        ),
        json!({ "fault": f, "state": names, "verdict": verdict,
                "rerun_error": converged.as_ref().and_then(|c| c.0.clone()) }),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{BookkeepingState, FaultRecord, FaultState, RerunRecord, SchemaSnapshot};

    fn faulted(transactional: bool, index: usize, rerun_error: Option<&str>) -> RaceRecord {
        let mut r = record(vec![]);
        r.runner = "session-advisory-lock".into();
        r.bookkeeping = BookkeepingState {
            table: Some("schema_migrations".into()),
            present: true,
            applied: vec!["2".into()],
            dirty: Some("2".into()),
        };
        r.fault = Some(FaultState {
            fault: FaultRecord {
                replica: 0,
                version: "0002".into(),
                index,
                line: 3,
                transactional,
                mid_statement: true,
                process_killed: false,
            },
            rerun: Some(RerunRecord {
                error: rerun_error.map(String::from),
                schema: SchemaSnapshot::default(),
                bookkeeping: BookkeepingState::default(),
                invalid_indexes: vec![],
            }),
        });
        r
    }

    #[test]
    fn bad_partial_non_transactional_with_dirty_bookkeeping_that_does_not_converge() {
        let r = faulted(false, 1, Some("dirty database version 2"));
        assert_eq!(
            classify(&r),
            [FaultClass::Partial, FaultClass::DirtyBookkeeping]
        );
        let f = check(&r);
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].message
                .contains("state left: partial, dirty-bookkeeping; a re-run fails"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn good_transactional_kill_rolls_back_and_converges() {
        let mut r = faulted(true, 1, None);
        r.bookkeeping.dirty = None;
        r.bookkeeping.applied = vec![];
        assert_eq!(classify(&r), [FaultClass::Before]);
        assert_eq!(check(&r)[0].severity, Severity::Info);
    }

    #[test]
    fn no_fault_no_finding() {
        assert!(check(&record(vec![])).is_empty());
    }
}
