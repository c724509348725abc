//! The lock report in a full rehearsal: the sampler ran during the race,
//! the trace covered every pending statement, and the report serialises.

use std::path::Path;

use pg_rehearse::locks::LockAnalysis;
use pg_rehearse::rehearsal::{Plan, rehearse_on};
use pg_rehearse::report::ScenarioReport;
use pg_rehearse::scenario::Scenario;
use pg_rehearse::testing::shared_server;

/// Rehearses the example scenario `name` on the shared test server.
async fn rehearse_example(name: &str) -> Option<(Plan, ScenarioReport)> {
    rehearse_example_with(name, |_| {}).await
}

/// Rehearses the example scenario `name`, changed by `edit` first.
async fn rehearse_example_with(
    name: &str,
    edit: impl FnOnce(&mut Scenario),
) -> Option<(Plan, ScenarioReport)> {
    let server = shared_server()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let mut scenario = Scenario::load(&dir).unwrap();
    edit(&mut scenario);
    let plan = Plan::prepare(scenario).unwrap();
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    assert_eq!(report.error, None);
    Some((plan, report))
}

/// The sampler's analysis in a report.
fn sampled(report: &ScenarioReport) -> &LockAnalysis {
    report
        .locks
        .as_ref()
        .and_then(|l| l.sampled.as_ref())
        .expect("no samples")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rehearsal_report_carries_the_trace_and_the_samples() {
    let Some((plan, report)) = rehearse_example("smoke").await else {
        return;
    };
    let locks = report.locks.as_ref().expect("no lock report");
    let statements: usize = plan.pending.iter().map(|m| m.statements.len()).sum();
    let trace = locks.trace.as_ref().expect("no trace");
    assert_eq!(trace.statements.len(), statements);
    let sampled = locks.sampled.as_ref().expect("no samples");
    assert!(sampled.samples > 0);
    assert!(report.stages.iter().any(|s| s.stage == "locks"));
    let json = serde_json::to_string(&report).unwrap();
    let back: ScenarioReport = serde_json::from_str(&json).unwrap();
    let back = back.locks.expect("lock report lost in JSON");
    assert_eq!(back.trace.as_ref(), Some(trace));
    assert_eq!(back.lint, locks.lint);
    assert_eq!(back.sampled.map(|s| s.samples), Some(sampled.samples));
}

/// Replicas queue behind one replica's ALTER while it sleeps in the next
/// statement: the waits name the ALTER (which took the lock), found through
/// the per-statement trace, as well as the statement that was running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_name_the_statement_that_took_the_lock() {
    let Some((_, report)) = rehearse_example("startup-coupled-migrations").await else {
        return;
    };
    let sampled = sampled(&report);
    let behind_migration: Vec<_> = sampled
        .waits
        .iter()
        .filter(|w| w.relation.as_deref() == Some("public.accounts"))
        .filter(|w| w.blocked_by.iter().any(|b| b.holder.is_migration()))
        .collect();
    assert!(!behind_migration.is_empty(), "{sampled:#?}");
    for wait in behind_migration {
        let took = wait
            .lock_taken_by
            .as_ref()
            .expect("no statement took the lock");
        assert_eq!(
            (took.version.as_str(), took.index),
            ("0002", 0),
            "{wait:#?}"
        );
    }
}

/// `[locks] sample_interval_ms` reaches the sampler: the report records the
/// interval, and the sample rate fits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenario_sets_the_sampling_interval() {
    let Some((_, report)) = rehearse_example_with("smoke", |scenario| {
        scenario.locks.sample_interval_ms = 50;
    })
    .await
    else {
        return;
    };
    let sampled = sampled(&report);
    assert_eq!(sampled.interval_us, 50_000);
    assert!(sampled.samples > 0);
    // About 20/s (the first tick is immediate, so a short run shows a bit
    // more); the default 10 ms would show about 100/s.
    let rate = sampled.sample_rate_per_second;
    assert!(rate < 40.0, "{rate} samples/s at a 50 ms interval");
}
