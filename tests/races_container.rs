//! The `container` runner: replicas as containers of an image, reaching the
//! database over Docker networking.
//!
//! Needs Docker and a local image with `psql` (`REHEARSE_TEST_REPLICA_IMAGE`,
//! default `rehearse-postgres:15`, the harness's own Postgres image). Without
//! them the test says so loudly and returns; under `CI=true` it fails.

use pg_rehearse::migrate::{ContainerSpec, RunnerKind};
use pg_rehearse::rehearsal::{RaceConfig, run_races};
use pg_rehearse::timeline::{Actor, EventKind, ExitStatus};

fn image() -> Option<String> {
    let image = std::env::var("REHEARSE_TEST_REPLICA_IMAGE")
        .unwrap_or_else(|_| "rehearse-postgres:15".into());
    let present = std::process::Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Some(image);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "image {image} missing under CI"
    );
    eprintln!("SKIPPED: docker image {image} is not available; the container runner is untested");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_race_and_report_exit_codes_and_names() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let Some(image) = image() else { return };
    let config = RaceConfig {
        count: 2,
        runner: RunnerKind::Container,
        timeout_s: 60,
        command: vec![
            "sh".into(),
            "-c".into(),
            "psql \"$DATABASE_URL\" -Atc \"SELECT current_setting('application_name')\" && \
             psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -c 'CREATE TABLE only_once (id int)'"
                .into(),
        ],
        container: Some(ContainerSpec {
            image,
            network: None,
            db_host: None,
            db_port: None,
        }),
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    let t = &out.timeline;
    let mut statuses: Vec<ExitStatus> = (0..2)
        .filter_map(|n| t.exit_of(Actor::Replica(n)))
        .collect();
    statuses.sort_by_key(|s| *s == ExitStatus::Failure);
    assert_eq!(
        statuses,
        [ExitStatus::Success, ExitStatus::Failure],
        "{t:#?}"
    );
    for n in 0..2 {
        let out: String = t
            .of(Actor::Replica(n))
            .filter_map(|e| match &e.kind {
                EventKind::Output { stream, text } if stream == "stdout" => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert!(out.contains(&format!("rehearse-replica-{n}")), "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_recorded_as_killed() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let Some(image) = image() else { return };
    let config = RaceConfig {
        count: 1,
        runner: RunnerKind::Container,
        timeout_s: 60,
        command: vec![
            "sh".into(),
            "-c".into(),
            "psql \"$DATABASE_URL\" -c 'SELECT pg_sleep(30)'".into(),
        ],
        container: Some(ContainerSpec {
            image,
            network: None,
            db_host: None,
            db_port: None,
        }),
        fault: Some(pg_rehearse::rehearsal::FaultConfig {
            replica: 0,
            statement: None,
            rerun: false,
        }),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
    assert_eq!(
        out.timeline.exit_of(Actor::Replica(0)),
        Some(ExitStatus::Killed),
        "{:#?}",
        out.timeline
    );
    assert!(out.fault.unwrap().fault.process_killed);
}
