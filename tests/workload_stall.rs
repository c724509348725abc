//! Against real Postgres: a migration that holds ACCESS EXCLUSIVE
//! while the app serves makes its queries stall, and the traffic report
//! names the migration statement that was running.

use pg_rehearse::findings::CheckId;
use pg_rehearse::rehearsal::{Plan, rehearse_on};
use pg_rehearse::report::{ScenarioReport, Verdict};
use pg_rehearse::scenario::Scenario;
use pg_rehearse::testing::shared_server;

/// A scenario in a temporary folder: a migration holding ACCESS EXCLUSIVE
/// for a second, one app version reading the table.
fn scenario(app_settings: &str, expect: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::write(
        root.join("migrations/0001_customers.sql"),
        "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);\n\
         INSERT INTO customers (email) SELECT 'u' || i FROM generate_series(1, 50) i;\n",
    )
    .unwrap();
    // The lock is held until the migration's transaction commits, one
    // second later: every read issued meanwhile waits for it.
    std::fs::write(
        root.join("migrations/0002_slow.sql"),
        "ALTER TABLE customers ADD COLUMN note text;\nSELECT pg_sleep(1);\n",
    )
    .unwrap();
    std::fs::write(
        root.join("app.toml"),
        format!(
            "clients = 2\n{app_settings}\n[[query]]\nname = \"get_customer\"\n\
         sql = \"SELECT id, email FROM customers WHERE id = $1\"\n\
         params = [{{ from = \"customers.id\" }}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("scenario.toml"),
        format!("name = \"stall\"\n[migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
         [workloads]\napp = \"app.toml\"\n\
         [rollout]\nsteps = [\"serve app\", \"migrate\"]\nreplicas = 1\nphase_ms = 300\nstall_ms = 400\n\
         [expect]\n{expect}\n\
         # The one-second hold is this test's stall, not a budget question.\n\
         lock_budget_ms = 5000\n"),
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
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{:?} {:#?}",
        report.error,
        report.reasons
    );
    Some(report)
}

#[tokio::test]
async fn app_queries_queue_behind_the_migration_and_the_stall_names_it() {
    let dir = scenario("", "findings = [\"traffic-stall\"]");
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    // Lock findings (the sampler watches rollouts too) are tested in
    // locks_*; here only the compatibility and traffic checks count.
    let ids: Vec<CheckId> = report
        .findings
        .iter()
        .map(|f| f.check)
        .filter(|c| c.reads_rollout())
        .collect();
    assert_eq!(ids, vec![CheckId::TrafficStall], "{:#?}", report.findings);
    let traffic = report.traffic.unwrap();
    let worst = &traffic.stalls[0];
    assert_eq!(worst.query, "get_customer");
    assert!(worst.latency_us >= 400_000);
    assert!(
        !worst.during.is_empty() && worst.during.iter().all(|s| s.starts_with("0002:")),
        "{worst:?}"
    );
    let migrating = traffic
        .phases
        .iter()
        .find(|p| p.name == "migrate 0002")
        .unwrap();
    assert_eq!(worst.phase, migrating.index);
    // The statements of the migration are in the timeline's order.
    let lines: Vec<usize> = traffic.statements.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![1, 2]);
    // Per-phase stats: the migrating phase's max is the stall.
    let q = traffic
        .queries
        .iter()
        .find(|q| q.phase == migrating.index)
        .unwrap();
    assert!(q.max_us >= worst.latency_us - worst.latency_us / 100);
    assert_eq!(q.errors, 0);
}

#[tokio::test]
async fn an_app_with_a_lock_timeout_fails_instead_and_that_is_a_traffic_error() {
    let dir = scenario(
        "lock_timeout_ms = 100",
        "findings = [\"traffic-errors\"]\nallow = [\"traffic-stall\"]",
    );
    let Some(report) = rehearse(&dir).await else {
        return;
    };
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == CheckId::TrafficErrors)
        .collect();
    assert_eq!(errors.len(), 1, "{:#?}", report.findings);
    assert_eq!(errors[0].details["query"], "get_customer");
    assert_eq!(errors[0].details["sqlstate"], "55P03");
    // A lock timeout is not a compatibility problem.
    assert!(report.compat.unwrap().breakages.is_empty());
}
