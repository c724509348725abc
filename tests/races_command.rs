//! The `command` runner: real processes (psql standing in for the user's
//! migration tool) racing against a real Postgres.

use std::time::{Duration, Instant};

use rehearse::findings::{CheckId, check_race};
use rehearse::migrate::RunnerKind;
use rehearse::rehearsal::{FaultConfig, RaceConfig, run_races};
use rehearse::timeline::{Actor, EventKind, ExitStatus, SqlState};

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn outputs(out: &rehearse::rehearsal::RaceOutcome, actor: Actor) -> String {
    out.timeline
        .of(actor)
        .filter_map(|e| match &e.kind {
            EventKind::Output { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn processes_get_the_url_and_their_replica_name() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 2,
        runner: RunnerKind::Command,
        timeout_s: 20,
        command: sh("psql \"$DATABASE_URL\" -Atc \"SELECT current_setting('application_name')\""),
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    for n in 0..2 {
        assert_eq!(
            out.timeline.exit_of(Actor::Replica(n)),
            Some(ExitStatus::Success),
            "{:#?}",
            out.timeline
        );
        assert_eq!(
            outputs(&out, Actor::Replica(n)).trim(),
            format!("rehearse-replica-{n}")
        );
    }
}

#[tokio::test]
async fn racing_tool_processes_hit_the_pg_type_race() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::Command,
        timeout_s: 20,
        command: sh(
            "psql \"$DATABASE_URL\" -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
             -c 'BEGIN; CREATE TABLE IF NOT EXISTS t (id int); SELECT pg_sleep(0.3); COMMIT;'",
        ),
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    let t = &out.timeline;
    let failed: Vec<_> = t
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Failed { sqlstate, .. } => Some(sqlstate.clone()),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty(), "{t:#?}");
    assert!(
        failed.iter().all(|s| *s == Some(SqlState::UniqueViolation)),
        "{failed:?}"
    );
    let findings = check_race(&out);
    let errors = findings
        .iter()
        .find(|f| f.check == CheckId::ReplicaErrors)
        .unwrap();
    assert!(
        errors
            .message
            .contains("IF NOT EXISTS does not make DDL safe"),
        "{}",
        errors.message
    );
}

#[tokio::test]
async fn fault_kills_the_process_and_its_backend() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::Command,
        timeout_s: 20,
        command: sh("psql \"$DATABASE_URL\" -c 'SELECT pg_sleep(15)'"),
        fault: Some(FaultConfig {
            replica: 0,
            statement: None,
            rerun: false,
        }),
        ..Default::default()
    };
    let started = Instant::now();
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the kill must not wait for the query: {:#?}",
        out.timeline
    );
    assert_eq!(
        out.timeline.exit_of(Actor::Replica(0)),
        Some(ExitStatus::Killed),
        "{:#?}",
        out.timeline
    );
    assert!(out.fault.as_ref().unwrap().fault.process_killed);
    let findings = check_race(&out);
    assert!(
        findings.iter().any(|f| f.check == CheckId::FaultRecovery),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn a_process_that_never_finishes_is_timed_out_and_killed() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 2,
        runner: RunnerKind::Command,
        timeout_s: 1,
        command: sh("psql \"$DATABASE_URL\" -c 'SELECT pg_sleep(60)'"),
        ..Default::default()
    };
    let started = Instant::now();
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    for n in 0..2 {
        assert_eq!(
            out.timeline.exit_of(Actor::Replica(n)),
            Some(ExitStatus::TimedOut)
        );
    }
    let client = db.connect().await;
    let left: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rehearse-replica-%' AND datname = current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "timed-out backends are terminated");
    let findings = check_race(&out);
    assert_eq!(
        findings
            .iter()
            .filter(|f| f.check == CheckId::ReplicaTimeout)
            .count(),
        2
    );
}

#[tokio::test]
async fn a_missing_tool_is_a_failed_replica_not_a_crash() {
    let Some(db) = rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::Command,
        timeout_s: 5,
        command: vec!["/nonexistent/migrate-tool".into()],
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    assert_eq!(
        out.timeline.exit_of(Actor::Replica(0)),
        Some(ExitStatus::Failure)
    );
}
