//! The example scenarios under `scenarios/` run against a real Postgres and
//! meet their own `[expect]` section. The scenario file is read here with a
//! minimal mirror of the format (the real parser lives in `scenario/`);
//! `[replicas]` is parsed by [`RaceConfig`] itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rehearse::findings::{CheckId, check_race};
use rehearse::migrate::{Layout, MigrationSet, apply_serial};
use rehearse::provision::ConnInfo;
use rehearse::rehearsal::{RaceConfig, run_races_with_reference};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[expect(dead_code, reason = "shown by the CLI, not needed here")]
    description: String,
    migrations: Migrations,
    replicas: RaceConfig,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Migrations {
    dir: PathBuf,
    layout: Layout,
    baseline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    findings: Vec<String>,
    allow: Vec<String>,
}

fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

async fn clone_database(conn: &ConnInfo) -> ConnInfo {
    let admin = conn
        .clone()
        .with_dbname("postgres")
        .connect("rehearse-test")
        .await
        .unwrap();
    let name = format!("{}_ref", conn.dbname);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {}", conn.dbname))
            .await
        {
            Ok(()) => return conn.clone().with_dbname(name),
            // 55006: the template still has a backend that is disconnecting.
            Err(e)
                if Instant::now() < deadline && e.code().is_some_and(|c| c.code() == "55006") =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("cannot clone {}: {e}", conn.dbname),
        }
    }
}

async fn run_scenario(name: &str) {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let dir = scenario_dir(name);
    let text = std::fs::read_to_string(dir.join("scenario.toml")).unwrap();
    let scenario: Scenario = toml::from_str(&text).unwrap();
    let set = MigrationSet::load(
        &dir.join(&scenario.migrations.dir),
        scenario.migrations.layout,
    )
    .unwrap();
    let (applied, pending) = set
        .split_at(scenario.migrations.baseline.as_deref())
        .unwrap();
    apply_serial(db.conn(), &scenario.replicas.runner, &applied)
        .await
        .unwrap();
    let reference = clone_database(db.conn()).await;
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &scenario.replicas)
        .await
        .unwrap();
    let findings = check_race(&out);
    let found: Vec<&str> = findings.iter().map(|f| f.check.id()).collect();
    for id in scenario
        .expect
        .findings
        .iter()
        .chain(&scenario.expect.allow)
    {
        assert!(
            CheckId::from_id(id).is_some(),
            "{name}: unknown check id {id}"
        );
    }
    for id in &scenario.expect.findings {
        assert!(
            found.contains(&id.as_str()),
            "{} expected {id}, found {findings:#?}",
            scenario.name
        );
    }
    for id in &found {
        let ok = scenario
            .expect
            .findings
            .iter()
            .chain(&scenario.expect.allow)
            .any(|e| e == id);
        assert!(ok, "{}: unexpected {id}: {findings:#?}", scenario.name);
    }
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
