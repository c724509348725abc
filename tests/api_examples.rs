//! The cargo test API as users write it: load a scenario, rehearse it on
//! the test binary's shared server, assert. These are examples and the
//! project's own tests at once (see docs/testing-guide.md).

use pg_rehearse::report::{ReportFormat, RunReport, SCHEMA_VERSION};
use pg_rehearse::{CheckId, Rehearsal};

type Result = std::result::Result<(), pg_rehearse::api::ApiError>;

#[tokio::test]
async fn naive_runner_applies_the_data_migration_in_every_replica() -> Result {
    let Some(outcome) = Rehearsal::from_file("scenarios/naive-8-replicas")?
        .run_on_shared_server()
        .await
    else {
        return Ok(()); // skipped loudly; a failure under CI=true
    };
    // The scenario exists to show this race: its [expect] names both.
    outcome.assert_passes();
    let finding = outcome.assert_finding(CheckId::DoubleApplication);
    assert_eq!(finding.details["version"], "0002");
    outcome.assert_finding(CheckId::DuplicateData);
    outcome.assert_no_finding(CheckId::SchemaDrift);
    Ok(())
}

#[tokio::test]
async fn smoke_scenario_passes_and_its_json_matches_the_schema() -> Result {
    let Some(outcome) = Rehearsal::from_file("scenarios/smoke")?
        .run_on_shared_server()
        .await
    else {
        return Ok(());
    };
    outcome.assert_passes();
    outcome.assert_no_finding(CheckId::DoubleApplication);

    // A real run's report, validated against the published schema.
    let run = RunReport {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        run_id: "api-example".into(),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        duration_ms: 0,
        scenarios: vec![outcome.report().clone()],
    };
    let mut json = Vec::new();
    ReportFormat::Json.write(&run, &mut json).unwrap();
    let instance: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/report.schema.json").unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Ok(())
}

#[tokio::test]
async fn failed_assertions_name_the_finding_and_the_numbers() -> Result {
    let Some(outcome) = Rehearsal::from_file("scenarios/naive-8-replicas")?
        .with_replicas(4)
        .run_on_shared_server()
        .await
    else {
        return Ok(());
    };
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        outcome.assert_no_finding(CheckId::DoubleApplication);
    }))
    .expect_err("the naive runner double-applies");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    for needle in [
        "expected no `double-application` finding",
        "naive runner, 8 replicas",
        "migration 0002 was applied",
        "race: 4 replica(s), runner naive",
        "slowest statement",
    ] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from:\n{message}"
        );
    }
    Ok(())
}
