//! `rehearse run` as users run it: scenarios in, reports and exit codes out.

mod cli_support;

use cli_support::{local_binaries_or_skip, rehearse};

#[test]
fn run_writes_a_json_report_without_passwords() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/report.json");
    let target = format!("json={}", path.display());
    let (code, stdout, stderr) = rehearse(&[
        "run",
        "scenarios/smoke",
        "--backend",
        "local",
        "--report",
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("PASS") && stdout.contains("smoke"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["schema_version"], 1);
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["verdict"], "pass");
    assert_eq!(scenario["backend"], "local");
    let version = scenario["postgres_version"].as_str().unwrap();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    assert_eq!(scenario["stages"][0]["stage"], "provision");
    // The local backend's password is random per instance: the URL in the
    // report names the user and no password.
    assert!(text.contains("postgres://postgres@127.0.0.1:"), "{text}");
    assert!(
        !text.contains("postgres://postgres:"),
        "a password reached the report: {text}"
    );
}

#[test]
fn a_bad_scenario_exits_2_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[migrations]\ndir = \"migrations\"\nlayuot = \"sqlx\"\n",
    )
    .unwrap();
    let (code, _, stderr) = rehearse(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:1:", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `layuot`"), "{stderr}");
}

#[test]
fn an_empty_folder_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = rehearse(&["run", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no scenarios found"), "{stderr}");
}

/// Without an expectation that says otherwise, a failing migration makes
/// `run` say the rollout must halt and exit non-zero.
#[test]
fn a_failing_migration_halts_the_rollout_and_exits_1() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new("scenarios/job-gate-failing-migration");
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for entry in std::fs::read_dir(source.join("migrations")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(
        &scenario,
        "name = \"failing job\"\n[migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\n\
         baseline = \"0001\"\n[replicas]\ncount = 2\nrunner = \"job\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) =
        rehearse(&["run", scenario.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("the rollout must halt"),
        "{stdout}"
    );
}

/// A migration that fails in the middle of a rollout plan halts it: no
/// deploy step runs afterwards, `rollout-halt` is reported, exit 1.
#[test]
fn a_failing_migration_halts_a_rollout_plan() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new("scenarios/add-nullable-column");
    for sub in ["migrations", "workloads"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    for file in [
        "migrations/0001_customers.sql",
        "workloads/old.toml",
        "workloads/new.toml",
    ] {
        std::fs::copy(source.join(file), dir.path().join(file)).unwrap();
    }
    // Fails on every database: division by zero (22012).
    std::fs::write(
        dir.path().join("migrations/0002_broken.sql"),
        "SELECT 1 / 0;\n",
    )
    .unwrap();
    // Written out in full (not edited from the example, whose expectations
    // may change): everything but the migration's outcome is allowed.
    let text = "name = \"broken rollout\"\n\
        [migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
        [workloads]\nold = \"workloads/old.toml\"\nnew = \"workloads/new.toml\"\n\
        [rollout]\nplan = \"migrate-then-deploy\"\nreplicas = 2\nphase_ms = 400\n\
        [expect]\nallow = [\"traffic-stall\", \"missing-lock-timeout\", \"lock-lint\"]\n";
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, text).unwrap();
    let (code, stdout, stderr) =
        rehearse(&["run", scenario.to_str().unwrap(), "--backend", "local"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("rollout-halt") && stdout.contains("22012"),
        "{stdout}"
    );
}

/// Every execution of the app clients reaches the JSON report: version,
/// query, phase, latency and SQLSTATE (the old code's inserts failing with
/// 23502 once a NOT NULL column without default exists).
#[test]
fn the_report_records_every_execution() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let target = format!("json={}", path.display());
    let (code, stdout, stderr) = rehearse(&[
        "run",
        "scenarios/not-null-without-default",
        "--backend",
        "local",
        "--report",
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let executions = report["scenarios"][0]["executions"].as_array().unwrap();
    assert!(executions.len() > 10, "{} executions", executions.len());
    assert!(
        executions
            .iter()
            .any(|e| e["sqlstate"].is_null() && e["latency_us"].as_u64().is_some())
    );
    let failed = executions
        .iter()
        .find(|e| e["query"] == "add_customer" && e["version"] == "old" && !e["sqlstate"].is_null())
        .expect("a failing execution of the old insert");
    assert_eq!(failed["sqlstate"], "23502", "{failed}");
}
