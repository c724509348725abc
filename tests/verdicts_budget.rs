//! The default lock budget against real Postgres: migrations that block the
//! application past the budget fail with no `[expect]` threshold set, and
//! the safe forms pass with no finding about relations the migration
//! created itself.

use pg_rehearse::findings::{CheckId, Severity};
use pg_rehearse::rehearsal::{Plan, rehearse_on};
use pg_rehearse::report::{ScenarioReport, Verdict};
use pg_rehearse::scenario::Scenario;
use pg_rehearse::testing::shared_server;

/// Rows of the seeded table: enough that building an index or rewriting the
/// table takes well over the 50 ms budget the blocking cases use, on a
/// loaded 2-core machine, and little enough to seed in about a second.
const ROWS: u32 = 200_000;

/// The application: point reads and point writes on `t`, two clients per
/// replica.
const APP: &str = "clients = 2\nrate = 50.0\n\
[[query]]\nname = \"get\"\nsql = \"SELECT id, v FROM t WHERE id = $1\"\nparams = [{ from = \"t.id\" }]\n\
[[query]]\nname = \"bump\"\nsql = \"UPDATE t SET v = v + 1 WHERE id = $1\"\nparams = [{ from = \"t.id\" }]\n";

/// A long read: holds ACCESS SHARE on `t` for 2.5 s, back to back.
const READER: &str = "clients = 1\n\
[[query]]\nname = \"report\"\ntransaction = [\"SELECT count(*) FROM t WHERE id < 10\", \"SELECT pg_sleep(2.5)\"]\n";

/// A scenario folder: the table, `pending` migrations (file name, SQL), the
/// workloads, the rollout steps and the `[expect]` body.
fn scenario(pending: &[(&str, &str)], steps: &str, expect: &str) -> tempfile::TempDir {
    scenario_with(pending, steps, expect, "")
}

/// [`scenario`] with more sections (`[replicas]`) or `[rollout]` keys
/// (`extra` goes right after the rollout's own keys).
fn scenario_with(
    pending: &[(&str, &str)],
    steps: &str,
    expect: &str,
    extra: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::write(
        root.join("migrations/0001_t.sql"),
        format!(
            "CREATE TABLE t (id serial PRIMARY KEY, v int NOT NULL, note varchar(100));\n\
             INSERT INTO t (v, note) SELECT i % 1000, 'n' || i FROM generate_series(1, {ROWS}) i;\n"
        ),
    )
    .unwrap();
    for (name, sql) in pending {
        std::fs::write(root.join("migrations").join(name), sql).unwrap();
    }
    std::fs::write(root.join("app.toml"), APP).unwrap();
    std::fs::write(root.join("reader.toml"), READER).unwrap();
    std::fs::write(
        root.join("scenario.toml"),
        format!(
            "name = \"budget\"\n[migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
             [workloads]\napp = \"app.toml\"\nreader = \"reader.toml\"\n\
             [rollout]\nsteps = {steps}\nreplicas = 2\nphase_ms = 300\nstall_ms = 5000\n{extra}\n\
             [expect]\n{expect}\n"
        ),
    )
    .unwrap();
    dir
}

async fn rehearse(dir: &tempfile::TempDir) -> Option<ScenarioReport> {
    let server = shared_server()?;
    let plan = Plan::prepare(Scenario::load(dir.path()).unwrap()).unwrap();
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    assert_eq!(report.error, None);
    Some(report)
}

fn budget_findings(report: &ScenarioReport) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.check == CheckId::LockBudget)
        .map(|f| f.message.as_str())
        .collect()
}

/// Plain CREATE INDEX while the app writes, and a volatile default that
/// rewrites the table: each fails on the budget alone, naming the table
/// and the mode (not the index being built, not the toast table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_migrations_fail_on_the_budget_alone() {
    let cases = [
        (
            "0002_index.sql",
            "CREATE INDEX t_v ON t (v);\n",
            "SHARE on public.t",
        ),
        (
            "0002_uuid.sql",
            "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();\n",
            "ACCESS EXCLUSIVE on public.t",
        ),
    ];
    for (file, sql, names) in cases {
        let dir = scenario(
            &[(file, sql)],
            "[\"serve app\", \"migrate\"]",
            // A budget the build and the rewrite exceed at this size; the
            // default (1000 ms) needs about 1M rows here.
            "lock_budget_ms = 50",
        );
        let Some(report) = rehearse(&dir).await else {
            return;
        };
        assert_eq!(
            report.verdict,
            Verdict::Fail,
            "{file}: {:#?}",
            report.findings
        );
        let budget = budget_findings(&report);
        assert!(
            budget.iter().any(|m| m.contains(names)),
            "{file}: {budget:#?}"
        );
        assert!(
            report.reasons.iter().any(|r| r.starts_with("lock-budget:")),
            "{file}: {:?}",
            report.reasons
        );
        // Only the table: no index, toast table or bare oid named.
        for f in &report.findings {
            assert!(
                !f.message.contains("t_v ") && !f.message.contains("pg_toast"),
                "{f:?}"
            );
        }
    }
}

/// An ALTER queued behind a 2.5 s read stalls every later query on the
/// table: with the default budget, the application's waits fail the
/// scenario, and `lock-queue` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_queue_behind_a_long_read_fails_by_default() {
    let dir = scenario(
        &[("0002_add.sql", "ALTER TABLE t ADD COLUMN c int;\n")],
        "[\"serve app\", \"deploy reader 1\", \"migrate\"]",
        "",
    );
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    assert_eq!(report.verdict, Verdict::Fail, "{:#?}", report.findings);
    let budget = budget_findings(&report);
    assert!(
        budget.iter().any(|m| m.contains("application lock wait")),
        "{budget:#?}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == CheckId::LockQueue),
        "{:#?}",
        report.findings
    );
}

/// The safe forms pass with the default budget: a nullable column, a
/// widened varchar, a constant default, an index built concurrently, and a
/// brand-new table with its index (its locks block nobody: no finding
/// names it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_migrations_pass_by_default_and_new_relations_are_not_reported() {
    let dir = scenario(
        &[
            ("0002_nullable.sql", "ALTER TABLE t ADD COLUMN nick text;\n"),
            (
                "0003_widen.sql",
                "ALTER TABLE t ALTER COLUMN note TYPE varchar(200);\n",
            ),
            (
                "0004_default.sql",
                "ALTER TABLE t ADD COLUMN flag boolean NOT NULL DEFAULT false;\n",
            ),
            (
                "0005_cic.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY t_v_cic ON t (v);\n",
            ),
            (
                "0006_audit.sql",
                "CREATE TABLE audit (id bigserial PRIMARY KEY, t_id int, body text);\n\
                 INSERT INTO audit (t_id, body) SELECT id, repeat('x', 3000) FROM t WHERE id <= 2000;\n\
                 CREATE INDEX audit_t_id ON audit (t_id);\n",
            ),
        ],
        "[\"serve app\", \"migrate\", \"deploy app\"]",
        "",
    );
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{:?} {:#?}",
        report.reasons,
        report.findings
    );
    assert!(budget_findings(&report).is_empty());
    for f in &report.findings {
        assert!(
            !f.message.contains("audit") && f.severity != Severity::Error,
            "{f:?}"
        );
    }
    let sampled = report.locks.as_ref().unwrap().sampled.as_ref().unwrap();
    for h in &sampled.holds {
        assert!(
            h.relation == "public.t" || !h.holder.is_migration(),
            "a migration hold on a relation that did not exist before: {h:?}"
        );
        assert!(!h.relation.chars().all(|c| c.is_ascii_digit()), "{h:?}");
    }
}

/// The scenario's runner performs the rollout's `migrate` step: a job with
/// `lock_timeout_ms = 500` queued behind a 2.5 s read gives up with 55P03
/// after about half a second (not after the read), and the rollout halts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_lock_timeout_fails_fast_and_halts_the_rollout() {
    let dir = scenario_with(
        &[("0002_add.sql", "ALTER TABLE t ADD COLUMN c int;\n")],
        "[\"serve app\", \"deploy reader 1\", \"migrate\", \"deploy app\"]",
        "findings = [\"rollout-halt\"]\nallow = [\"replica-errors\", \"bookkeeping\"]",
        "[replicas]\nrunner = \"job\"\nlock_timeout_ms = 500\n",
    );
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{:?} {:#?}",
        report.reasons,
        report.findings
    );
    let race = report.race.as_ref().expect("the job's record");
    assert_eq!(race.runner, "job");
    let timeline = &race.timeline;
    let begun = timeline
        .events
        .iter()
        .find(|e| matches!(&e.kind, pg_rehearse::timeline::EventKind::Phase { name, .. } if name.starts_with("migrate")))
        .map(|e| e.at_us)
        .unwrap();
    let failed = timeline
        .events
        .iter()
        .find_map(|e| match &e.kind {
            pg_rehearse::timeline::EventKind::Failed { sqlstate, .. } => {
                Some((e.at_us, sqlstate.clone()))
            }
            _ => None,
        })
        .expect("the job did not fail");
    assert_eq!(
        failed.1.map(|s| s.code().to_string()).as_deref(),
        Some("55P03")
    );
    // Gave up on its lock_timeout, well before the 2.5 s read ended.
    let waited_ms = (failed.0 - begun) / 1_000;
    assert!((450..2_000).contains(&waited_ms), "{waited_ms} ms");
    // Halted: the deploy after the failed migration never ran.
    let phases: Vec<&str> = report
        .traffic
        .as_ref()
        .unwrap()
        .phases
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        !phases.iter().any(|p| p.starts_with("deploy app")),
        "{phases:?}"
    );
}

/// A startup-coupled runner in a rollout: three new replicas each migrate
/// as they start, racing each other while the old version serves. One
/// report carries the race (the column added twice) and what the traffic
/// paid for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_startup_coupled_rollout_reports_the_race_and_the_traffic_together() {
    let dir = scenario_with(
        &[(
            "0002_add.sql",
            "ALTER TABLE t ADD COLUMN c int;\nSELECT pg_sleep(0.6);\n",
        )],
        "[\"serve app\", \"migrate\"]",
        "findings = [\"replica-errors\", \"traffic-stall\"]\nallow = [\"rollout-halt\", \"bookkeeping\", \"blocked-backends\", \"lock-queue\"]",
        "[replicas]\nrunner = \"naive\"\ncount = 3\n",
    );
    // A stall here is a query slower than 300 ms.
    let text = std::fs::read_to_string(dir.path().join("scenario.toml"))
        .unwrap()
        .replace("stall_ms = 5000", "stall_ms = 300");
    std::fs::write(dir.path().join("scenario.toml"), text).unwrap();
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{:?} {:#?}",
        report.reasons,
        report.findings
    );
    let race = report.race.as_ref().expect("the replicas' record");
    assert_eq!((race.runner.as_str(), race.replicas), ("naive", 3));
    let errors = report
        .findings
        .iter()
        .find(|f| f.check == CheckId::ReplicaErrors)
        .unwrap();
    assert!(errors.message.contains("42701"), "{}", errors.message);
    assert!(!report.traffic.as_ref().unwrap().stalls.is_empty());
}

/// `deadline_s` bounds the whole rollout: a migration that would run 20 s
/// is stopped with its clients, and the rehearsal says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_deadline_is_honoured() {
    let dir = scenario_with(
        &[("0002_slow.sql", "SELECT pg_sleep(20);\n")],
        "[\"serve app\", \"migrate\"]",
        "",
        "deadline_s = 2",
    );
    let Some(server) = shared_server() else {
        return;
    };
    let plan = Plan::prepare(Scenario::load(dir.path()).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    let error = report.error.unwrap_or_default();
    assert!(error.contains("deadline_s = 2"), "{error}");
    // Seeding the template (when no other test built it) plus the 2 s,
    // far below the 20 s sleep or the clients' 30 s statement timeout.
    assert!(started.elapsed().as_secs() < 15, "{:?}", started.elapsed());
}

/// The longest wait of an application query behind the migration job, and
/// the backfill phase's name.
fn app_wait_and_phase(report: &ScenarioReport) -> (u64, String) {
    let sampled = report.locks.as_ref().unwrap().sampled.as_ref().unwrap();
    let wait = sampled
        .waits
        .iter()
        .filter(|w| !w.holder.is_migration())
        .filter(|w| w.blocked_by.iter().any(|b| b.holder.is_migration()))
        .map(|w| w.wait_us)
        .max()
        .unwrap_or(0);
    let phase = report
        .traffic
        .as_ref()
        .unwrap()
        .phases
        .iter()
        .find(|p| p.name.starts_with("backfill") || p.name.starts_with("migrate"))
        .map(|p| p.name.clone())
        .unwrap_or_default();
    (wait, phase)
}

/// A backfill of 100,000 rows in one UPDATE keeps every touched row locked
/// until it commits: app updates of those rows wait for its whole run. The
/// same backfill as a `backfill` step, 5,000 rows per transaction, holds
/// each row for one batch: app updates wait about one batch at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_backfill_blocks_app_updates_for_about_one_batch() {
    let single = scenario(
        &[(
            "0002_backfill.sql",
            "UPDATE t SET note = 'done' WHERE id <= 100000;\n",
        )],
        "[\"serve app\", \"migrate\"]",
        "allow = [\"lock-budget\", \"blocked-backends\"]",
    );
    let batched = scenario(
        &[(
            "0002_backfill.sql",
            "UPDATE t SET note = 'done' WHERE id IN (SELECT id FROM t WHERE id <= 100000 \
             AND note IS DISTINCT FROM 'done' ORDER BY id LIMIT {batch});\n",
        )],
        "[\"serve app\", \"backfill 0002 batch=5000 pause_ms=20\"]",
        "allow = [\"lock-budget\", \"blocked-backends\"]",
    );
    let Some(single) = rehearse(&single).await else {
        return;
    };
    let Some(batched) = rehearse(&batched).await else {
        return;
    };
    let (single_wait, single_phase) = app_wait_and_phase(&single);
    let (batched_wait, batched_phase) = app_wait_and_phase(&batched);
    // 20 batches of 5,000 and the final one that changes nothing.
    assert!(
        batched_phase.starts_with("backfill 0002 (21 batches, 100000 rows"),
        "{batched_phase}"
    );
    let longest_batch_ms: u64 = batched_phase
        .split("longest batch ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    // The single UPDATE's run, from its statement span.
    let run_us = single
        .traffic
        .as_ref()
        .unwrap()
        .statements
        .iter()
        .map(|s| s.end_us - s.start_us)
        .max()
        .unwrap();
    eprintln!(
        "single: {single_phase}, run {} ms, longest app wait {} ms; batched: {batched_phase}, longest app wait {} ms",
        run_us / 1_000,
        single_wait / 1_000,
        batched_wait / 1_000
    );
    assert!(
        single_wait * 2 > run_us,
        "the single UPDATE blocked for its whole run"
    );
    // About one batch: the batch, plus one sampling interval either side.
    assert!(
        batched_wait / 1_000 <= longest_batch_ms + 30,
        "{} ms vs a longest batch of {longest_batch_ms} ms",
        batched_wait / 1_000
    );
    assert!(batched_wait < single_wait);
}

/// `fault` on the rollout's job: the job is killed in the middle of CREATE
/// INDEX CONCURRENTLY, the rollout halts, and the INVALID index it leaves
/// is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_the_job_leaves_an_invalid_index_that_is_reported() {
    let dir = scenario_with(
        &[(
            "0002_cic.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY t_v_cic ON t (v);\n",
        )],
        "[\"serve app\", \"migrate\", \"deploy app\"]",
        "findings = [\"invalid-index\", \"rollout-halt\"]\nallow = [\"replica-errors\", \"bookkeeping\"]",
        "[replicas]\nrunner = \"job\"\n[replicas.fault]\nstatement = 0\nrerun = false\n",
    );
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{:?} {:#?}",
        report.reasons,
        report.findings
    );
    let race = report.race.as_ref().unwrap();
    assert_eq!(race.invalid_indexes, vec!["public.t_v_cic".to_string()]);
}
