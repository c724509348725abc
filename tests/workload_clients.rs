//! Issue 5 against real Postgres: workload clients (named connections,
//! weighted queries, transactions, recorded executions with SQLSTATEs) and
//! the PREPARE probe of the compatibility matrix.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rehearse::compat::{CellVerdict, Prepared, compare, probe};
use rehearse::testing::fresh_database;
use rehearse::timeline::{Recorder, SqlState};
use rehearse::workload::{ClientPool, Workload, WorkloadRun};

const WORKLOAD: &str = r#"
clients = 2

[[query]]
name = "get_customer"
sql = "SELECT id, email FROM customers WHERE id = $1"
weight = 3
params = [{ from = "customers.id" }]

[[query]]
name = "report"
transaction = ["SELECT count(*) FROM customers WHERE id > $1", "SELECT pg_sleep(0.01)"]
params = [{ int = [0, 5] }]

[[query]]
name = "get_phone"
sql = "SELECT phone FROM customers WHERE id = $1"
params = [{ value = 1 }]
"#;

async fn setup(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL);
             INSERT INTO customers (email) SELECT 'u' || i FROM generate_series(1, 10) i;",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn clients_run_named_record_every_execution_and_stop() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let admin = db.connect().await;
    setup(&admin).await;
    let workload = Arc::new(Workload::parse("v1", WORKLOAD, Path::new("v1.toml")).unwrap());
    let run = WorkloadRun::new(db.conn().clone(), Recorder::new());
    run.prepare_samples(std::slice::from_ref(&workload))
        .await
        .unwrap();
    let pool = ClientPool::start(&run, &workload);

    // Both clients show up under their names; poll with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = admin
            .query(
                "SELECT application_name FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'rehearse-app-v1-%'
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let every_query_ran = {
            let done = run.executions();
            ["get_customer", "report", "get_phone"]
                .iter()
                .all(|q| done.iter().any(|e| e.query == *q))
        };
        if names == ["rehearse-app-v1-0", "rehearse-app-v1-1"] && every_query_ran {
            break;
        }
        assert!(Instant::now() < deadline, "clients not seen: {names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.stop().await;
    let executions = run.executions();
    let count = executions.len();
    for e in &executions {
        assert_eq!(e.version, "v1");
        match e.query.as_str() {
            "get_phone" => assert_eq!(e.sqlstate, Some(SqlState::UndefinedColumn), "{e:?}"),
            _ => assert_eq!(e.sqlstate, None, "{e:?}"),
        }
    }
    // The transaction ran both statements and committed.
    assert!(
        executions
            .iter()
            .any(|e| e.query == "report" && e.latency_us >= 10_000)
    );
    // Stopped means stopped: every client disconnected (the server notices
    // asynchronously), and then nothing new can have been recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'rehearse-app-v1-%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} client(s) still connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run.executions().len(), count);
}

#[tokio::test]
async fn prepare_describes_errors_and_changed_shapes() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    setup(&client).await;
    let workload = Arc::new(Workload::parse("v1", WORKLOAD, Path::new("v1.toml")).unwrap());
    let before = probe(&client, 0, std::slice::from_ref(&workload)).await;
    client
        .batch_execute("ALTER TABLE customers ALTER COLUMN email TYPE varchar(200)")
        .await
        .unwrap();
    let after = probe(&client, 1, std::slice::from_ref(&workload)).await;
    let get = |probes: &[rehearse::compat::Probe], q: &str| {
        probes
            .iter()
            .find(|p| p.query == q)
            .unwrap()
            .prepared
            .clone()
    };
    let Prepared::Error {
        sqlstate, message, ..
    } = get(&before, "get_phone")
    else {
        panic!("get_phone prepared")
    };
    assert_eq!(sqlstate, SqlState::UndefinedColumn);
    assert!(message.contains("phone"), "{message}");
    assert_eq!(
        compare(&get(&before, "get_customer"), &get(&after, "get_customer")),
        CellVerdict::Changed {
            changes: vec!["statement 1: result column `email` type text -> varchar".into()]
        }
    );
    assert_eq!(
        compare(&get(&before, "report"), &get(&after, "report")),
        CellVerdict::Ok
    );
}
