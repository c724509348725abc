//! Larger races and the remaining concurrency hazards.

use pg_rehearse::findings::{CheckId, check_race};
use pg_rehearse::migrate::{Layout, MigrationSet, RunnerKind};
use pg_rehearse::rehearsal::{RaceConfig, run_races};
use pg_rehearse::timeline::{EventKind, ExitStatus, SqlState};

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let set = MigrationSet::load(dir.path(), Layout::Sqlx).unwrap();
    (dir, set)
}

#[tokio::test]
async fn thirty_two_replicas_behind_a_session_lock_apply_once() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_d, set) = load(&[
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        (
            "0002_b.sql",
            "ALTER TABLE a ADD COLUMN b int;\nINSERT INTO a VALUES (1, 2);",
        ),
    ]);
    let config = RaceConfig {
        count: 32,
        runner: RunnerKind::SessionAdvisoryLock,
        jitter_ms: 5,
        timeout_s: 30,
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let t = &out.timeline;
    let applied = t
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Applied { .. }))
        .count();
    let skipped = t
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Skipped { .. }))
        .count();
    assert_eq!(applied, 2, "{t:#?}");
    assert_eq!(skipped, 31 * 2);
    let ok = t
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Exited {
                    status: ExitStatus::Success,
                    ..
                }
            )
        })
        .count();
    assert_eq!(ok, 32);
    assert!(out.leaked_locks.is_empty());
    assert_eq!(out.data[0].rows, 1);
}

#[tokio::test]
async fn create_table_if_not_exists_races_in_the_catalog() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    // The first replica's table is not committed yet while the others check
    // IF NOT EXISTS; they then block on pg_type's unique index and fail.
    let (_d, set) = load(&[(
        "0001_users.sql",
        "CREATE TABLE IF NOT EXISTS users (id int);\nSELECT pg_sleep(0.3);",
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
    let pg_type_races = out
        .timeline
        .events
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::Failed { sqlstate: Some(SqlState::UniqueViolation), message, .. }
                if message.contains("pg_type") || message.contains("pg_class"))
        })
        .count();
    assert!(pg_type_races >= 1, "{:#?}", out.timeline);
    let findings = check_race(&out);
    // The bookkeeping table's own CREATE TABLE IF NOT EXISTS races too
    // (42P07 or 23505), so look for the catalog collision among all groups.
    assert!(
        findings.iter().any(|f| f.check == CheckId::ReplicaErrors
            && f.message.contains("IF NOT EXISTS does not make DDL safe")),
        "{findings:#?}"
    );
}

/// Flyway's transactional lock is held by an open transaction while the
/// non-transactional CREATE INDEX CONCURRENTLY runs on another connection;
/// the index build waits for the snapshots of replicas queued on that lock,
/// and PostgreSQL sees no cycle to break: a hang, ended by the timeout.
#[tokio::test]
async fn flyway_style_lock_with_a_concurrent_index_hangs_until_the_timeout() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_d, set) = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int, email text);"),
        (
            "0002_idx.sql",
            "-- no-transaction\nSELECT pg_sleep(0.3);\nCREATE INDEX CONCURRENTLY users_email ON users (email);",
        ),
    ]);
    let config = RaceConfig {
        count: 3,
        runner: RunnerKind::XactAdvisoryLock,
        timeout_s: 5,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Every replica ended one way or another; none is left running.
    for n in 0..3 {
        assert!(
            out.timeline
                .exit_of(pg_rehearse::timeline::Actor::Replica(n))
                .is_some()
        );
    }
    let findings = check_race(&out);
    let hung = findings
        .iter()
        .filter(|f| f.check == CheckId::ReplicaTimeout)
        .count();
    assert!(hung >= 1, "{findings:#?}");
}

#[tokio::test]
async fn concurrent_index_without_the_no_transaction_marker_fails_with_25001() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let (_d, set) = load(&[
        ("0001_users.sql", "CREATE TABLE users (id int, email text);"),
        (
            "0002_idx.sql",
            "CREATE INDEX CONCURRENTLY users_email ON users (email);",
        ),
    ]);
    let config = RaceConfig {
        count: 2,
        runner: RunnerKind::TryLock,
        timeout_s: 20,
        ..Default::default()
    };
    let out = run_races(db.conn(), &set.migrations, &config)
        .await
        .unwrap();
    let findings = check_race(&out);
    let advice = findings.iter().any(|f| {
        f.check == CheckId::ReplicaErrors
            && f.details["sqlstate"] == "25001"
            && f.message.contains("mark the migration as no-transaction")
    });
    assert!(advice, "{findings:#?}");
}
