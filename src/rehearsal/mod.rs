//! The rehearsal itself: replicas, app workloads and the lock sampler running
//! against a provisioned database, all emitting events into the timeline.
//!
//! [`rehearse_scenario`] is the pipeline of one scenario: provision, then
//! every stage that exists, recording what ran.

use std::time::Instant;

use crate::provision::{Postgres, ProvisionOptions};
use crate::report::{ScenarioReport, StageReport, Verdict};
use crate::scenario::Scenario;

/// Records the stages of one scenario as they run.
struct Stages {
    done: Vec<StageReport>,
}

impl Stages {
    fn record(&mut self, stage: &str, started: Instant, summary: String) {
        self.done.push(StageReport {
            stage: stage.to_string(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            summary,
        });
    }
}

/// Rehearses one scenario on a Postgres provisioned for it, and cleans up.
pub async fn rehearse_scenario(scenario: &Scenario, options: &ProvisionOptions) -> ScenarioReport {
    let mut report = ScenarioReport {
        name: scenario.name.clone(),
        path: scenario.path.display().to_string(),
        verdict: Verdict::Error,
        backend: None,
        postgres_version: None,
        stages: Vec::new(),
        error: None,
    };
    let mut stages = Stages { done: Vec::new() };
    let options = ProvisionOptions {
        pg_major: options.pg_major.or(scenario.postgres),
        ..options.clone()
    };
    let started = Instant::now();
    let postgres = match Postgres::start(&options).await {
        Ok(postgres) => postgres,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    for note in postgres.notes() {
        eprintln!("rehearse: {note}");
    }
    stages.record("provision", started, postgres.describe());
    report.backend = Some(postgres.backend().to_string());
    report.postgres_version = Some(postgres.version().to_string());
    let result = run_stages(scenario, &postgres, &mut stages).await;
    let cleanup = postgres.shutdown().await;
    report.stages = stages.done;
    match (result, cleanup) {
        (Ok(verdict), Ok(())) => report.verdict = verdict,
        (Err(e), _) => report.error = Some(e),
        (Ok(_), Err(e)) => report.error = Some(format!("cleanup failed: {e}")),
    }
    report
}

/// The stages after provisioning. Each later issue adds its stage here.
async fn run_stages(
    _scenario: &Scenario,
    postgres: &Postgres,
    stages: &mut Stages,
) -> Result<Verdict, String> {
    let started = Instant::now();
    let client = postgres
        .conn()
        .connect("rehearse")
        .await
        .map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map_err(|e| e.to_string())?;
    stages.record("connect", started, "connected".into());
    Ok(Verdict::Pass)
}
