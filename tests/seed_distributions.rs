//! Distributions: zipf skew over parents and NULL fractions, within stated
//! tolerances.

mod seed_support;

use std::path::Path;

use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};

#[tokio::test]
async fn zipf_skew_and_null_fraction_match_the_spec() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE customers (id bigint PRIMARY KEY, phone text);
             CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, note text);",
        )
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        r#"
[tables.customers]
rows = 1000
[tables.customers.columns.phone]
null_fraction = 0.3
[tables.orders]
rows = 20000
[tables.orders.columns.customer_id]
distribution = { kind = "zipf", exponent = 1.0 }
"#,
        Path::new("seeds/test.toml"),
    )
    .unwrap();
    seed_database(
        db.conn(),
        Some(&spec),
        &SeedOptions {
            seed: 9,
            progress: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Zipf(n = 1000, s = 1): the top 1% of customers (10) get
    // H(10) / H(1000) = 2.929 / 7.485 = 39.1% of orders. Tolerance: 4 points.
    let h = |n: u32| (1..=n).map(|k| 1.0 / f64::from(k)).sum::<f64>();
    let expected = h(10) / h(1000);
    let share: f64 = client
        .query_one(
            "SELECT (sum(n) FILTER (WHERE rk <= 10))::float8 / sum(n)::float8
             FROM (SELECT count(*) n, row_number() OVER (ORDER BY count(*) DESC) rk
                   FROM orders GROUP BY customer_id) x",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (share - expected).abs() < 0.04,
        "top-1% share {share:.3}, expected {expected:.3}"
    );

    // NULL fraction 0.3 over 1000 rows: within 0.05.
    let nulls: f64 = client
        .query_one(
            "SELECT avg((phone IS NULL)::int)::float8 FROM customers",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((nulls - 0.3).abs() < 0.05, "null fraction {nulls:.3}");
    // A nullable column without null_fraction has no NULLs in normal mode.
    let note_nulls: i64 = client
        .query_one("SELECT count(*) FROM orders WHERE note IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(note_nulls, 0);
}

#[tokio::test]
async fn weighted_values_and_check_ranges_are_respected() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY,
                             status text NOT NULL CHECK (status IN ('a', 'b', 'c')),
                             qty int NOT NULL CHECK (qty BETWEEN 3 AND 7),
                             price numeric(6,2) NOT NULL CHECK (price > 0),
                             code varchar(12) NOT NULL UNIQUE)",
        )
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        "[tables.t]\nrows = 10000\n[tables.t.columns.status]\nvalues = { a = 8, b = 2, c = 0 }\n",
        Path::new("seeds/test.toml"),
    )
    .unwrap();
    seed_database(
        db.conn(),
        Some(&spec),
        &SeedOptions {
            seed: 1,
            progress: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let share_a: f64 = client
        .query_one("SELECT avg((status = 'a')::int)::float8 FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert!((share_a - 0.8).abs() < 0.03, "{share_a}");
    let c: i64 = client
        .query_one("SELECT count(*) FROM t WHERE status = 'c'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(c, 0);
    let (lo, hi): (i32, i32) = {
        let r = client
            .query_one("SELECT min(qty), max(qty) FROM t", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((lo, hi), (3, 7));
}
