//! The compatibility matrix: every version's queries against every schema
//! state a rollout reaches.
//!
//! [`probe`] asks the server to PREPARE each query (its own parse analysis:
//! parameter types and result columns, manual "PREPARE"); everything else
//! here is pure: [`compare`] holds a description against the one the
//! version was written for, and [`build_compat`] classifies each breakage
//! by how the plan runs that version on that state, adding the errors the
//! live workload hit.

mod prepare;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use prepare::probe;

use crate::timeline::SqlState;
use crate::workload::Execution;

/// What the server said about one statement of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Parameter type names, `$1` first.
    pub params: Vec<String>,
    /// Result columns: name and type name.
    pub columns: Vec<(String, String)>,
}

/// The outcome of preparing every statement of a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Prepared {
    Ok {
        shapes: Vec<Shape>,
    },
    Error {
        statement: usize,
        sqlstate: SqlState,
        message: String,
    },
}

/// One query of one version prepared on one schema state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub state: usize,
    pub version: String,
    pub query: String,
    pub prepared: Prepared,
}

/// One phase of a rollout: which versions serve, on which schema state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub index: usize,
    /// e.g. `serve old`, `migrate 0005`, `deploy new (1/3)`.
    pub name: String,
    /// Index into the schema states; during a migration step, the state
    /// before it.
    pub state: usize,
    /// The version each app replica runs.
    pub fleet: Vec<String>,
    /// The fleet got here by rolling back.
    pub rollback: bool,
    /// A migration runs during this phase: errors from schema changes show
    /// up once it commits, so live errors count against the next state.
    #[serde(default)]
    pub migrating: bool,
    pub start_us: u64,
    pub end_us: u64,
}

/// A cell's verdict against the version's own schema state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum CellVerdict {
    Ok,
    Error {
        sqlstate: SqlState,
        message: String,
    },
    /// Prepares, but parameters or result columns differ.
    Changed {
        changes: Vec<String>,
    },
}

/// How a breakage happens in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakageClass {
    /// Old code on a schema migrated after it (expand broke old code).
    OldOnNew,
    /// New code on a schema its migration has not reached yet.
    NewOnOld,
    /// Old code brought back on a later schema.
    RollbackUnsafe,
    /// The query prepares, but fails with some data (or fails live where
    /// other executions of it succeed).
    DataDependent,
}

/// Where a breakage was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// PREPARE on that schema state.
    Prepare,
    /// Executions of the live workload.
    Live,
}

/// One broken (version, query, schema state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakage {
    pub class: BreakageClass,
    pub version: String,
    pub query: String,
    pub state: usize,
    pub state_label: String,
    pub evidence: Evidence,
    pub sqlstate: Option<SqlState>,
    /// The server's message, or the shape changes.
    pub message: String,
    /// The plan runs this version on this state (in the way `class` says).
    pub live: bool,
    /// Failed executions seen live (0 for PREPARE-only evidence).
    pub failed_executions: u64,
}

/// Errors of the live workload that are not compatibility problems (lock
/// timeouts, cancellations, deadlocks, lost connections).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransientErrors {
    pub version: String,
    pub query: String,
    pub phase: usize,
    pub sqlstate: SqlState,
    pub count: u64,
    pub message: String,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub version: String,
    pub query: String,
    pub state: usize,
    #[serde(flatten)]
    pub verdict: CellVerdict,
}

/// The compatibility matrix and its classified breakages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompatReport {
    /// Schema states, e.g. `baseline`, `after 0005`.
    pub states: Vec<String>,
    /// The state each version was written for.
    pub home: BTreeMap<String, usize>,
    pub cells: Vec<Cell>,
    pub breakages: Vec<Breakage>,
    pub transient: Vec<TransientErrors>,
}

/// `here` held against `home`: ok, error, or a changed shape.
#[must_use]
pub fn compare(home: &Prepared, here: &Prepared) -> CellVerdict {
    match (home, here) {
        (
            _,
            Prepared::Error {
                sqlstate, message, ..
            },
        ) => CellVerdict::Error {
            sqlstate: sqlstate.clone(),
            message: message.clone(),
        },
        (Prepared::Error { .. }, Prepared::Ok { .. }) => CellVerdict::Ok,
        (Prepared::Ok { shapes: a }, Prepared::Ok { shapes: b }) => {
            let mut changes = Vec::new();
            for (i, (a, b)) in a.iter().zip(b).enumerate() {
                let prefix = format!("statement {}: ", i + 1);
                for (n, (pa, pb)) in a.params.iter().zip(&b.params).enumerate() {
                    if pa != pb {
                        changes.push(format!("{prefix}parameter ${} type {pa} -> {pb}", n + 1));
                    }
                }
                if a.params.len() != b.params.len() {
                    changes.push(format!(
                        "{prefix}{} parameter(s) -> {}",
                        a.params.len(),
                        b.params.len()
                    ));
                }
                for (name, ty) in &a.columns {
                    match b.columns.iter().find(|(n, _)| n == name) {
                        None => changes.push(format!("{prefix}result column `{name}` removed")),
                        Some((_, t)) if t != ty => {
                            changes.push(format!("{prefix}result column `{name}` type {ty} -> {t}"))
                        }
                        Some(_) => {}
                    }
                }
                for (name, _) in &b.columns {
                    if !a.columns.iter().any(|(n, _)| n == name) {
                        changes.push(format!("{prefix}result column `{name}` added"));
                    }
                }
            }
            if changes.is_empty() {
                CellVerdict::Ok
            } else {
                CellVerdict::Changed { changes }
            }
        }
    }
}

/// SQLSTATEs that come from contention or the harness, not from code and
/// schema disagreeing (manual appendix A: classes 08, 40, 55P03, 57).
#[must_use]
pub fn is_transient(sqlstate: &SqlState) -> bool {
    let code = sqlstate.code();
    code.starts_with("08") || code.starts_with("40") || code == "55P03" || code.starts_with("57")
}

/// The classes a broken (version, state) cell gets from the plan: how the
/// phases run that version there. Empty `live` classes mean the plan never
/// runs it; then the class the relation implies is returned with `false`.
#[must_use]
pub fn classify(
    version: &str,
    state: usize,
    home: usize,
    phases: &[Phase],
) -> Vec<(BreakageClass, bool)> {
    let runs = |rollback: bool| {
        phases.iter().any(|p| {
            p.state == state && p.rollback == rollback && p.fleet.iter().any(|v| v == version)
        })
    };
    let mut classes = Vec::new();
    if state > home {
        if runs(false) {
            classes.push((BreakageClass::OldOnNew, true));
        }
        if runs(true) {
            classes.push((BreakageClass::RollbackUnsafe, true));
        }
        if classes.is_empty() {
            classes.push((BreakageClass::RollbackUnsafe, false));
        }
    } else if state < home {
        classes.push((BreakageClass::NewOnOld, runs(false) || runs(true)));
    }
    classes
}

/// Builds the report from the probes, the phases and the executions.
/// Fails when a query does not prepare on its own schema state: the
/// workload file is wrong, not the migration.
pub fn build_compat(
    states: Vec<String>,
    home: BTreeMap<String, usize>,
    phases: &[Phase],
    probes: &[Probe],
    executions: &[Execution],
) -> Result<CompatReport, String> {
    let label = |state: usize| states.get(state).cloned().unwrap_or_default();
    let find = |version: &str, query: &str, state: usize| {
        probes
            .iter()
            .find(|p| p.version == version && p.query == query && p.state == state)
    };
    let mut cells = Vec::new();
    let mut breakages = Vec::new();
    for probe in probes {
        let Some(&own) = home.get(&probe.version) else {
            continue;
        };
        let Some(reference) = find(&probe.version, &probe.query, own) else {
            continue;
        };
        if let Prepared::Error {
            sqlstate, message, ..
        } = &reference.prepared
        {
            return Err(format!(
                "query `{}` of version `{}` does not prepare on the schema it is written for ({}): {} {}",
                probe.query,
                probe.version,
                label(own),
                sqlstate.code(),
                message
            ));
        }
        let verdict = compare(&reference.prepared, &probe.prepared);
        let (sqlstate, message) = match &verdict {
            CellVerdict::Ok => (None, None),
            CellVerdict::Error { sqlstate, message } => {
                (Some(sqlstate.clone()), Some(message.clone()))
            }
            CellVerdict::Changed { changes } => (None, Some(changes.join("; "))),
        };
        if let Some(message) = message {
            for (class, live) in classify(&probe.version, probe.state, own, phases) {
                breakages.push(Breakage {
                    class,
                    version: probe.version.clone(),
                    query: probe.query.clone(),
                    state: probe.state,
                    state_label: label(probe.state),
                    evidence: Evidence::Prepare,
                    sqlstate: sqlstate.clone(),
                    message: message.clone(),
                    live,
                    failed_executions: 0,
                });
            }
        }
        cells.push(Cell {
            version: probe.version.clone(),
            query: probe.query.clone(),
            state: probe.state,
            verdict,
        });
    }

    // Live errors, grouped by (version, query, phase, SQLSTATE).
    let mut groups: BTreeMap<(String, String, usize, SqlState), (u64, String)> = BTreeMap::new();
    for e in executions {
        if let Some(code) = &e.sqlstate {
            let entry = groups
                .entry((e.version.clone(), e.query.clone(), e.phase, code.clone()))
                .or_insert((0, e.message.clone().unwrap_or_default()));
            entry.0 += 1;
        }
    }
    let mut transient = Vec::new();
    for ((version, query, phase, sqlstate), (count, message)) in groups {
        if is_transient(&sqlstate) {
            transient.push(TransientErrors {
                version,
                query,
                phase,
                sqlstate,
                count,
                message,
            });
            continue;
        }
        let Some(p) = phases.iter().find(|p| p.index == phase) else {
            continue;
        };
        // Already explained by PREPARE on this state (or, while a migration
        // runs, on the state before or after it): count it there.
        let candidates = if p.migrating {
            vec![p.state, p.state + 1]
        } else {
            vec![p.state]
        };
        // A failure in a rollback phase counts for `rollback-unsafe`, any
        // other for the forward class.
        let matches = |b: &Breakage, state: usize| {
            b.version == version
                && b.query == query
                && b.state == state
                && b.evidence == Evidence::Prepare
                && b.sqlstate.as_ref() == Some(&sqlstate)
        };
        let same_direction =
            |b: &Breakage| (b.class == BreakageClass::RollbackUnsafe) == p.rollback;
        if let Some(b) = candidates.iter().find_map(|&state| {
            breakages
                .iter()
                .position(|b| matches(b, state) && same_direction(b))
                .or_else(|| breakages.iter().position(|b| matches(b, state)))
        }) {
            breakages[b].failed_executions += count;
            continue;
        }
        let state = if p.migrating { p.state + 1 } else { p.state };
        let succeeded = executions.iter().any(|e| {
            e.version == version
                && e.query == query
                && e.sqlstate.is_none()
                && phases
                    .iter()
                    .any(|q| q.index == e.phase && q.state == state && !q.migrating)
        });
        let own = home.get(&version).copied().unwrap_or(state);
        let classes = if succeeded || own == state {
            vec![(BreakageClass::DataDependent, true)]
        } else {
            classify(&version, state, own, phases)
        };
        for (class, live) in classes {
            if let Some(b) = breakages.iter_mut().find(|b| {
                b.class == class
                    && b.version == version
                    && b.query == query
                    && b.state == state
                    && b.sqlstate.as_ref() == Some(&sqlstate)
            }) {
                b.failed_executions += count;
                continue;
            }
            breakages.push(Breakage {
                class,
                version: version.clone(),
                query: query.clone(),
                state,
                state_label: label(state),
                evidence: Evidence::Live,
                sqlstate: Some(sqlstate.clone()),
                message: message.clone(),
                live,
                failed_executions: count,
            });
        }
    }
    breakages.sort_by(|a, b| {
        (a.class, &a.version, &a.query, a.state).cmp(&(b.class, &b.version, &b.query, b.state))
    });
    Ok(CompatReport {
        states,
        home,
        cells,
        breakages,
        transient,
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn shape(columns: &[(&str, &str)]) -> Prepared {
        Prepared::Ok {
            shapes: vec![Shape {
                params: vec!["int4".into()],
                columns: columns
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            }],
        }
    }

    pub(crate) fn error(code: &str) -> Prepared {
        Prepared::Error {
            statement: 0,
            sqlstate: SqlState::from_code(code),
            message: "column \"email\" does not exist".into(),
        }
    }

    pub(crate) fn probed(state: usize, version: &str, query: &str, prepared: Prepared) -> Probe {
        Probe {
            state,
            version: version.into(),
            query: query.into(),
            prepared,
        }
    }

    pub(crate) fn phase(index: usize, state: usize, fleet: &[&str], rollback: bool) -> Phase {
        Phase {
            index,
            name: format!("phase {index}"),
            state,
            fleet: fleet.iter().map(ToString::to_string).collect(),
            rollback,
            migrating: false,
            start_us: index as u64 * 1_000_000,
            end_us: (index as u64 + 1) * 1_000_000,
        }
    }

    pub(crate) fn exec(version: &str, query: &str, phase: usize, code: Option<&str>) -> Execution {
        Execution {
            version: version.into(),
            query: query.into(),
            phase,
            client: format!("rehearse-app-{version}-0"),
            start_us: phase as u64 * 1_000_000 + 10,
            latency_us: 500,
            sqlstate: code.map(SqlState::from_code),
            message: code.map(|c| format!("error {c}")),
        }
    }

    /// migrate-then-deploy over two states: old serves on 0, old serves
    /// during/after the migration (state 1), then new replaces it.
    pub(crate) fn migrate_then_deploy() -> Vec<Phase> {
        vec![
            phase(0, 0, &["old", "old"], false),
            phase(1, 1, &["old", "old"], false),
            phase(2, 1, &["new", "old"], false),
            phase(3, 1, &["new", "new"], false),
        ]
    }

    pub(crate) fn homes() -> BTreeMap<String, usize> {
        BTreeMap::from([("old".to_string(), 0), ("new".to_string(), 1)])
    }

    pub(crate) fn report(
        probes: &[Probe],
        phases: &[Phase],
        executions: &[Execution],
    ) -> CompatReport {
        build_compat(
            vec!["baseline".into(), "after 0002".into()],
            homes(),
            phases,
            probes,
            executions,
        )
        .unwrap()
    }

    /// Old and new `get` prepare alike on both schema states, and the plan
    /// runs old `get` once without error: no compatibility check may fire.
    pub(crate) fn every_query_works() -> CompatReport {
        let probes = [
            probed(0, "old", "get", shape(&[("id", "int4")])),
            probed(1, "old", "get", shape(&[("id", "int4")])),
            probed(0, "new", "get", shape(&[("id", "int4")])),
            probed(1, "new", "get", shape(&[("id", "int4")])),
        ];
        report(
            &probes,
            &migrate_then_deploy(),
            &[exec("old", "get", 1, None)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn shapes_compare_by_column_name_and_type() {
        let home = shape(&[("id", "int4"), ("email", "text")]);
        assert_eq!(compare(&home, &home), CellVerdict::Ok);
        let CellVerdict::Changed { changes } =
            compare(&home, &shape(&[("id", "int8"), ("mail", "text")]))
        else {
            panic!()
        };
        assert_eq!(
            changes,
            vec![
                "statement 1: result column `id` type int4 -> int8",
                "statement 1: result column `email` removed",
                "statement 1: result column `mail` added",
            ]
        );
        assert!(matches!(
            compare(&home, &error("42703")),
            CellVerdict::Error { .. }
        ));
    }

    #[test]
    fn a_dropped_column_breaks_old_code_while_it_still_serves() {
        let probes = [
            probed(0, "old", "get", shape(&[("email", "text")])),
            probed(1, "old", "get", error("42703")),
            probed(0, "new", "get", shape(&[("id", "int4")])),
            probed(1, "new", "get", shape(&[("id", "int4")])),
        ];
        let r = report(
            &probes,
            &migrate_then_deploy(),
            &[exec("old", "get", 1, Some("42703"))],
        );
        assert_eq!(r.breakages.len(), 1, "{r:#?}");
        let b = &r.breakages[0];
        assert_eq!(
            (b.class, b.live, b.failed_executions),
            (BreakageClass::OldOnNew, true, 1)
        );
        assert_eq!(b.sqlstate, Some(SqlState::UndefinedColumn));
        assert_eq!(r.cells.len(), 4);
    }

    #[test]
    fn new_code_on_the_old_schema_counts_only_when_the_plan_runs_it() {
        let probes = [
            probed(0, "new", "get", error("42703")),
            probed(1, "new", "get", shape(&[("id", "int4")])),
        ];
        let r = report(&probes, &migrate_then_deploy(), &[]);
        assert_eq!(r.breakages.len(), 1);
        assert_eq!(
            (r.breakages[0].class, r.breakages[0].live),
            (BreakageClass::NewOnOld, false)
        );
        let deploy_first = vec![
            phase(0, 0, &["old"], false),
            phase(1, 0, &["new"], false),
            phase(2, 1, &["new"], false),
        ];
        let r = report(&probes, &deploy_first, &[]);
        assert_eq!(
            (r.breakages[0].class, r.breakages[0].live),
            (BreakageClass::NewOnOld, true)
        );
    }

    #[test]
    fn rolling_back_onto_a_later_schema_is_rollback_unsafe() {
        let probes = [
            probed(0, "old", "get", shape(&[("email", "text")])),
            probed(1, "old", "get", error("42703")),
        ];
        let mut phases = vec![phase(0, 0, &["old"], false), phase(1, 1, &["new"], false)];
        let r = report(&probes, &phases, &[]);
        assert_eq!(
            (r.breakages[0].class, r.breakages[0].live),
            (BreakageClass::RollbackUnsafe, false)
        );
        phases.push(phase(2, 1, &["old"], true));
        let r = report(&probes, &phases, &[]);
        assert_eq!(
            (r.breakages[0].class, r.breakages[0].live),
            (BreakageClass::RollbackUnsafe, true)
        );
        // Served forward on that state too: both classes, and each failure
        // counts where it happened.
        phases.insert(1, phase(3, 1, &["old"], false));
        let executions = [
            exec("old", "get", 3, Some("42703")),
            exec("old", "get", 2, Some("42703")),
            exec("old", "get", 2, Some("42703")),
        ];
        let r = report(&probes, &phases, &executions);
        let counts: Vec<_> = r
            .breakages
            .iter()
            .map(|b| (b.class, b.failed_executions))
            .collect();
        assert_eq!(
            counts,
            vec![
                (BreakageClass::OldOnNew, 1),
                (BreakageClass::RollbackUnsafe, 2)
            ]
        );
    }

    #[test]
    fn live_errors_are_classified_and_transient_ones_set_apart() {
        let probes = [
            probed(0, "old", "add", shape(&[])),
            probed(1, "old", "add", shape(&[])),
            probed(0, "old", "get", shape(&[])),
            probed(1, "old", "get", shape(&[])),
        ];
        let executions = [
            // Every insert fails after the migration: a NOT NULL column.
            exec("old", "add", 1, Some("23502")),
            exec("old", "add", 1, Some("23502")),
            exec("old", "add", 0, None),
            // Some reads fail, others succeed on the same state.
            exec("old", "get", 1, Some("22P02")),
            exec("old", "get", 1, None),
            exec("old", "get", 1, Some("55P03")),
        ];
        let r = report(&probes, &migrate_then_deploy(), &executions);
        let classes: Vec<_> = r
            .breakages
            .iter()
            .map(|b| {
                (
                    b.class,
                    b.query.as_str(),
                    b.sqlstate.clone().unwrap(),
                    b.failed_executions,
                )
            })
            .collect();
        assert_eq!(
            classes,
            vec![
                (
                    BreakageClass::OldOnNew,
                    "add",
                    SqlState::NotNullViolation,
                    2
                ),
                (
                    BreakageClass::DataDependent,
                    "get",
                    SqlState::from_code("22P02"),
                    1
                ),
            ]
        );
        assert_eq!(r.transient.len(), 1);
        assert_eq!(r.transient[0].sqlstate, SqlState::LockNotAvailable);
    }

    #[test]
    fn a_query_broken_on_its_own_schema_is_an_input_error() {
        let e = build_compat(
            vec!["baseline".into()],
            BTreeMap::from([("old".to_string(), 0)]),
            &[],
            &[probed(0, "old", "get", error("42703"))],
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("query `get` of version `old`") && e.contains("42703"),
            "{e}"
        );
    }
}
