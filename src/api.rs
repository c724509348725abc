//! The `cargo test` API: load a scenario, rehearse it, assert.
//!
//! ```no_run
//! use pg_rehearse::{CheckId, Rehearsal};
//!
//! #[tokio::test]
//! async fn naive_runner_double_applies() -> Result<(), pg_rehearse::api::ApiError> {
//!     let Some(outcome) = Rehearsal::from_file("scenarios/naive-8-replicas")?
//!         .run_on_shared_server()
//!         .await
//!     else {
//!         return Ok(()); // no Postgres here: skipped loudly (a failure under CI=true)
//!     };
//!     outcome.assert_finding(CheckId::DoubleApplication);
//!     outcome.assert_no_finding(CheckId::SchemaDrift);
//!     Ok(())
//! }
//! ```
//!
//! Tests run in parallel safely: every test binary shares one server
//! ([`crate::testing::shared_server`]); each rehearsal builds (or reuses) a
//! template for its baseline and races on clones of its own, dropped after.
//! Assertion failures name the scenario, the finding, the failing
//! statement's SQL and the numbers (replicas, waits, durations).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::findings::{CheckId, Finding};
use crate::provision::Postgres;
use crate::rehearsal::PlanError;
use crate::rehearsal::{Plan, rehearse_on};
use crate::report::summary::{human_us, severity_word, verdict_word};
use crate::report::{ScenarioReport, ScenarioSummary, Verdict, redact::scrub};
use crate::scenario::{Scenario, ScenarioError};
use crate::timeline::{Actor, EventKind};

/// Why a scenario could not be turned into a rehearsal.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("{}: {source}", path.display())]
    Migrations { path: PathBuf, source: PlanError },
}

/// A scenario ready to rehearse (its migrations read, nothing run yet).
#[derive(Debug, Clone)]
pub struct Rehearsal {
    plan: Plan,
}

impl Rehearsal {
    /// Loads a scenario file, or the `scenario.toml` of a folder. Relative
    /// paths resolve against the current directory, which `cargo test` sets
    /// to the package root.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Rehearsal, ApiError> {
        Rehearsal::from_scenario(Scenario::load(path.as_ref())?)
    }

    /// A scenario built or modified in code.
    pub fn from_scenario(scenario: Scenario) -> Result<Rehearsal, ApiError> {
        let path = scenario.path.clone();
        Plan::prepare(scenario)
            .map(|plan| Rehearsal { plan })
            .map_err(|source| ApiError::Migrations { path, source })
    }

    /// Races `count` replicas instead of the scenario's number.
    #[must_use]
    pub fn with_replicas(mut self, count: u32) -> Rehearsal {
        self.plan.scenario.replicas.count = count;
        self
    }

    /// The scenario and its migrations.
    #[must_use]
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Rehearses on a server of your own (templates and clones are made on
    /// it and the clones dropped after).
    pub async fn run_on(&self, postgres: &Postgres) -> Outcome {
        let scenario = &self.plan.scenario;
        let report = ScenarioReport::new(&scenario.name, &scenario.path);
        Outcome {
            report: rehearse_on(&self.plan, postgres, report).await,
            plan: self.plan.clone(),
        }
    }

    /// Rehearses on the test binary's shared server; `None` after a loud
    /// skip when no Postgres can be started here (under `CI=true` that
    /// panics instead, so CI never passes without rehearsing).
    pub async fn run_on_shared_server(&self) -> Option<Outcome> {
        let server = crate::testing::shared_server()?;
        Some(self.run_on(&server).await)
    }
}

/// What a rehearsal found, with assertions for tests.
#[derive(Debug, Clone)]
pub struct Outcome {
    report: ScenarioReport,
    plan: Plan,
}

impl Outcome {
    /// The full report (what `rehearse run --report json=...` writes per
    /// scenario).
    #[must_use]
    pub fn report(&self) -> &ScenarioReport {
        &self.report
    }

    /// The findings of one check.
    #[must_use]
    pub fn findings(&self, check: CheckId) -> Vec<&Finding> {
        self.report
            .findings
            .iter()
            .filter(|f| f.check == check)
            .collect()
    }

    /// Panics unless the scenario met its `[expect]` section.
    #[track_caller]
    pub fn assert_passes(&self) {
        if self.report.verdict != Verdict::Pass {
            panic!(
                "expected the scenario to pass, it did not\n{}",
                self.explain()
            );
        }
    }

    /// Panics unless `check` reported something; returns its first finding
    /// for further assertions on its details.
    #[track_caller]
    pub fn assert_finding(&self, check: CheckId) -> &Finding {
        match self.findings(check).first() {
            Some(finding) => finding,
            None => panic!(
                "expected a `{check}` finding ({}), there is none\n{}",
                check.summary(),
                self.explain()
            ),
        }
    }

    /// Panics if `check` reported anything.
    #[track_caller]
    pub fn assert_no_finding(&self, check: CheckId) {
        let found = self.findings(check);
        if !found.is_empty() {
            panic!(
                "expected no `{check}` finding, got {}\n{}",
                found.len(),
                self.explain()
            );
        }
    }

    /// Everything a failing assertion prints: verdict, reasons, findings
    /// with their details, the failing statements with their SQL, and the
    /// figures of the race. Passwords scrubbed.
    #[must_use]
    pub fn explain(&self) -> String {
        let r = &self.report;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario `{}` ({}): {}",
            r.name,
            r.path,
            verdict_word(r.verdict)
        );
        if let Some(error) = &r.error {
            let _ = writeln!(out, "  could not rehearse: {error}");
        }
        for reason in &r.reasons {
            let _ = writeln!(out, "  fails because {reason}");
        }
        for finding in &r.findings {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                severity_word(finding.severity),
                finding.check,
                finding.message
            );
            if !finding.details.is_null() {
                let _ = writeln!(out, "    details: {}", finding.details);
            }
        }
        if let Some(race) = &r.race {
            for event in &race.timeline.events {
                let EventKind::Failed {
                    version,
                    line,
                    sqlstate,
                    message,
                } = &event.kind
                else {
                    continue;
                };
                let who = match event.actor {
                    Actor::Replica(n) => format!("replica {n}"),
                    Actor::Job => "migration job".into(),
                    Actor::Rerun => "re-run".into(),
                    Actor::Harness => "harness".into(),
                };
                let at = match (version, line) {
                    (Some(v), Some(l)) => format!(" at {v} line {l}"),
                    (Some(v), None) => format!(" in {v}"),
                    _ => String::new(),
                };
                let state = sqlstate
                    .as_ref()
                    .map(|s| format!(" (SQLSTATE {})", s.code()))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {who} failed{at}{state}: {message}");
                if let Some(sql) = self.statement(version.as_deref(), *line) {
                    let _ = writeln!(out, "    query: {sql}");
                }
            }
            let summary = ScenarioSummary::of(r);
            let _ = writeln!(
                out,
                "  race: {} replica(s), runner {}, most applications of one version {}, \
                 {} replica(s) failed, longest lock wait {}, slowest statement {}",
                race.replicas,
                race.runner,
                summary.most_applications,
                summary.failed_replicas,
                summary
                    .longest_lock_wait_us
                    .map_or_else(|| "-".into(), human_us),
                summary
                    .slowest_statement
                    .map_or_else(|| "-".into(), |(us, at)| format!("{} ({at})", human_us(us)))
            );
        }
        scrub(&out)
    }

    /// The SQL of the pending statement at `version`, `line`.
    fn statement(&self, version: Option<&str>, line: Option<usize>) -> Option<String> {
        let migration = self
            .plan
            .pending
            .iter()
            .chain(&self.plan.baseline)
            .find(|m| Some(m.version.as_str()) == version)?;
        let statement = migration.statements.iter().find(|s| Some(s.line) == line)?;
        Some(
            statement
                .sql
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )
    }
}
