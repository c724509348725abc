//! Against real Postgres: the rollout scenarios' compatibility
//! verdicts, each with the exact version, query, schema state and SQLSTATE,
//! and the traffic recorded per phase.

use std::path::Path;

use pg_rehearse::compat::{BreakageClass, CompatReport, Evidence};
use pg_rehearse::rehearsal::{Plan, rehearse_on};
use pg_rehearse::report::{ScenarioReport, Verdict};
use pg_rehearse::scenario::Scenario;
use pg_rehearse::testing::shared_server;

async fn rollout(name: &str) -> Option<ScenarioReport> {
    let server = shared_server()?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let plan = Plan::prepare(Scenario::load(&path).unwrap()).unwrap();
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{name}: {:?} {:#?} {:#?}",
        report.error,
        report.reasons,
        report.findings
    );
    Some(report)
}

/// A scenario that needs more connections than the server takes fails
/// before anything runs, saying how many and which flag raises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_too_small_for_the_rollout_is_reported_up_front() {
    let Some(server) = shared_server() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/expand-contract-rename");
    let mut plan = Plan::prepare(Scenario::load(&path).unwrap()).unwrap();
    for workload in &mut plan.scenario.workloads {
        workload.clients = 64;
    }
    plan.scenario.rollout.as_mut().unwrap().config.replicas = 16;
    let report = rehearse_on(
        &plan,
        &server,
        ScenarioReport::new(&plan.scenario.name, &plan.scenario.path),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Error);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("about 1111 connections")
            && error.contains("--max-connections 1114")
            && error.contains("expand-contract-rename"),
        "{error}"
    );
    assert!(report.stages.is_empty(), "nothing ran: {:?}", report.stages);
}

/// The live (plan-run) breakages as (class, version, query, state, SQLSTATE).
fn live(compat: &CompatReport) -> Vec<(BreakageClass, String, String, String, String)> {
    let mut list: Vec<_> = compat
        .breakages
        .iter()
        .filter(|b| b.live)
        .map(|b| {
            (
                b.class,
                b.version.clone(),
                b.query.clone(),
                b.state_label.clone(),
                b.sqlstate
                    .as_ref()
                    .map_or("-".into(), |s| s.code().to_string()),
            )
        })
        .collect();
    list.sort();
    list.dedup();
    list
}

fn row(
    class: BreakageClass,
    v: &str,
    q: &str,
    state: &str,
    code: &str,
) -> (BreakageClass, String, String, String, String) {
    (class, v.into(), q.into(), state.into(), code.into())
}

#[tokio::test]
async fn dropping_a_column_breaks_old_code_only() {
    let Some(report) = rollout("drop-column-old-reads").await else {
        return;
    };
    let compat = report.compat.unwrap();
    assert_eq!(compat.states, vec!["baseline", "after 0002"]);
    assert_eq!(
        live(&compat),
        vec![
            row(
                BreakageClass::OldOnNew,
                "old",
                "get_customer",
                "after 0002",
                "42703"
            ),
            row(
                BreakageClass::RollbackUnsafe,
                "old",
                "get_customer",
                "after 0002",
                "42703"
            ),
        ]
    );
    // The new code works on both schemas.
    assert!(
        compat.breakages.iter().all(|b| b.version == "old"),
        "{compat:#?}"
    );
    // The old clients really hit it, while serving on the migrated schema
    // and again after the rollback.
    for class in [BreakageClass::OldOnNew, BreakageClass::RollbackUnsafe] {
        let seen = compat.breakages.iter().find(|b| b.class == class).unwrap();
        assert!(seen.failed_executions > 0, "{seen:?}");
    }
    let traffic = report.traffic.unwrap();
    assert!(
        traffic
            .phases
            .iter()
            .any(|p| p.rollback && p.fleet == ["old", "old"])
    );
    let errors: u64 = traffic
        .queries
        .iter()
        .filter(|q| q.version == "old" && q.query == "get_customer")
        .map(|q| q.errors)
        .sum();
    assert!(errors > 0);
}

#[tokio::test]
async fn a_rename_breaks_both_directions() {
    let Some(report) = rollout("rename-column-both-ways").await else {
        return;
    };
    assert_eq!(
        live(&report.compat.unwrap()),
        vec![
            row(
                BreakageClass::OldOnNew,
                "old",
                "get_email",
                "after 0002",
                "42703"
            ),
            row(
                BreakageClass::NewOnOld,
                "new",
                "get_email_address",
                "baseline",
                "42703"
            ),
        ]
    );
}

#[tokio::test]
async fn old_inserts_fail_live_on_a_not_null_column_without_default() {
    let Some(report) = rollout("not-null-without-default").await else {
        return;
    };
    let compat = report.compat.unwrap();
    assert_eq!(
        live(&compat),
        vec![row(
            BreakageClass::OldOnNew,
            "old",
            "add_customer",
            "after 0002",
            "23502"
        )]
    );
    // PREPARE cannot see it: only the live workload does.
    assert_eq!(
        compat.breakages.iter().find(|b| b.live).unwrap().evidence,
        Evidence::Live
    );
}

#[tokio::test]
async fn deploying_before_the_migration_breaks_new_code() {
    let Some(report) = rollout("deploy-before-migrate").await else {
        return;
    };
    assert_eq!(
        live(&report.compat.unwrap()),
        vec![
            row(
                BreakageClass::NewOnOld,
                "new",
                "get_customer",
                "baseline",
                "42703"
            ),
            row(
                BreakageClass::NewOnOld,
                "new",
                "set_nickname",
                "baseline",
                "42703"
            ),
        ]
    );
}

#[tokio::test]
async fn safe_plans_break_nothing_they_run() {
    for name in ["add-nullable-column", "expand-contract-rename"] {
        let Some(report) = rollout(name).await else {
            return;
        };
        let compat = report.compat.unwrap();
        assert_eq!(live(&compat), vec![], "{name}");
        // Lock findings (no lock_timeout) are true and beside the point here:
        // no compatibility or traffic check may report anything.
        let breakages: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.check.reads_rollout())
            .collect();
        assert!(breakages.is_empty(), "{name}: {breakages:#?}");
        let traffic = report.traffic.unwrap();
        assert!(
            traffic.queries.iter().all(|q| q.errors == 0),
            "{name}: {traffic:#?}"
        );
        assert!(
            traffic
                .queries
                .iter()
                .any(|q| q.version == "new" && q.executions > 0)
        );
        if name == "expand-contract-rename" {
            assert_eq!(compat.states, vec!["baseline", "after 0002", "after 0003"]);
            // Not run by the plan, but in the matrix: old code after the
            // contract step (a rollback there would break).
            assert!(compat.breakages.iter().any(|b| !b.live
                && b.class == BreakageClass::RollbackUnsafe
                && b.query == "get_email"
                && b.state_label == "after 0003"));
        }
    }
}
