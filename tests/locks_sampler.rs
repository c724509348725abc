//! The live lock sampler against a real Postgres: who waits behind whom,
//! measured from samples (no wall-clock thresholds: durations are compared
//! with each other, all derived from the same samples).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pg_rehearse::findings::{CheckId, check_locks};
use pg_rehearse::locks::analysis::Holder;
use pg_rehearse::locks::sampler::{self, SamplerHandle};
use pg_rehearse::locks::{LockMode, LockReport, SamplerOptions, adhoc_migration, analyse};
use pg_rehearse::provision::ConnInfo;
use pg_rehearse::timeline::SqlState;
use tokio_postgres::Client;

/// Every wait in these tests is bounded by this.
const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `condition` until it holds, failing the test at the deadline.
async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether a backend named `app` has a lock request waiting.
async fn is_waiting(monitor: &Client, app: &str) -> bool {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
              WHERE a.application_name = $1 AND NOT l.granted",
            &[&app],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

/// Whether `app` holds `mode` on `table`.
async fn holds(monitor: &Client, app: &str, table: &str, mode: LockMode) -> bool {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
               JOIN pg_class c ON c.oid = l.relation \
              WHERE a.application_name = $1 AND c.relname = $2 AND l.mode = $3 AND l.granted",
            &[&app, &table, &mode.pg_name()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
        > 0
}

/// Waits until the sampler has taken `n` more samples: it has seen the
/// current state.
async fn sampled(sampler: &SamplerHandle, n: u64) {
    let from = sampler.taken();
    wait_until("the sampler took more samples", || async {
        sampler.taken() >= from + n
    })
    .await;
}

async fn connect(conn: &ConnInfo, app: &str) -> Client {
    let client = conn.connect(app).await.unwrap();
    // Bounded even if a test goes wrong.
    client
        .batch_execute("SET statement_timeout = '60s'")
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn a_queued_alter_makes_later_selects_wait_and_the_report_says_so() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let monitor = db.connect().await;
    monitor
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v int);
             INSERT INTO t SELECT g, g FROM generate_series(1, 100) g;",
        )
        .await
        .unwrap();
    let reader = connect(db.conn(), "report").await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM t")
        .await
        .unwrap();
    let sampler = sampler::start(db.conn(), SamplerOptions::default())
        .await
        .unwrap();

    let alter_sql = "ALTER TABLE t ADD COLUMN c int";
    let migrator = connect(db.conn(), "rehearse-replica-0").await;
    let alter = tokio::spawn(async move { migrator.batch_execute(alter_sql).await });
    wait_until("the ALTER queues", || {
        is_waiting(&monitor, "rehearse-replica-0")
    })
    .await;
    let app = connect(db.conn(), "app-v1").await;
    let select = tokio::spawn(async move { app.query("SELECT v FROM t WHERE id = 1", &[]).await });
    wait_until("the SELECT waits", || is_waiting(&monitor, "app-v1")).await;
    // Long enough for `lock-queue`, which leaves out queues under 100 ms.
    sampled(&sampler, 20).await;

    reader.batch_execute("COMMIT").await.unwrap();
    alter.await.unwrap().unwrap();
    select.await.unwrap().unwrap();
    let samples = sampler.stop().await.unwrap();
    let pending = [adhoc_migration("0002", &[alter_sql])];
    let analysis = analyse(&samples, &pending, None);

    let queued: Vec<_> = analysis.queued_waits().collect();
    let app_wait = queued
        .iter()
        .find(|w| w.holder == Holder::App("app-v1".into()))
        .unwrap_or_else(|| panic!("no queued wait of app-v1: {analysis:#?}"));
    assert_eq!(app_wait.mode, LockMode::AccessShare);
    assert!(
        app_wait
            .blocked_by
            .iter()
            .any(|b| b.queued && b.holder == Holder::Replica(0))
    );
    assert_eq!(
        app_wait.statement.as_ref().map(|s| s.version.as_str()),
        Some("0002")
    );
    // The ALTER itself waited on the reader's held lock.
    let alter_wait = analysis
        .waits
        .iter()
        .find(|w| w.holder == Holder::Replica(0))
        .unwrap();
    assert_eq!(alter_wait.mode, LockMode::AccessExclusive);
    assert!(!alter_wait.behind_queue());
    assert!(analysis.blocked_backend_seconds > 0.0);

    let report = LockReport {
        sampled: Some(analysis),
        ..LockReport::default()
    };
    let findings = check_locks(&report);
    let queue = findings.iter().find(|f| f.check == CheckId::LockQueue);
    assert!(
        queue.is_some_and(|f| f.message.contains("0002")),
        "{findings:#?}"
    );
}

#[tokio::test]
async fn with_lock_timeout_the_migration_fails_fast_with_55p03() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let monitor = db.connect().await;
    monitor
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let reader = connect(db.conn(), "report").await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM t")
        .await
        .unwrap();
    let migrator = connect(db.conn(), "rehearse-replica-0").await;
    let error = migrator
        .batch_execute("SET lock_timeout = '50ms'; ALTER TABLE t ADD COLUMN c int")
        .await
        .unwrap_err();
    let code = error.code().map(|c| SqlState::from_code(c.code()));
    assert_eq!(code, Some(SqlState::LockNotAvailable), "{error}");
    // Nothing stays queued: a new reader is not blocked.
    assert!(!is_waiting(&monitor, "rehearse-replica-0").await);
    monitor.query("SELECT * FROM t", &[]).await.unwrap();
    reader.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn create_index_blocks_inserts_for_the_build_while_selects_continue() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let monitor = db.connect().await;
    monitor
        .batch_execute(
            "CREATE TABLE big (id int, v int);
             INSERT INTO big SELECT g, g % 1000 FROM generate_series(1, 1000000) g;
             ANALYZE big;",
        )
        .await
        .unwrap();
    let sampler = sampler::start(db.conn(), SamplerOptions::default())
        .await
        .unwrap();
    let builder = connect(db.conn(), "rehearse-replica-0").await;
    let build = tokio::spawn(async move {
        builder
            .batch_execute("CREATE INDEX big_v_id_idx ON big (v, id)")
            .await
    });
    wait_until("the build holds SHARE", || {
        holds(&monitor, "rehearse-replica-0", "big", LockMode::Share)
    })
    .await;

    let writer = connect(db.conn(), "app-writer").await;
    let insert =
        tokio::spawn(async move { writer.batch_execute("INSERT INTO big VALUES (0, 0)").await });
    let done = Arc::new(AtomicBool::new(false));
    let selects = Arc::new(AtomicU64::new(0));
    let reader = connect(db.conn(), "app-reader").await;
    let (flag, count) = (Arc::clone(&done), Arc::clone(&selects));
    let reads = tokio::spawn(async move {
        while !flag.load(Ordering::Relaxed) {
            reader
                .query("SELECT id FROM big LIMIT 1", &[])
                .await
                .unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    wait_until("the INSERT waits", || is_waiting(&monitor, "app-writer")).await;
    // SELECTs complete while the INSERT is still blocked by the build.
    let before = selects.load(Ordering::Relaxed);
    wait_until("a SELECT completes or the build ends", || async {
        selects.load(Ordering::Relaxed) > before || build.is_finished()
    })
    .await;
    let selects_while_blocked = selects.load(Ordering::Relaxed) - before;
    assert!(
        is_waiting(&monitor, "app-writer").await,
        "the build ended before any SELECT"
    );
    build.await.unwrap().unwrap();
    insert.await.unwrap().unwrap();
    done.store(true, Ordering::Relaxed);
    reads.await.unwrap();
    let samples = sampler.stop().await.unwrap();
    let analysis = analyse(&samples, &[], None);

    let insert_wait = analysis
        .waits
        .iter()
        .find(|w| w.holder == Holder::App("app-writer".into()))
        .unwrap_or_else(|| panic!("the INSERT did not wait: {analysis:#?}"));
    assert_eq!(insert_wait.mode, LockMode::RowExclusive);
    assert!(
        insert_wait
            .blocked_by
            .iter()
            .any(|b| b.holder == Holder::Replica(0) && !b.queued)
    );
    assert!(
        !analysis
            .waits
            .iter()
            .any(|w| w.holder == Holder::App("app-reader".into())),
        "SELECTs waited: {analysis:#?}"
    );
    assert!(
        selects_while_blocked > 0,
        "no SELECT completed while the build ran"
    );
    // About the build time: the INSERT waited at least half of the time
    // the build held SHARE (it started waiting just after the build began).
    let build_hold = analysis
        .holds
        .iter()
        .find(|h| {
            h.holder == Holder::Replica(0)
                && h.mode == LockMode::Share
                && h.relation == "public.big"
        })
        .unwrap();
    assert!(
        insert_wait.wait_us * 2 >= build_hold.hold_us,
        "insert waited {} us, build held SHARE {} us",
        insert_wait.wait_us,
        build_hold.hold_us
    );
}

/// Runs a 20-chunk backfill, in one transaction or one per chunk, while an
/// application keeps updating row 1; returns the application's longest wait.
async fn backfill_max_app_wait(conn: &ConnInfo, batched: bool) -> u64 {
    let sampler = sampler::start(conn, SamplerOptions::default())
        .await
        .unwrap();
    let app = connect(conn, "app-writer").await;
    let done = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let (flag, count) = (Arc::clone(&done), Arc::clone(&updates));
    let writes = tokio::spawn(async move {
        while !flag.load(Ordering::Relaxed) {
            app.execute("UPDATE bf SET w = w + 1 WHERE id = 1", &[])
                .await
                .unwrap();
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    wait_until("the app writes", || async {
        updates.load(Ordering::Relaxed) > 0
    })
    .await;
    let migrator = connect(conn, "rehearse-replica-0").await;
    let chunks: Vec<String> = (0..20)
        .map(|c| {
            format!(
                "UPDATE bf SET v = v + 1 WHERE id > {} AND id <= {}",
                c * 10_000,
                (c + 1) * 10_000
            )
        })
        .collect();
    if batched {
        for chunk in &chunks {
            migrator.batch_execute(chunk).await.unwrap();
        }
    } else {
        migrator
            .batch_execute(&format!("BEGIN; {}; COMMIT", chunks.join("; ")))
            .await
            .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    writes.await.unwrap();
    let samples = sampler.stop().await.unwrap();
    analyse(&samples, &[], None).max_app_wait_us()
}

#[tokio::test]
async fn batching_a_backfill_shortens_the_longest_application_wait() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let monitor = db.connect().await;
    monitor
        .batch_execute(
            "CREATE TABLE bf (id int PRIMARY KEY, v int, w int);
             INSERT INTO bf SELECT g, 0, 0 FROM generate_series(1, 200000) g;",
        )
        .await
        .unwrap();
    let unbatched = backfill_max_app_wait(db.conn(), false).await;
    let batched = backfill_max_app_wait(db.conn(), true).await;
    assert!(
        unbatched > 0,
        "the app never waited on the unbatched backfill"
    );
    assert!(
        unbatched > 2 * batched,
        "unbatched longest wait {unbatched} us vs batched {batched} us"
    );
}

#[tokio::test]
async fn the_sampler_sees_only_its_own_database_and_names_its_relations() {
    let (Some(ours), Some(theirs)) = (
        pg_rehearse::testing::fresh_database().await,
        pg_rehearse::testing::fresh_database().await,
    ) else {
        return;
    };
    let setup = "CREATE TABLE accounts (id int PRIMARY KEY); CREATE SCHEMA billing; \
                 CREATE TABLE billing.invoices (id int)";
    ours.connect().await.batch_execute(setup).await.unwrap();
    theirs.connect().await.batch_execute(setup).await.unwrap();
    let hold = "BEGIN; LOCK TABLE billing.invoices IN SHARE MODE; \
                SELECT pg_advisory_xact_lock(42); SELECT txid_current()";
    let mine = connect(ours.conn(), "app-mine").await;
    mine.batch_execute(hold).await.unwrap();
    let other = connect(theirs.conn(), "app-other").await;
    other.batch_execute(hold).await.unwrap();
    let other_pid: i32 = other
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let sampler = sampler::start(ours.conn(), SamplerOptions::default())
        .await
        .unwrap();
    sampled(&sampler, 5).await;
    // A backend connecting after the sampler started is picked up too.
    let late = connect(ours.conn(), "app-late").await;
    late.batch_execute("BEGIN; LOCK TABLE accounts IN ACCESS SHARE MODE")
        .await
        .unwrap();
    sampled(&sampler, 5).await;
    let samples = sampler.stop().await.unwrap();
    mine.batch_execute("COMMIT").await.unwrap();
    other.batch_execute("COMMIT").await.unwrap();
    late.batch_execute("COMMIT").await.unwrap();

    let last = samples.samples.last().unwrap();
    assert!(
        samples
            .samples
            .iter()
            .flat_map(|s| s.locks.iter())
            .all(|l| l.pid != other_pid),
        "another database's backend was sampled: {last:#?}"
    );
    let app_of = |pid: i32| {
        last.backends
            .iter()
            .find(|b| b.pid == pid)
            .map(|b| b.application_name.as_str())
    };
    let share = last
        .locks
        .iter()
        .find(|l| l.mode == LockMode::Share)
        .unwrap_or_else(|| panic!("no SHARE lock sampled: {last:#?}"));
    assert_eq!(share.relation.as_deref(), Some("billing.invoices"));
    assert_eq!(app_of(share.pid), Some("app-mine"));
    assert!(
        last.locks
            .iter()
            .any(|l| l.locktype == pg_rehearse::locks::LockType::Advisory && l.object.is_some()),
        "{last:#?}"
    );
    let late_lock = last
        .locks
        .iter()
        .find(|l| l.relation.as_deref() == Some("public.accounts"))
        .unwrap_or_else(|| panic!("the late backend's lock is missing: {last:#?}"));
    assert_eq!(app_of(late_lock.pid), Some("app-late"));
}

#[tokio::test]
async fn relations_created_by_a_running_transaction_are_named_once_it_commits() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let migrator = connect(db.conn(), "rehearse-job").await;
    migrator
        .batch_execute("BEGIN; CREATE TABLE created_late (id int)")
        .await
        .unwrap();
    let sampler = sampler::start(db.conn(), SamplerOptions::default())
        .await
        .unwrap();
    // Sampled while the table is invisible to every other session.
    sampled(&sampler, 3).await;
    migrator.batch_execute("COMMIT").await.unwrap();
    let samples = sampler.stop().await.unwrap();
    let relations: std::collections::BTreeSet<_> = samples
        .samples
        .iter()
        .flat_map(|s| s.locks.iter())
        .filter(|l| l.mode == LockMode::AccessExclusive)
        .filter_map(|l| l.relation.clone())
        .collect();
    assert!(
        relations.contains("public.created_late"),
        "the new table is not named: {relations:?}"
    );
    assert!(
        relations
            .iter()
            .all(|r| !r.chars().all(|c| c.is_ascii_digit())),
        "a relation is still shown by oid: {relations:?}"
    );
}
