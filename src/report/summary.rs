//! Figures every renderer shows, computed once from a [`ScenarioReport`].
//!
//! Pure functions of the report: the terminal table, the Markdown comment,
//! JUnit and HTML all read the same numbers, so they never disagree.

use std::collections::BTreeMap;

use super::{ScenarioReport, Verdict};
use crate::findings::{CheckId, Finding, Severity};
use crate::timeline::{Actor, EventKind, ExitStatus, Timeline};

/// How one check came out for one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing found.
    Clean,
    /// Found, but expected or allowed by the scenario (or only warnings).
    Tolerated,
    /// Fails the scenario: an unexpected error, or an expected finding that
    /// did not happen.
    Failed,
    /// The scenario did not get as far as the checks.
    NotRun,
}

/// The status of `check` in `report`, with the reason when it failed.
#[must_use]
pub fn check_status(report: &ScenarioReport, check: CheckId) -> (Status, Option<String>) {
    // A scenario in error stopped before (or during) its checks; the
    // others ran them all (a race, a rollout, or both).
    if report.verdict == Verdict::Error && report.findings.is_empty() {
        return (Status::NotRun, None);
    }
    let found: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.check == check)
        .collect();
    let expected = report.expect.findings.contains(&check);
    let tolerated = expected || report.expect.allow.contains(&check);
    if expected && found.is_empty() {
        return (
            Status::Failed,
            Some(format!("expected `{check}` to be found, it was not")),
        );
    }
    if let Some(failing) = found
        .iter()
        .find(|f| f.severity == Severity::Error && !tolerated)
    {
        return (Status::Failed, Some(failing.message.clone()));
    }
    if found.is_empty() {
        (Status::Clean, None)
    } else {
        (Status::Tolerated, None)
    }
}

/// A statement as it ran in one replica: from its begin to its end event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSpan {
    pub actor: Actor,
    pub version: String,
    pub index: usize,
    pub line: usize,
    pub start_us: u64,
    /// `None` when the statement never finished (failed, killed, timed out).
    pub end_us: Option<u64>,
}

/// A wait for the migration lock: from asking to getting it (or giving up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitSpan {
    pub actor: Actor,
    pub start_us: u64,
    pub end_us: Option<u64>,
}

/// Statements per actor, paired begin to end.
#[must_use]
pub fn statement_spans(timeline: &Timeline) -> Vec<StatementSpan> {
    let mut spans: Vec<StatementSpan> = Vec::new();
    for event in &timeline.events {
        match &event.kind {
            EventKind::StatementBegin {
                version,
                index,
                line,
            } => spans.push(StatementSpan {
                actor: event.actor,
                version: version.clone(),
                index: *index,
                line: *line,
                start_us: event.at_us,
                end_us: None,
            }),
            EventKind::StatementEnd { version, index, .. } => {
                if let Some(open) = spans.iter_mut().rev().find(|s| {
                    s.actor == event.actor
                        && s.end_us.is_none()
                        && &s.version == version
                        && s.index == *index
                }) {
                    open.end_us = Some(event.at_us);
                }
            }
            _ => {}
        }
    }
    spans
}

/// Advisory-lock waits per actor.
#[must_use]
pub fn wait_spans(timeline: &Timeline) -> Vec<WaitSpan> {
    let mut spans: Vec<WaitSpan> = Vec::new();
    for event in &timeline.events {
        match &event.kind {
            EventKind::WaitingOnLock { .. } => spans.push(WaitSpan {
                actor: event.actor,
                start_us: event.at_us,
                end_us: None,
            }),
            EventKind::LockAcquired { .. }
            | EventKind::Failed { .. }
            | EventKind::Exited { .. } => {
                if let Some(open) = spans
                    .iter_mut()
                    .rev()
                    .find(|s| s.actor == event.actor && s.end_us.is_none())
                {
                    open.end_us = Some(event.at_us);
                }
            }
            _ => {}
        }
    }
    spans
}

/// The figures of one scenario's row in every summary table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioSummary {
    pub name: String,
    pub verdict: Verdict,
    pub runner: Option<String>,
    pub replicas: Option<u32>,
    /// The most replicas that applied one version (more than 1 is a race).
    pub most_applications: u32,
    /// Replicas that did not exit successfully.
    pub failed_replicas: u32,
    /// The longest hold of a table lock that blocks writes (or reads), as
    /// the sampler saw it: duration and `MODE on relation`.
    pub worst_lock: Option<(u64, String)>,
    /// The longest wait for the migration lock.
    pub longest_lock_wait_us: Option<u64>,
    /// The slowest migration statement, and where it is.
    pub slowest_statement: Option<(u64, String)>,
    /// The longest app query stall during the rollout, and which query.
    pub worst_stall: Option<(u64, String)>,
    /// Checks that fail the scenario.
    pub failing_checks: Vec<CheckId>,
    /// Race checks that found something (a version applied more than once,
    /// rows inserted more than once, data or schema that differs from a
    /// serial run), whether or not the scenario expected them.
    pub race_checks: Vec<CheckId>,
    /// What the findings are, counted by how they weigh on the verdict.
    pub counts: FindingCounts,
    /// The worst thing about the scenario, in words: why it could not run,
    /// its first reason to fail, or its worst finding.
    pub worst_issue: String,
    pub errors: usize,
    pub warnings: usize,
    /// Sum of the stages' durations.
    pub duration_ms: u64,
}

impl ScenarioSummary {
    /// Computes the summary of one scenario.
    #[must_use]
    pub fn of(report: &ScenarioReport) -> Self {
        let count = |severity: Severity| {
            report
                .findings
                .iter()
                .filter(|f| f.severity == severity)
                .count()
        };
        let failing_checks = CheckId::ALL
            .into_iter()
            .filter(|c| check_status(report, *c).0 == Status::Failed)
            .collect();
        let mut summary = ScenarioSummary {
            name: report.name.clone(),
            verdict: report.verdict,
            runner: None,
            replicas: None,
            most_applications: 0,
            failed_replicas: 0,
            worst_lock: worst_lock(report),
            longest_lock_wait_us: None,
            slowest_statement: None,
            worst_stall: report.traffic.as_ref().and_then(|t| {
                t.stalls
                    .iter()
                    .max_by_key(|s| s.latency_us)
                    .map(|s| (s.latency_us, format!("{} {}", s.version, s.query)))
            }),
            failing_checks,
            race_checks: RACE_CHECKS
                .into_iter()
                .filter(|c| report.findings.iter().any(|f| f.check == *c))
                .collect(),
            counts: FindingCounts::of(report),
            worst_issue: worst_issue(report),
            errors: count(Severity::Error),
            warnings: count(Severity::Warning),
            duration_ms: report.stages.iter().map(|s| s.duration_ms).sum(),
        };
        // A rollout's migration waits on table locks, not on a migration
        // lock: its longest wait as the sampler saw it.
        summary.longest_lock_wait_us = report
            .locks
            .as_ref()
            .and_then(|l| l.sampled.as_ref())
            .filter(|_| report.race.is_none())
            .and_then(|s| {
                s.waits
                    .iter()
                    .filter(|w| w.holder.is_migration())
                    .map(|w| w.wait_us)
                    .max()
            });
        let Some(race) = &report.race else {
            return summary;
        };
        let timeline = &race.timeline;
        summary.runner = Some(race.runner.clone());
        summary.replicas = Some(race.replicas);
        let mut applied: BTreeMap<&str, u32> = BTreeMap::new();
        for event in &timeline.events {
            match &event.kind {
                EventKind::Applied { version, .. } => *applied.entry(version).or_default() += 1,
                EventKind::LockAcquired { waited_us, .. } => {
                    summary.longest_lock_wait_us =
                        summary.longest_lock_wait_us.max(Some(*waited_us));
                }
                _ => {}
            }
        }
        summary.most_applications = applied.values().copied().max().unwrap_or(0);
        summary.failed_replicas = u32::try_from(
            timeline
                .actors()
                .into_iter()
                .filter(|a| matches!(a, Actor::Replica(_) | Actor::Job))
                .filter(|a| {
                    timeline
                        .exit_of(*a)
                        .is_some_and(|s| s != ExitStatus::Success)
                })
                .count(),
        )
        .unwrap_or(u32::MAX);
        summary.slowest_statement = statement_spans(timeline)
            .into_iter()
            .filter_map(|s| {
                s.end_us.map(|end| {
                    (
                        end.saturating_sub(s.start_us),
                        format!("{} line {}", s.version, s.line),
                    )
                })
            })
            .max_by_key(|(us, _)| *us);
        summary
    }
}

/// The checks whose findings mean the replicas raced: the same migration
/// applied twice, or a final state that differs from a serial run.
pub const RACE_CHECKS: [CheckId; 4] = [
    CheckId::DoubleApplication,
    CheckId::DuplicateData,
    CheckId::DataDrift,
    CheckId::SchemaDrift,
];

/// A scenario's findings and reasons, counted by how they weigh on the
/// verdict, so that no count reads 0 next to findings it does not count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingCounts {
    /// Reasons the scenario fails: unexpected error findings, expected
    /// findings that did not happen, thresholds exceeded.
    pub failing: usize,
    /// Findings of checks listed in `[expect] findings`.
    pub expected: usize,
    /// Findings of checks listed in `[expect] allow`.
    pub allowed: usize,
    /// Other warnings (never fail a scenario).
    pub warnings: usize,
    /// Other informational notes.
    pub notes: usize,
}

impl FindingCounts {
    /// Counts `report`'s findings and reasons.
    #[must_use]
    pub fn of(report: &ScenarioReport) -> Self {
        let mut counts = FindingCounts {
            failing: report.reasons.len(),
            ..FindingCounts::default()
        };
        for finding in &report.findings {
            match tolerance(report, finding) {
                Tolerance::Expected => counts.expected += 1,
                Tolerance::Allowed => counts.allowed += 1,
                Tolerance::None => match finding.severity {
                    // Counted through its reason to fail.
                    Severity::Error => {}
                    Severity::Warning => counts.warnings += 1,
                    Severity::Info => counts.notes += 1,
                },
            }
        }
        counts
    }

    /// `2 failing, 1 expected`, or `none`.
    #[must_use]
    pub fn words(&self) -> String {
        let parts: Vec<String> = [
            (self.failing, "failing", "failing"),
            (self.expected, "expected", "expected"),
            (self.allowed, "allowed", "allowed"),
            (self.warnings, "warning", "warnings"),
            (self.notes, "note", "notes"),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Whether the scenario tolerates a finding, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tolerance {
    /// Its check is in `[expect] findings`.
    Expected,
    /// Its check is in `[expect] allow`.
    Allowed,
    /// Neither: an error fails the scenario.
    None,
}

/// How `report`'s expectations treat `finding`.
#[must_use]
pub fn tolerance(report: &ScenarioReport, finding: &Finding) -> Tolerance {
    if report.expect.findings.contains(&finding.check) {
        Tolerance::Expected
    } else if report.expect.allow.contains(&finding.check) {
        Tolerance::Allowed
    } else {
        Tolerance::None
    }
}

/// Whether `finding` fails `report`: an error its expectations do not
/// tolerate.
#[must_use]
pub fn fails(report: &ScenarioReport, finding: &Finding) -> bool {
    finding.severity == Severity::Error && tolerance(report, finding) == Tolerance::None
}

/// `report`'s findings worst first: failing ones, then by severity; the
/// checks' own order within.
#[must_use]
pub fn findings_worst_first(report: &ScenarioReport) -> Vec<&Finding> {
    let mut sorted: Vec<&Finding> = report.findings.iter().collect();
    sorted.sort_by_key(|f| (!fails(report, f), std::cmp::Reverse(f.severity)));
    sorted
}

/// The reasons to fail that no finding states (an expected finding that
/// did not happen, a threshold exceeded): the findings say the others.
#[must_use]
pub fn reasons_without_finding(report: &ScenarioReport) -> Vec<&str> {
    report
        .reasons
        .iter()
        .filter(|reason| {
            !report
                .findings
                .iter()
                .any(|f| **reason == format!("{}: {}", f.check, f.message))
        })
        .map(String::as_str)
        .collect()
}

/// The worst thing about a scenario, in words.
fn worst_issue(report: &ScenarioReport) -> String {
    if let Some(error) = &report.error {
        return format!("could not run: {error}");
    }
    if let Some(reason) = report.reasons.first() {
        return reason.clone();
    }
    match findings_worst_first(report).first() {
        Some(f) => {
            let how = match tolerance(report, f) {
                Tolerance::Expected => " (expected)",
                Tolerance::Allowed => " (allowed)",
                Tolerance::None => "",
            };
            format!("{}{how}: {}", f.check, f.message)
        }
        None if report.verdict == Verdict::Error => "could not run".into(),
        None => "no findings".into(),
    }
}

/// The longest sampled hold of a mode that blocks writes (every mode that
/// blocks reads does too).
fn worst_lock(report: &ScenarioReport) -> Option<(u64, String)> {
    let sampled = report.locks.as_ref()?.sampled.as_ref()?;
    sampled
        .relations
        .iter()
        // Catalog relations are locked by every query's planning; holds on
        // them are not what a reader looks for.
        .filter(|r| r.mode.blocks_writes() && r.max_hold_us > 0 && !is_catalog(&r.relation))
        .max_by_key(|r| (r.max_hold_us, r.mode.blocks_reads()))
        .map(|r| (r.max_hold_us, format!("{} on {}", r.mode, r.relation)))
}

/// Whether `relation` (schema-qualified) is a system catalog.
#[must_use]
pub fn is_catalog(relation: &str) -> bool {
    relation.starts_with("pg_catalog.") || relation.starts_with("information_schema.")
}

/// Scenarios worst first: errors, then failures, then passes; by name within.
#[must_use]
pub fn worst_first(reports: &[ScenarioReport]) -> Vec<&ScenarioReport> {
    let rank = |v: Verdict| match v {
        Verdict::Error => 0,
        Verdict::Fail => 1,
        Verdict::Pass => 2,
    };
    let mut sorted: Vec<&ScenarioReport> = reports.iter().collect();
    sorted.sort_by(|a, b| {
        rank(a.verdict)
            .cmp(&rank(b.verdict))
            .then_with(|| a.name.cmp(&b.name))
    });
    sorted
}

/// Microseconds as a short human duration (`850µs`, `12.3ms`, `4.20s`).
#[must_use]
pub fn human_us(us: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let us_f = us as f64;
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us_f / 1_000.0)
    } else {
        format!("{:.2}s", us_f / 1_000_000.0)
    }
}

/// The verdict in capitals, as the terminal and Markdown show it.
#[must_use]
pub fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    }
}

/// The severity as reports spell it.
#[must_use]
pub fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// Headers of the wide summary table (HTML), one row per scenario.
pub const TABLE_HEADER: [&str; 9] = [
    "Verdict",
    "Scenario",
    "Replicas",
    "Races",
    "Worst lock",
    "Longest lock wait",
    "Slowest statement",
    "Worst stall",
    "Findings",
];

/// The cells of one row of the wide summary table, unescaped: races say
/// which race checks found something, findings say what they count.
#[must_use]
pub fn table_row(report: &ScenarioReport, summary: &ScenarioSummary) -> [String; 9] {
    let dash = || "-".to_string();
    let races = if summary.replicas.is_none() {
        dash()
    } else {
        let mut found: Vec<String> = Vec::new();
        if summary.most_applications > 1 {
            found.push(format!("applied {}x", summary.most_applications));
        }
        found.extend(
            summary
                .race_checks
                .iter()
                .filter(|c| !(summary.most_applications > 1 && **c == CheckId::DoubleApplication))
                .map(ToString::to_string),
        );
        if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        }
    };
    [
        verdict_word(summary.verdict).to_string(),
        summary.name.clone(),
        match (&summary.runner, summary.replicas) {
            (Some(runner), Some(n)) => format!("{n} {runner}"),
            _ => dash(),
        },
        races,
        summary
            .worst_lock
            .as_ref()
            .map_or_else(dash, |(us, lock)| format!("{} {lock}", human_us(*us))),
        summary.longest_lock_wait_us.map_or_else(dash, human_us),
        summary
            .slowest_statement
            .as_ref()
            .map_or_else(dash, |(us, at)| format!("{} ({at})", human_us(*us))),
        summary
            .worst_stall
            .as_ref()
            .map_or_else(dash, |(us, query)| format!("{} ({query})", human_us(*us))),
        if report.verdict == Verdict::Error && report.findings.is_empty() {
            "not run".into()
        } else {
            summary.counts.words()
        },
    ]
}
