//! `missing-lock-timeout`: the trace saw a statement take a lock that
//! blocks writes while `lock_timeout` was 0. Queued behind one long
//! transaction, such a request stalls every query on the table; with
//! lock_timeout it fails fast with 55P03 and can be retried.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::locks::{LockMode, LockReport};

/// `CREATE [UNLOGGED | TEMP ...] TABLE`: the only ACCESS EXCLUSIVE such a
/// statement takes is on the table it creates (a referenced table of a
/// foreign key gets SHARE ROW EXCLUSIVE, still reported).
fn creates_table(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(5)
        .map(str::to_ascii_uppercase)
        .collect();
    words.first().is_some_and(|w| w == "CREATE")
        && words.iter().skip(1).take(3).any(|w| w == "TABLE")
}

pub(super) fn check(report: &LockReport) -> Vec<Finding> {
    let Some(trace) = &report.trace else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeSet::new();
    // Tables a migration creates: nobody else can see them until it
    // commits, so no request on them queues behind anything and no
    // application waits on them.
    let mut created: std::collections::BTreeSet<(&str, &str)> = std::collections::BTreeSet::new();
    for s in &trace.statements {
        if creates_table(&s.sql) {
            for l in s
                .acquired
                .iter()
                .filter(|l| l.mode == LockMode::AccessExclusive)
            {
                if let Some(relation) = &l.relation {
                    created.insert((s.version.as_str(), relation.as_str()));
                }
            }
        }
    }
    trace
        .statements
        .iter()
        .filter(|s| matches!(s.lock_timeout.trim(), "0" | "0ms" | "0s"))
        .filter_map(|s| {
            let (table, mode) = s
                .acquired
                .iter()
                .filter(|l| l.relation.is_some() && l.mode.blocks_writes())
                .filter(|l| {
                    l.relation
                        .as_deref()
                        .is_none_or(|r| !created.contains(&(s.version.as_str(), r)))
                })
                .filter(|l| matches!(l.relkind.as_deref(), Some("r" | "p" | "m")))
                .map(|l| (l.relation.clone().unwrap_or_default(), l.mode))
                .max_by_key(|(_, m)| *m)?;
            // One finding per migration: the first statement shows it.
            seen.insert(s.version.clone()).then(|| {
                Finding::new(
                    CheckId::MissingLockTimeout,
                    Severity::Warning,
                    format!(
                        "migration {} line {} takes {mode} on {table} with no lock_timeout: set lock_timeout so a queued request fails fast (55P03) instead of stalling the table",
                        s.version, s.line
                    ),
                    json!({ "version": s.version, "line": s.line, "table": table, "mode": mode }),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::{HeldLock, LockType, Trace, TraceOutcome, TracedStatement};

    fn statement(line: usize, sql: &str, locks: &[(LockMode, &str)]) -> TracedStatement {
        TracedStatement {
            version: "0002".into(),
            index: line - 1,
            line,
            sql: sql.into(),
            duration_us: 1_000,
            acquired: locks
                .iter()
                .map(|(mode, relation)| HeldLock {
                    locktype: LockType::Relation,
                    mode: *mode,
                    relation: Some((*relation).into()),
                    relkind: Some("r".into()),
                    object: None,
                })
                .collect(),
            rewritten: vec![],
            lock_timeout: "0".into(),
            outcome: TraceOutcome::Ran,
            ..TracedStatement::default()
        }
    }

    fn report(statements: Vec<TracedStatement>) -> LockReport {
        LockReport {
            trace: Some(Trace {
                statements,
                ..Trace::default()
            }),
            ..LockReport::default()
        }
    }

    #[test]
    fn good_a_brand_new_table_needs_no_lock_timeout() {
        let r = report(vec![
            statement(
                1,
                "CREATE TABLE audit (id bigint PRIMARY KEY)",
                &[(LockMode::AccessExclusive, "public.audit")],
            ),
            statement(
                2,
                "CREATE INDEX ON audit (id)",
                &[(LockMode::Share, "public.audit")],
            ),
        ]);
        assert_eq!(check(&r), vec![]);
    }

    #[test]
    fn bad_the_referenced_existing_table_still_counts() {
        let r = report(vec![statement(
            1,
            "create table orders2 (customer_id int references customers)",
            &[
                (LockMode::AccessExclusive, "public.orders2"),
                (LockMode::ShareRowExclusive, "public.customers"),
            ],
        )]);
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("public.customers"),
            "{}",
            f[0].message
        );
    }
}
