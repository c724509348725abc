//! Verdicts of replica races against a real Postgres: the race is run, then
//! the checks judge the recorded outcome.

use std::time::{Duration, Instant};

use pg_rehearse::findings::{CheckId, Finding, check_race};
use pg_rehearse::migrate::{Layout, Migration, MigrationSet, RunnerKind, apply_serial};
use pg_rehearse::provision::ConnInfo;
use pg_rehearse::rehearsal::{FaultConfig, RaceConfig, run_races_with_reference};
use pg_rehearse::testing::TestDatabase;
use pg_rehearse::timeline::SqlState;

fn load(files: &[(&str, &str)]) -> MigrationSet {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    MigrationSet::load(dir.path(), Layout::Sqlx).unwrap()
}

/// `CREATE DATABASE ... TEMPLATE` of the test database, retried until the
/// template's last backend has gone (a dropped client disconnects
/// asynchronously).
async fn clone_of(db: &TestDatabase) -> ConnInfo {
    let admin_info = db.conn().clone().with_dbname("postgres");
    let admin = admin_info.connect("rehearse-test").await.unwrap();
    let name = format!("{}_ref", db.conn().dbname);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sql = format!("CREATE DATABASE {name} TEMPLATE {}", db.conn().dbname);
        match admin.batch_execute(&sql).await {
            Ok(()) => return db.conn().clone().with_dbname(name),
            Err(e)
                if Instant::now() < deadline && e.code().is_some_and(|c| c.code() == "55006") =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("cannot clone: {e}"),
        }
    }
}

async fn prepared(
    db: &TestDatabase,
    set: &MigrationSet,
    baseline: &str,
    runner: RunnerKind,
) -> (Vec<Migration>, ConnInfo) {
    let (applied, pending) = set.split_at(Some(baseline)).unwrap();
    apply_serial(db.conn(), &runner, &applied).await.unwrap();
    let reference = clone_of(db).await;
    (pending, reference)
}

fn ids(findings: &[Finding]) -> Vec<CheckId> {
    let mut ids: Vec<CheckId> = findings.iter().map(|f| f.check).collect();
    ids.dedup();
    ids
}

const PLANS: (&str, &str) = (
    "0001_plans.sql",
    "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);",
);
const SEED: (&str, &str) = (
    "0002_seed.sql",
    "SELECT pg_sleep(0.3);\nINSERT INTO plans (name) VALUES ('free');",
);

#[tokio::test]
async fn naive_race_is_judged_double_applied_with_duplicate_rows() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[PLANS, SEED]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::Naive).await;
    let config = RaceConfig {
        count: 8,
        runner: RunnerKind::Naive,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    // The record is plain data: it survives JSON, and can be kept as a
    // fixture for the checks' database-free tests.
    let json = serde_json::to_string_pretty(&out).unwrap();
    let back: pg_rehearse::timeline::RaceRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);
    if std::env::var_os("REHEARSE_RECORD_FIXTURES").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/naive-8-replicas.json"
        );
        std::fs::write(path, json + "\n").unwrap();
    }
    let findings = check_race(&out);
    let ids = ids(&findings);
    assert!(ids.contains(&CheckId::DoubleApplication), "{findings:#?}");
    assert!(ids.contains(&CheckId::DuplicateData), "{findings:#?}");
    assert!(!ids.contains(&CheckId::SchemaDrift), "{findings:#?}");
}

#[tokio::test]
async fn session_lock_race_is_clean() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[PLANS, SEED]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::SessionAdvisoryLock).await;
    let config = RaceConfig {
        count: 8,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    let findings = check_race(&out);
    assert_eq!(ids(&findings), [CheckId::ReplicaWaits], "{findings:#?}");
}

#[tokio::test]
async fn concurrent_index_behind_a_session_lock_deadlocks_or_hangs_and_is_detected() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int, email text);"),
        (
            "0002_idx.sql",
            "-- no-transaction\nSELECT pg_sleep(0.3);\nCREATE INDEX CONCURRENTLY users_email ON users (email);",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::SessionAdvisoryLock).await;
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 5,
        ..Default::default()
    };
    let started = Instant::now();
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let findings = check_race(&out);
    let deadlock = findings.iter().any(|f| {
        f.check == CheckId::ReplicaErrors
            && f.details["sqlstate"] == SqlState::DeadlockDetected.code()
    });
    let hung = findings.iter().any(|f| f.check == CheckId::ReplicaTimeout);
    assert!(deadlock || hung, "{findings:#?}\n{:#?}", out.timeline);
}

#[tokio::test]
async fn killed_concurrent_index_leaves_an_invalid_index_and_dirty_bookkeeping() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int, email text);"),
        (
            "0002_idx.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::SessionAdvisoryLock).await;
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 20,
        fault: Some(FaultConfig {
            replica: 0,
            statement: Some(0),
            rerun: true,
        }),
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    assert_eq!(
        out.invalid_indexes,
        ["public.users_email"],
        "{:#?}",
        out.timeline
    );
    let fault = out.fault.as_ref().unwrap();
    assert!(fault.fault.mid_statement);
    let findings = check_race(&out);
    let ids = ids(&findings);
    for id in [
        CheckId::InvalidIndex,
        CheckId::Bookkeeping,
        CheckId::FaultRecovery,
    ] {
        assert!(ids.contains(&id), "{id} missing: {findings:#?}");
    }
    let recovery = findings
        .iter()
        .find(|f| f.check == CheckId::FaultRecovery)
        .unwrap();
    assert!(
        recovery.message.contains("invalid-index"),
        "{}",
        recovery.message
    );
    assert!(
        recovery.message.contains("a re-run fails"),
        "golang-migrate refuses a dirty database: {}",
        recovery.message
    );
}

#[tokio::test]
async fn killed_transactional_migration_rolls_back_and_a_rerun_converges() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int, email text);"),
        (
            "0002_cols.sql",
            "ALTER TABLE users ADD COLUMN name text;\nALTER TABLE users ADD COLUMN age int;",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::Naive).await;
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::Naive,
        timeout_s: 20,
        fault: Some(FaultConfig {
            replica: 0,
            statement: Some(1),
            rerun: true,
        }),
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    let findings = check_race(&out);
    let recovery = findings
        .iter()
        .find(|f| f.check == CheckId::FaultRecovery)
        .expect("fault finding");
    assert!(
        recovery
            .message
            .contains("state left: before; a re-run converges"),
        "{}",
        recovery.message
    );
    assert!(
        !ids(&findings).contains(&CheckId::RolloutHalt),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn failing_migration_behind_the_job_gate_halts_the_rollout() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int);"),
        (
            "0002_broken.sql",
            "ALTER TABLE users ALTER COLUMN nope SET NOT NULL;",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::Job).await;
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::Job,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    let findings = check_race(&out);
    let halt = findings
        .iter()
        .find(|f| f.check == CheckId::RolloutHalt)
        .expect("halt finding");
    assert!(
        halt.message.starts_with("the rollout must halt"),
        "{}",
        halt.message
    );
    assert!(halt.message.contains("[42703]"), "{}", halt.message);
}

#[tokio::test]
async fn timestamps_do_not_make_data_drift_but_changed_values_do() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        (
            "0001_t.sql",
            "CREATE TABLE t (id int, label text, at timestamptz);",
        ),
        (
            "0002_fill.sql",
            "INSERT INTO t VALUES (1, 'a', clock_timestamp());",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::SessionAdvisoryLock).await;
    let config = RaceConfig {
        count: 2,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    let findings = check_race(&out);
    assert!(
        !ids(&findings).contains(&CheckId::DataDrift),
        "{findings:#?}"
    );
    // The same check sees a real difference in the reference.
    let client = reference.connect("rehearse-test").await.unwrap();
    client
        .batch_execute("UPDATE t SET label = 'b'")
        .await
        .unwrap();
    let data = pg_rehearse::migrate::snapshot::table_data(&client, &out.data_tables).await;
    let mut changed = out.clone();
    changed.reference.as_mut().unwrap().data = data;
    assert!(ids(&check_race(&changed)).contains(&CheckId::DataDrift));
}

#[tokio::test]
async fn fault_at_a_random_statement_is_recorded_and_classified() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let set = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int);"),
        (
            "0002_a.sql",
            "ALTER TABLE users ADD COLUMN a int;\nALTER TABLE users ADD COLUMN b int;",
        ),
        (
            "0003_c.sql",
            "-- no-transaction\nALTER TABLE users ADD COLUMN c int;\nALTER TABLE users ADD COLUMN d int;",
        ),
    ]);
    let (pending, reference) = prepared(&db, &set, "0001", RunnerKind::XactAdvisoryLock).await;
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::XactAdvisoryLock,
        timeout_s: 20,
        fault: Some(FaultConfig {
            replica: 0,
            statement: None,
            rerun: true,
        }),
        ..Default::default()
    };
    let out = run_races_with_reference(db.conn(), Some(&reference), &pending, &config)
        .await
        .unwrap();
    let fault = &out.fault.as_ref().expect("the fault struck").fault;
    assert!(["0002", "0003"].contains(&fault.version.as_str()));
    assert!(fault.index < 2);
    let classes = pg_rehearse::findings::classify_fault(&out);
    let expected = if fault.transactional || fault.index == 0 && fault.mid_statement {
        pg_rehearse::findings::FaultClass::Before
    } else {
        pg_rehearse::findings::FaultClass::Partial
    };
    assert_eq!(classes.first(), Some(&expected), "{fault:?}");
    let findings = check_race(&out);
    assert!(
        ids(&findings).contains(&CheckId::FaultRecovery),
        "{findings:#?}"
    );
}
