//! Against real Postgres: workload clients (named connections,
//! weighted queries, transactions, recorded executions with SQLSTATEs) and
//! the PREPARE probe of the compatibility matrix.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_rehearse::compat::{CellVerdict, Prepared, compare, probe};
use pg_rehearse::testing::fresh_database;
use pg_rehearse::timeline::{Recorder, SqlState};
use pg_rehearse::workload::{ClientPool, ParamSource, Workload, WorkloadRun};

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
    let workload = Workload::parse("v1", WORKLOAD, Path::new("v1.toml")).unwrap();
    let run = WorkloadRun::new(db.conn().clone(), Recorder::new());
    let workload = Arc::new(run.prepare(&[workload]).await.unwrap().remove(0));
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
    let get = |probes: &[pg_rehearse::compat::Probe], q: &str| {
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

/// The shop the `tests/fixtures/sqlx-shop` offline files were "prepared"
/// against: a unique `varchar(6)`, a `char(2)`, an enum and a foreign key,
/// each of which a naive generated value would break.
const SHOP: &str = "
CREATE TYPE order_status AS ENUM ('new', 'paid', 'shipped');
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email varchar(6) NOT NULL UNIQUE,
    region char(2) NOT NULL DEFAULT 'eu',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total numeric(10, 2) NOT NULL,
    status order_status NOT NULL DEFAULT 'new',
    placed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (email, region)
SELECT 'u' || i, (ARRAY['eu', 'us'])[1 + i % 2] FROM generate_series(1, 50) i;
INSERT INTO orders (customer_id, total, placed_at)
SELECT 1 + i % 50, i, now() - i * interval '1 hour' FROM generate_series(1, 200) i;
";

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn imported_sqlx_queries_run_live_on_inferred_parameters() {
    let Some(db) = fresh_database().await else {
        return;
    };
    let admin = db.connect().await;
    admin.batch_execute(SHOP).await.unwrap();
    let (customers, orders) = (
        count(&admin, "customers").await,
        count(&admin, "orders").await,
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shop.toml");
    let workload = Workload::parse("v1", "clients = 2\nsqlx = \"sqlx-shop\"\n", &path).unwrap();
    let run = WorkloadRun::new(db.conn().clone(), Recorder::new());
    let workload = Arc::new(run.prepare(&[workload]).await.unwrap().remove(0));
    let query = |prefix: &str| {
        workload
            .queries
            .iter()
            .find(|q| q.name.starts_with(prefix))
            .unwrap()
    };
    // The order's customer comes from the parent table, not a generator.
    assert_eq!(
        query("sqlx-34a15d641393").params[0],
        ParamSource::From("customers.id".into())
    );
    // A range type rehearse cannot generate, compared with no column.
    let range = query("sqlx-bce8798bd88c");
    assert_eq!(range.weight, 0);
    assert!(
        range
            .note
            .as_deref()
            .is_some_and(|n| n.contains("Int4Range")),
        "{:?}",
        range.note
    );
    let live: Vec<String> = workload
        .queries
        .iter()
        .filter(|q| q.weight > 0)
        .map(|q| q.name.clone())
        .collect();
    assert_eq!(live.len(), 6, "{live:?}");

    let pool = ClientPool::start(&run, &workload);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = run.executions();
        let ok = |q: &String| {
            done.iter()
                .filter(|e| &e.query == q && e.sqlstate.is_none())
                .count()
        };
        if live.iter().all(|q| ok(q) >= 5) {
            break;
        }
        if let Some(e) = done.iter().find(|e| e.sqlstate.is_some()) {
            panic!("{e:?}");
        }
        assert!(Instant::now() < deadline, "not every query ran: {done:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.stop().await;
    let executions = run.executions();
    for e in &executions {
        assert_eq!(e.sqlstate, None, "{e:?}");
        assert_ne!(e.query, range.name, "a prepared-only query ran");
    }
    assert!(count(&admin, "customers").await > customers);
    assert!(count(&admin, "orders").await > orders);
}
