//! Reports rendered from the timeline and findings.
//!
//! One serialisable model ([`RunReport`]), versioned, rendered by one writer
//! per format. Every writer takes an `impl io::Write`. Connection URLs appear
//! without passwords only.

pub mod bench;
pub mod forecast; // lock holds at production size
mod html;
mod json;
mod junit;
mod markdown;
pub use crate::redact;
pub mod summary;
mod target;
pub mod terminal;

pub use html::write_html;
pub use json::{JsonStream, write_json};
pub use junit::write_junit;
pub use markdown::write_markdown;
pub use summary::{ScenarioSummary, Status, check_status};
pub use target::{ReportFormat, ReportTarget, ReportTargets, parse_targets};
pub use terminal::{TerminalOptions, write_terminal};

use serde::{Deserialize, Serialize};

/// Version of the JSON report's shape; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `rehearse run` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub tool_version: String,
    pub run_id: String,
    /// RFC 3339.
    pub started_at: String,
    pub duration_ms: u64,
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub path: String,
    pub verdict: Verdict,
    /// Backend and server actually used, when provisioning got that far.
    pub backend: Option<String>,
    pub postgres_version: Option<String>,
    /// The stages that ran, in order, with their durations.
    pub stages: Vec<StageReport>,
    /// Why the scenario could not be rehearsed (verdict `error`).
    pub error: Option<String>,
    /// Why it failed its expectations (verdict `fail`), one line each.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What the checks found, worst first.
    #[serde(default)]
    pub findings: Vec<crate::findings::Finding>,
    /// The replica race: its timeline and the state it left.
    #[serde(default)]
    pub race: Option<crate::timeline::RaceRecord>,
    /// The scenario's `[expect]` section, so every renderer can tell a
    /// tolerated finding from a failing one without re-reading the file.
    #[serde(default)]
    pub expect: crate::scenario::Expectations,
    /// The compatibility matrix of a rollout.
    #[serde(default)]
    pub compat: Option<crate::compat::CompatReport>,
    /// What the rollout did to the app workloads' traffic.
    #[serde(default)]
    pub traffic: Option<crate::workload::TrafficReport>,
    /// Every query execution of the rollout's app clients (version, query,
    /// phase, start, latency, SQLSTATE); successes are sampled past 200k.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<crate::workload::Execution>,
    /// Locks: per-statement trace, lint, and what the sampler saw.
    #[serde(default)]
    pub locks: Option<crate::locks::LockReport>,
}

impl ScenarioReport {
    /// An empty report for a scenario about to run (verdict `error` until
    /// something decides otherwise).
    #[must_use]
    pub fn new(name: &str, path: &std::path::Path) -> Self {
        ScenarioReport {
            name: name.to_string(),
            path: path.display().to_string(),
            verdict: Verdict::Error,
            backend: None,
            postgres_version: None,
            stages: Vec::new(),
            error: None,
            reasons: Vec::new(),
            findings: Vec::new(),
            race: None,
            expect: crate::scenario::Expectations::default(),
            compat: None,
            traffic: None,
            executions: Vec::new(),
            locks: None,
        }
    }

    /// Records the checks' findings and the verdict judged from them.
    pub fn conclude(
        &mut self,
        findings: Vec<crate::findings::Finding>,
        judgement: crate::findings::Judgement,
    ) {
        self.verdict = if judgement.pass {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        self.reasons = judgement.reasons;
        self.findings = findings;
    }
}

/// One line for the log as a scenario finishes: `PASS name (N findings)`.
#[must_use]
pub fn summary_line(report: &ScenarioReport) -> String {
    format!(
        "{} {} ({} finding(s))",
        summary::verdict_word(report.verdict),
        terminal::printable(&report.name),
        report.findings.len()
    )
}

/// A pipeline stage that ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub duration_ms: u64,
    /// One line on what the stage did (e.g. "3 migrations applied").
    pub summary: String,
}

/// A scenario's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Ran, and met its expectations.
    Pass,
    /// Ran, and its findings fail its expectations.
    Fail,
    /// Could not be rehearsed (infrastructure or input problem).
    Error,
}

impl RunReport {
    /// The exit code this report calls for: errors beat failures beat passes.
    #[must_use]
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        let worst = |v: Verdict| self.scenarios.iter().any(|s| s.verdict == v);
        if worst(Verdict::Error) {
            Exit::Infrastructure
        } else if worst(Verdict::Fail) {
            Exit::FindingsFail
        } else {
            Exit::Pass
        }
    }
}
