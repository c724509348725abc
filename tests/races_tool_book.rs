//! Built-in runners keep the bookkeeping of the migration layout's own tool
//! and leave what that tool leaves after a failure (measured behaviour of
//! the real tools, /docs/real-tools.md): sqlx and dbmate record nothing for
//! a failed migration and retry it on the next run; golang-migrate leaves
//! `dirty = true` and refuses; a diesel migration may read diesel's table.

use pg_rehearse::migrate::{Layout, Migration, MigrationSet, RunnerKind, apply_serial_in};
use pg_rehearse::rehearsal::{RaceConfig, RaceOutcome, run_races};
use pg_rehearse::testing::TestDatabase;
use pg_rehearse::timeline::{EventKind, Timeline};

/// Writes `files` into `dir` (replacing earlier contents of the same names).
fn write(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Loads `dir` and splits it after `baseline`.
fn split(
    dir: &std::path::Path,
    layout: Layout,
    baseline: &str,
) -> (Vec<Migration>, Vec<Migration>) {
    let set = MigrationSet::load(dir, layout).unwrap();
    set.split_at(Some(baseline)).unwrap()
}

/// One replica of `runner` applying `pending` with `layout`'s bookkeeping.
async fn race(
    db: &TestDatabase,
    runner: RunnerKind,
    layout: Layout,
    pending: &[Migration],
) -> RaceOutcome {
    let config = RaceConfig {
        count: 1,
        runner,
        layout,
        timeout_s: 20,
        ..Default::default()
    };
    run_races(db.conn(), pending, &config).await.unwrap()
}

fn applied(t: &Timeline, version: &str) -> bool {
    t.events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::Applied { version: v, .. } if v == version))
}

fn failures(t: &Timeline) -> Vec<String> {
    t.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Failed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

async fn strings(db: &TestDatabase, query: &str) -> Vec<String> {
    let client = db.connect().await;
    client
        .query(query, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const BROKEN: &str = "CREATE TABLE b (id int);\nSELECT * FROM no_such_table;\n";
const FIXED: &str = "CREATE TABLE b (id int);\n";

#[tokio::test]
async fn sqlx_and_dbmate_record_nothing_for_a_failed_migration_and_retry_it() {
    // (layout, runner, baseline file, pending file, its version, the table's rows)
    type Case<'a> = (Layout, RunnerKind, &'a str, &'a str, &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            Layout::Sqlx,
            RunnerKind::Naive,
            "0001_a.sql",
            "0002_b.sql",
            "0002",
            "SELECT version::text || ' ' || success FROM _sqlx_migrations ORDER BY version",
        ),
        (
            Layout::Dbmate,
            RunnerKind::Naive,
            "20240101000000_a.sql",
            "20240102000000_b.sql",
            "20240102000000",
            "SELECT version FROM schema_migrations ORDER BY version",
        ),
        (
            Layout::Sqlx,
            RunnerKind::SessionAdvisoryLock,
            "0001_a.sql",
            "0002_b.sql",
            "0002",
            "SELECT version::text || ' ' || success FROM _sqlx_migrations ORDER BY version",
        ),
        (
            Layout::Dbmate,
            RunnerKind::TryLock,
            "20240101000000_a.sql",
            "20240102000000_b.sql",
            "20240102000000",
            "SELECT version FROM schema_migrations ORDER BY version",
        ),
    ];
    for (layout, runner, first, second, version, rows) in cases {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let body = |sql: &str| match layout {
            Layout::Dbmate => format!("-- migrate:up\n{sql}\n-- migrate:down\n"),
            _ => sql.to_string(),
        };
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (first, &body("CREATE TABLE a (id int);\n")),
                (second, &body(BROKEN)),
            ],
        );
        let baseline = first.split('_').next().unwrap();
        let (base, pending) = split(dir.path(), layout, baseline);
        apply_serial_in(db.conn(), &runner, layout, &base)
            .await
            .unwrap();

        let out = race(&db, runner, layout, &pending).await;
        let case = format!("{layout} {}", runner.name());
        assert!(!applied(&out.timeline, version), "{case}: {out:#?}");
        assert_eq!(failures(&out.timeline).len(), 1, "{case}: {out:#?}");
        let after_failure = strings(&db, rows).await;
        let (table, baseline_row) = match layout {
            Layout::Sqlx => ("_sqlx_migrations", "1 true"),
            _ => ("schema_migrations", "20240101000000"),
        };
        // Nothing for the failed migration, no row marked failed.
        assert_eq!(after_failure, [baseline_row], "{case}");
        assert_eq!(out.bookkeeping.table.as_deref(), Some(table), "{case}");
        assert_eq!(out.bookkeeping.dirty, None, "{case}");
        // dbmate's table has no dirty column at all (golang-migrate's has).
        let columns = strings(
            &db,
            &format!(
                "SELECT column_name::text FROM information_schema.columns WHERE table_name = '{table}' AND column_name = 'dirty'"
            ),
        )
        .await;
        assert!(columns.is_empty(), "{case}: {columns:?}");

        // The next run, with the file fixed, retries and succeeds.
        write(dir.path(), &[(second, &body(FIXED))]);
        let (_, pending) = split(dir.path(), layout, baseline);
        let out = race(&db, runner, layout, &pending).await;
        assert!(applied(&out.timeline, version), "{case}: {out:#?}");
        assert!(failures(&out.timeline).is_empty(), "{case}: {out:#?}");
        assert_eq!(strings(&db, rows).await.len(), 2, "{case}");
    }
}

#[tokio::test]
async fn golang_migrate_leaves_the_failed_version_dirty_and_the_next_run_refuses() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let layout = Layout::GolangMigrate;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("1_a.up.sql", "CREATE TABLE a (id int);\n"),
            ("2_b.up.sql", BROKEN),
        ],
    );
    let (base, pending) = split(dir.path(), layout, "1");
    apply_serial_in(db.conn(), &RunnerKind::Naive, layout, &base)
        .await
        .unwrap();
    let out = race(&db, RunnerKind::Naive, layout, &pending).await;
    assert!(!applied(&out.timeline, "2"), "{out:#?}");
    let row = "SELECT version::text || ' ' || dirty FROM schema_migrations";
    assert_eq!(strings(&db, row).await, ["2 true"]);
    assert_eq!(out.bookkeeping.dirty.as_deref(), Some("2"));

    // Fixing the file does not help: golang-migrate refuses until forced.
    write(dir.path(), &[("2_b.up.sql", FIXED)]);
    let (_, pending) = split(dir.path(), layout, "1");
    let out = race(&db, RunnerKind::Naive, layout, &pending).await;
    assert!(!applied(&out.timeline, "2"), "{out:#?}");
    let failed = failures(&out.timeline);
    assert!(
        failed.len() == 1 && failed[0].contains("dirty database version 2"),
        "{failed:?}"
    );
    assert_eq!(strings(&db, row).await, ["2 true"]);
}

#[tokio::test]
async fn a_diesel_migration_reads_diesels_own_table() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let layout = Layout::Diesel;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("2024-01-01-000000_a/up.sql", "CREATE TABLE a (id int);\n"),
            (
                "2024-01-02-000000_b/up.sql",
                "CREATE TABLE seen AS SELECT version FROM __diesel_schema_migrations;\n",
            ),
        ],
    );
    let (base, pending) = split(dir.path(), layout, "20240101000000");
    apply_serial_in(db.conn(), &RunnerKind::Naive, layout, &base)
        .await
        .unwrap();
    let out = race(&db, RunnerKind::Naive, layout, &pending).await;
    assert!(applied(&out.timeline, "20240102000000"), "{out:#?}");
    assert_eq!(
        strings(&db, "SELECT version FROM seen").await,
        ["20240101000000"]
    );
    assert_eq!(
        strings(
            &db,
            "SELECT version FROM __diesel_schema_migrations ORDER BY version"
        )
        .await,
        ["20240101000000", "20240102000000"]
    );
}

#[tokio::test]
async fn flyway_records_a_failed_row_only_outside_a_transaction_and_then_refuses() {
    let layout = Layout::Flyway;
    let rows =
        "SELECT version || ' ' || success FROM flyway_schema_history ORDER BY installed_rank";
    // (second file, rows after the failure): a transactional failure rolls
    // back with its row; one outside a transaction leaves success = false.
    // Flyway's per-script `<script>.conf` says `executeInTransaction=false`.
    let cases = [(false, vec!["1 true"]), (true, vec!["1 true", "2 false"])];
    for (outside, expected) in cases {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("V1__a.sql", "CREATE TABLE a (id int);\n"),
                ("V2__b.sql", BROKEN),
            ],
        );
        if outside {
            write(
                dir.path(),
                &[("V2__b.sql.conf", "executeInTransaction=false\n")],
            );
        }
        let (base, pending) = split(dir.path(), layout, "1");
        apply_serial_in(db.conn(), &RunnerKind::Naive, layout, &base)
            .await
            .unwrap();
        let out = race(&db, RunnerKind::Naive, layout, &pending).await;
        assert!(!applied(&out.timeline, "2"), "{out:#?}");
        assert_eq!(strings(&db, rows).await, expected);

        write(dir.path(), &[("V2__b.sql", "CREATE TABLE c (id int);\n")]);
        let (_, pending) = split(dir.path(), layout, "1");
        let out = race(&db, RunnerKind::Naive, layout, &pending).await;
        if expected.len() == 1 {
            assert!(applied(&out.timeline, "2"), "{out:#?}");
        } else {
            let failed = failures(&out.timeline);
            assert!(
                failed.len() == 1 && failed[0].contains("detected failed migration to version 2"),
                "{failed:?}"
            );
        }
    }
}
