//! Replica races against a real Postgres: each runner strategy's behaviour
//! under concurrency, as recorded in the timeline.

use std::time::Duration;

use pg_rehearse::migrate::{Layout, Migration, MigrationSet, RunnerKind, apply_serial};
use pg_rehearse::rehearsal::{RaceConfig, run_races};
use pg_rehearse::timeline::{Actor, EventKind, ExitStatus, SqlState, Timeline};

fn migrations(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let set = MigrationSet::load(dir.path(), Layout::Sqlx).unwrap();
    (dir, set)
}

fn count(t: &Timeline, f: impl Fn(&EventKind) -> bool) -> usize {
    t.events.iter().filter(|e| f(&e.kind)).count()
}

fn sqlstates(t: &Timeline) -> Vec<SqlState> {
    t.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Failed { sqlstate, .. } => sqlstate.clone(),
            _ => None,
        })
        .collect()
}

/// A baseline table plus a slow data migration: every replica reads the
/// bookkeeping before the first one commits.
const BASELINE: (&str, &str) = (
    "0001_plans.sql",
    "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL);",
);
const SLOW_DATA: (&str, &str) = (
    "0002_seed_plans.sql",
    "SELECT pg_sleep(0.3);\nINSERT INTO plans (name) VALUES ('free');",
);

async fn baseline_and_pending(
    db: &pg_rehearse::testing::TestDatabase,
    runner: RunnerKind,
) -> Vec<Migration> {
    let (_dir, set) = migrations(&[BASELINE, SLOW_DATA]);
    let (applied, pending) = set.split_at(Some("0001")).unwrap();
    apply_serial(db.conn(), &runner, &applied).await.unwrap();
    pending
}

#[tokio::test]
async fn naive_runner_applies_a_data_migration_more_than_once() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let pending = baseline_and_pending(&db, RunnerKind::Naive).await;
    let config = RaceConfig {
        count: 8,
        runner: RunnerKind::Naive,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &pending, &config).await.unwrap();
    let applied = count(
        &out.timeline,
        |k| matches!(k, EventKind::Applied { version, .. } if version == "0002"),
    );
    assert!(
        applied > 1,
        "expected a double application, got {applied}: {:#?}",
        out.timeline
    );
    let plans = out.data.iter().find(|d| d.table == "public.plans").unwrap();
    assert_eq!(plans.rows as usize, applied);
    assert!(
        out.bookkeeping
            .applied
            .iter()
            .filter(|v| *v == "0002")
            .count()
            > 1
    );
    assert!(out.leaked_locks.is_empty());
}

#[tokio::test]
async fn session_lock_applies_once_and_others_skip() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let pending = baseline_and_pending(&db, RunnerKind::SessionAdvisoryLock).await;
    let config = RaceConfig {
        count: 8,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &pending, &config).await.unwrap();
    let t = &out.timeline;
    assert_eq!(
        count(t, |k| matches!(k, EventKind::Applied { .. })),
        1,
        "{t:#?}"
    );
    assert_eq!(count(t, |k| matches!(k, EventKind::Skipped { .. })), 7);
    assert_eq!(
        count(t, |k| matches!(
            k,
            EventKind::Exited {
                status: ExitStatus::Success,
                ..
            }
        )),
        8
    );
    // The applier holds the lock through the 0.3 s migration: replicas
    // that arrived meanwhile waited at least a good part of it.
    let waited = count(
        t,
        |k| matches!(k, EventKind::LockAcquired { waited_us, .. } if *waited_us >= 100_000),
    );
    assert!(waited >= 1, "{t:#?}");
    assert!(out.leaked_locks.is_empty(), "{:?}", out.leaked_locks);
    assert_eq!(out.bookkeeping.applied, ["2"]);
    assert_eq!(out.bookkeeping.dirty, None);
}

#[tokio::test]
async fn xact_lock_applies_once() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let pending = baseline_and_pending(&db, RunnerKind::XactAdvisoryLock).await;
    let config = RaceConfig {
        count: 6,
        runner: RunnerKind::XactAdvisoryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &pending, &config).await.unwrap();
    let t = &out.timeline;
    assert_eq!(
        count(t, |k| matches!(k, EventKind::Applied { .. })),
        1,
        "{t:#?}"
    );
    assert_eq!(count(t, |k| matches!(k, EventKind::Skipped { .. })), 5);
    assert_eq!(out.data[0].rows, 1);
}

#[tokio::test]
async fn try_lock_makes_the_others_fail_fast() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let pending = baseline_and_pending(&db, RunnerKind::TryLock).await;
    let config = RaceConfig {
        count: 6,
        runner: RunnerKind::TryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &pending, &config).await.unwrap();
    let t = &out.timeline;
    let busy = count(t, |k| matches!(k, EventKind::LockBusy { .. }));
    let applied = count(t, |k| matches!(k, EventKind::Applied { .. }));
    assert!(busy >= 1, "{t:#?}");
    assert_eq!(applied, 1);
    assert_eq!(
        count(t, |k| matches!(
            k,
            EventKind::Exited {
                status: ExitStatus::Failure,
                ..
            }
        )),
        busy
    );
    assert_eq!(out.data[0].rows, 1);
}

#[tokio::test]
async fn naive_create_table_race_fails_with_duplicate_errors() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_dir, set) = migrations(&[(
        "0001_users.sql",
        "CREATE TABLE IF NOT EXISTS users (id int);\nSELECT pg_sleep(0.2);\nCREATE TABLE accounts (id int);",
    )]);
    let config = RaceConfig {
        count: 8,
        runner: RunnerKind::Naive,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let states = sqlstates(&out.timeline);
    assert!(
        states
            .iter()
            .any(|s| matches!(s, SqlState::DuplicateTable | SqlState::UniqueViolation)),
        "{:#?}",
        out.timeline
    );
}

#[tokio::test]
async fn job_gate_halts_the_rollout_on_failure() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_dir, set) = migrations(&[
        ("0001_ok.sql", "CREATE TABLE a (id int);"),
        ("0002_broken.sql", "ALTER TABLE missing ADD COLUMN x int;"),
    ]);
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::Job,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let t = &out.timeline;
    assert_eq!(t.exit_of(Actor::Job), Some(ExitStatus::Failure));
    assert_eq!(
        count(t, |k| matches!(k, EventKind::RolloutHalted { .. })),
        1
    );
    assert!(
        t.of(Actor::Replica(0)).next().is_none(),
        "no replica may start: {t:#?}"
    );
    assert_eq!(out.bookkeeping.dirty.as_deref(), Some("2"));
    assert!(sqlstates(t).contains(&SqlState::UndefinedTable));
}

#[tokio::test]
async fn job_gate_starts_replicas_after_success() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_dir, set) = migrations(&[("0001_ok.sql", "CREATE TABLE a (id int);")]);
    let config = RaceConfig {
        count: 3,
        runner: RunnerKind::Job,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let t = &out.timeline;
    assert_eq!(t.exit_of(Actor::Job), Some(ExitStatus::Success));
    let job_exit = t.of(Actor::Job).last().unwrap().at_us;
    for n in 0..3 {
        assert_eq!(t.exit_of(Actor::Replica(n)), Some(ExitStatus::Success));
        assert!(t.of(Actor::Replica(n)).all(|e| e.at_us >= job_exit));
    }
}

#[tokio::test]
async fn session_lock_held_by_a_failed_replica_times_the_others_out() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    // Fails for whoever runs it first: the others wait on the lock the
    // failed replica's still-open connection holds.
    let (_dir, set) = migrations(&[("0001_broken.sql", "ALTER TABLE missing ADD COLUMN x int;")]);
    let config = RaceConfig {
        count: 3,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 2,
        hold_failed_connection: true,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let t = &out.timeline;
    assert_eq!(
        count(t, |k| matches!(
            k,
            EventKind::Exited {
                status: ExitStatus::TimedOut,
                ..
            }
        )),
        2,
        "{t:#?}"
    );
    assert_eq!(out.leaked_locks.len(), 1, "{:?}", out.leaked_locks);
}

#[tokio::test]
async fn lock_timeout_turns_waits_into_55p03() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_dir, set) = migrations(&[(
        "0001_slow.sql",
        "SELECT pg_sleep(1.5);\nCREATE TABLE a (id int);",
    )]);
    let config = RaceConfig {
        count: 3,
        runner: RunnerKind::SessionAdvisoryLock,
        timeout_s: 20,
        lock_timeout_ms: Some(200),
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let states = sqlstates(&out.timeline);
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == SqlState::LockNotAvailable)
            .count(),
        2,
        "{:#?}",
        out.timeline
    );
}

#[tokio::test]
async fn every_replica_connection_is_named() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_dir, set) = migrations(&[(
        "0001_slow.sql",
        "CREATE TABLE seen AS SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid();",
    )]);
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::Naive,
        timeout_s: 20,
        ..Default::default()
    };
    run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let client = db.connect().await;
    let name: String = client
        .query_one("SELECT application_name FROM seen", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "rehearse-replica-0");
}
