//! The example scenarios under `scenarios/` run through the real pipeline
//! (scenario parser, template with the baseline, clones, replicas, checks,
//! verdict) against a real Postgres and meet their own `[expect]` section.
//! Examples are held to a stricter rule than user scenarios: every check
//! that reports anything must be expected or allowed, so an example's
//! expectations say exactly what it shows.

use std::path::{Path, PathBuf};

use pg_rehearse::rehearsal::{Plan, rehearse_on};
use pg_rehearse::report::{ScenarioReport, Verdict};
use pg_rehearse::scenario::{Scenario, discover};
use pg_rehearse::testing::shared_server;

/// Every example scenario; a test below checks the list is complete.
const EXAMPLES: &[&str] = &[
    "add-nullable-column",
    "cic-waiting-replicas",
    "deploy-before-migrate",
    "drop-column-old-reads",
    "ecommerce",
    "expand-contract-rename",
    "job-gate-failing-migration",
    "job-gated-migrations",
    "naive-8-replicas",
    "not-null-without-default",
    "rename-column-both-ways",
    "saas",
    "session-lock-8-replicas",
    "smoke",
    "startup-coupled-migrations",
];

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

async fn run_scenario(name: &str) {
    let Some(server) = shared_server() else {
        return;
    };
    let scenario = Scenario::load(&scenarios_dir().join(name)).unwrap();
    let plan = Plan::prepare(scenario).unwrap();
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{name}: error {:?}, reasons {:#?}, findings {:#?}",
        report.error,
        report.reasons,
        report.findings
    );
    let expect = &plan.scenario.expect;
    for finding in &report.findings {
        assert!(
            expect.findings.contains(&finding.check) || expect.allow.contains(&finding.check),
            "{name}: unexpected {}: {}",
            finding.check,
            finding.message
        );
    }
    record_fixture(name, &report);
}

/// The report is plain data: this example, whose replicas queue behind one
/// replica's ACCESS EXCLUSIVE lock, is kept (with
/// `REHEARSE_RECORD_FIXTURES=1`) as the renderers' recorded lock fixture.
fn record_fixture(name: &str, report: &ScenarioReport) {
    const RECORDED: &str = "startup-coupled-migrations";
    if name != RECORDED || std::env::var_os("REHEARSE_RECORD_FIXTURES").is_none() {
        return;
    }
    let mut report = report.clone();
    // Relative, as `rehearse run scenarios/...` prints it.
    report.path = format!("scenarios/{RECORDED}/scenario.toml");
    let sampled = report.locks.as_ref().and_then(|l| l.sampled.as_ref());
    assert!(
        sampled.is_some_and(|a| !a.holds.is_empty() && !a.waits.is_empty()),
        "{name}: the fixture must show lock holds and waits: {sampled:#?}"
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{RECORDED}.json"));
    std::fs::write(path, serde_json::to_string_pretty(&report).unwrap() + "\n").unwrap();
}

#[test]
fn every_example_scenario_is_tested() {
    let mut found: Vec<String> = discover(&scenarios_dir())
        .unwrap()
        .iter()
        .filter(|path| path.ends_with("scenario.toml"))
        .map(|path| {
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    assert_eq!(
        found, EXAMPLES,
        "add new example scenarios to EXAMPLES and give them a test"
    );
}

#[tokio::test]
async fn scenario_naive_8_replicas() {
    run_scenario("naive-8-replicas").await;
}

#[tokio::test]
async fn scenario_session_lock_8_replicas() {
    run_scenario("session-lock-8-replicas").await;
}

#[tokio::test]
async fn scenario_cic_waiting_replicas() {
    run_scenario("cic-waiting-replicas").await;
}

#[tokio::test]
async fn scenario_job_gate_failing_migration() {
    run_scenario("job-gate-failing-migration").await;
}

#[tokio::test]
async fn scenario_startup_coupled_migrations() {
    run_scenario("startup-coupled-migrations").await;
}

#[tokio::test]
async fn scenario_job_gated_migrations() {
    run_scenario("job-gated-migrations").await;
}

#[tokio::test]
async fn scenario_smoke() {
    run_scenario("smoke").await;
}

#[tokio::test]
async fn scenario_ecommerce_seeded() {
    run_scenario("ecommerce").await;
}

#[tokio::test]
async fn scenario_saas_seeded() {
    run_scenario("saas").await;
}

// Rollout scenarios (workloads, compatibility matrix, traffic).

#[tokio::test]
async fn scenario_add_nullable_column() {
    run_scenario("add-nullable-column").await;
}

#[tokio::test]
async fn scenario_deploy_before_migrate() {
    run_scenario("deploy-before-migrate").await;
}

#[tokio::test]
async fn scenario_drop_column_old_reads() {
    run_scenario("drop-column-old-reads").await;
}

#[tokio::test]
async fn scenario_expand_contract_rename() {
    run_scenario("expand-contract-rename").await;
}

#[tokio::test]
async fn scenario_not_null_without_default() {
    run_scenario("not-null-without-default").await;
}

#[tokio::test]
async fn scenario_rename_column_both_ways() {
    run_scenario("rename-column-both-ways").await;
}
