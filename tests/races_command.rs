//! The `command` runner: real processes (psql standing in for the user's
//! migration tool) racing against a real Postgres.

use std::time::{Duration, Instant};

use pg_rehearse::findings::{CheckId, check_race};
use pg_rehearse::migrate::RunnerKind;
use pg_rehearse::rehearsal::{FaultConfig, RaceConfig, run_races};
use pg_rehearse::timeline::{Actor, EventKind, ExitStatus, SqlState};

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

fn outputs(out: &pg_rehearse::rehearsal::RaceOutcome, actor: Actor) -> String {
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
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
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
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
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
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
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
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
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
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
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

/// The baseline of a user's tool reaches the template in that tool's own
/// table, for every layout: rows as the tool writes them, checksums as
/// independent implementations compute them (coreutils `sha384sum` for
/// sqlx, Python's zlib CRC-32 over the lines for Flyway).
#[tokio::test]
async fn the_baseline_is_recorded_in_each_layouts_tool_table() {
    use pg_rehearse::migrate::{Layout, MigrationSet, ToolSetup, apply_tool_baseline};
    // (layout, files, baseline version, what to read back)
    type Case<'a> = (Layout, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let files: [Case; 5] = [
        (
            Layout::Sqlx,
            &[
                ("0001_create_a.sql", "CREATE TABLE a (id int);\n"),
                ("0002_b.sql", "CREATE TABLE b (id int);\n"),
            ],
            "0001",
            "SELECT version::text || ' ' || description || ' ' || success || ' ' || encode(checksum, 'hex') FROM _sqlx_migrations",
        ),
        (
            Layout::GolangMigrate,
            &[
                ("1_a.up.sql", "CREATE TABLE a (id int);\n"),
                ("2_b.up.sql", "CREATE TABLE b (id int);\n"),
            ],
            "1",
            "SELECT version::text || ' ' || dirty FROM schema_migrations",
        ),
        (
            Layout::Diesel,
            &[
                ("2024-01-01-000000_a/up.sql", "CREATE TABLE a (id int);\n"),
                ("2024-01-02-000000_b/up.sql", "CREATE TABLE b (id int);\n"),
            ],
            "20240101000000",
            "SELECT version FROM __diesel_schema_migrations",
        ),
        (
            Layout::Flyway,
            &[
                (
                    "V1__create_a.sql",
                    "CREATE TABLE a (id int);\r\nSELECT 1;\n",
                ),
                ("V2__b.sql", "CREATE TABLE b (id int);\n"),
            ],
            "1",
            "SELECT version || ' ' || description || ' ' || script || ' ' || checksum || ' ' || success FROM flyway_schema_history",
        ),
        (
            Layout::Refinery,
            &[
                ("V1__create_a.sql", "CREATE TABLE a (id int);\n"),
                ("V2__b.sql", "CREATE TABLE b (id int);\n"),
            ],
            "1",
            "SELECT version || ' ' || name || ' ' || (checksum ~ '^[0-9]+$') FROM refinery_schema_history",
        ),
    ];
    for (layout, migrations, baseline, query) in files {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in migrations {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let set = MigrationSet::load(dir.path(), layout).unwrap();
        let (applied, pending) = set.split_at(Some(baseline)).unwrap();
        assert_eq!((applied.len(), pending.len()), (1, 1), "{layout}");
        let tool = ToolSetup {
            kind: RunnerKind::Command,
            layout,
            baseline_command: Vec::new(),
            workdir: None,
            container: None,
        };
        apply_tool_baseline(db.conn(), &tool, &applied)
            .await
            .unwrap();
        let client = db.connect().await;
        let rows: Vec<String> = client
            .query(query, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let first = dir.path().join(migrations[0].0);
        let expected = match layout {
            Layout::Sqlx => {
                let out = std::process::Command::new("sha384sum")
                    .arg(&first)
                    .output()
                    .unwrap();
                let sum = String::from_utf8_lossy(&out.stdout);
                format!("1 create a true {}", sum.split_whitespace().next().unwrap())
            }
            Layout::GolangMigrate => "1 false".into(),
            Layout::Diesel => "20240101000000".into(),
            Layout::Flyway => {
                let script = "import sys, zlib\nprint(zlib.crc32(b''.join(l.rstrip(b'\\r\\n') for l in open(sys.argv[1], 'rb').read().splitlines())) - (1 << 32 if zlib.crc32(b''.join(l.rstrip(b'\\r\\n') for l in open(sys.argv[1], 'rb').read().splitlines())) >= 1 << 31 else 0))";
                let out = std::process::Command::new("python3")
                    .args(["-c", script])
                    .arg(&first)
                    .output()
                    .unwrap();
                let crc = String::from_utf8_lossy(&out.stdout).trim().to_string();
                format!("1 create a V1__create_a.sql {crc} true")
            }
            Layout::Refinery => "1 create_a true".into(),
            _ => unreachable!(),
        };
        assert_eq!(rows, [expected], "{layout}");
        // The baseline's schema is there, the pending migration's is not.
        let a: bool = client
            .query_one(
                "SELECT to_regclass('a') IS NOT NULL AND to_regclass('b') IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(a, "{layout}");
    }
}

/// Start jitter counts inside the replica timeout: with up to a minute of
/// jitter and a one-second timeout, replicas time out instead of starting
/// late (four replicas all drawing under a second is a 1-in-10^7 event).
#[tokio::test]
async fn jitter_counts_inside_the_replica_timeout() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::Command,
        jitter_ms: 60_000,
        timeout_s: 1,
        command: vec!["true".into()],
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    let statuses: Vec<_> = (0..4)
        .map(|n| out.timeline.exit_of(Actor::Replica(n)))
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Some(ExitStatus::TimedOut | ExitStatus::Success))),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&Some(ExitStatus::TimedOut)),
        "{statuses:?}"
    );
}

/// `baseline_command`: the user's tool brings the template to the baseline
/// itself; its failure is an error quoting the tool's line.
#[tokio::test]
async fn a_baseline_command_migrates_the_template_itself() {
    use pg_rehearse::migrate::{Layout, MigrationSet, ToolSetup, apply_tool_baseline};
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let set = MigrationSet::load(dir.path(), Layout::Sqlx).unwrap();
    let tool = |script: &str| ToolSetup {
        kind: RunnerKind::Command,
        layout: Layout::Sqlx,
        baseline_command: sh(script),
        workdir: Some(dir.path().to_path_buf()),
        container: None,
    };
    // The libpq variables reach the tool: psql needs no URL.
    let ok = tool("psql -v ON_ERROR_STOP=1 -qc 'CREATE TABLE from_the_tool (id int)'");
    apply_tool_baseline(db.conn(), &ok, &set.migrations)
        .await
        .unwrap();
    let client = db.connect().await;
    let made: bool = client
        .query_one(
            "SELECT to_regclass('from_the_tool') IS NOT NULL AND to_regclass('a') IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        made,
        "the baseline command, not the harness, built the template"
    );
    let bad = tool("psql -v ON_ERROR_STOP=1 -qc 'CREATE TABLE from_the_tool (id int)'");
    let err = apply_tool_baseline(db.conn(), &bad, &set.migrations)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("baseline_command")
            && err.contains("relation \"from_the_tool\" already exists"),
        "{err}"
    );
    if let Some(password) = db.conn().password() {
        assert!(!err.contains(password), "{err}");
    }
}
