//! Seeding the example schemas: referential integrity and row counts.

mod seed_support;

use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};
use seed_support::{ECOMMERCE, SAAS, count, orphans};

fn options(seed: u64, scale: f64) -> SeedOptions {
    SeedOptions {
        seed,
        scale,
        hostile: false,
        progress: false,
    }
}

#[tokio::test]
async fn ecommerce_spec_loads_with_every_foreign_key_intact() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(ECOMMERCE).await.unwrap();
    let constraints =
        "SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname)
                       FROM pg_constraint WHERE connamespace = 'public'::regnamespace";
    let before: String = client.query_one(constraints, &[]).await.unwrap().get(0);
    let spec = SeedSpec::load(std::path::Path::new("seeds/ecommerce.toml")).unwrap();
    let report = seed_database(db.conn(), Some(&spec), &options(42, 0.05))
        .await
        .unwrap();
    // Keys and foreign keys set aside for the load are all back, unchanged.
    let after: String = client.query_one(constraints, &[]).await.unwrap().get(0);
    assert_eq!(before, after);

    // Fixed row counts are spec rows x scale.
    assert_eq!(count(&client, "customers").await, 1000);
    assert_eq!(count(&client, "addresses").await, 1250);
    assert_eq!(count(&client, "products").await, 100);
    assert_eq!(count(&client, "orders").await, 5000);
    // order_items: 1..=5 per order.
    let items = count(&client, "order_items").await;
    assert!((5000..=25000).contains(&items), "{items}");
    let per_order: (i64, i64) = {
        let r = client
            .query_one("SELECT min(n), max(n) FROM (SELECT count(*) n FROM order_items GROUP BY order_id) x", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(per_order.0 >= 1 && per_order.1 <= 5, "{per_order:?}");
    for (fk, n) in orphans(&client).await {
        assert_eq!(n, 0, "foreign key {fk} has {n} orphans");
    }
    assert_eq!(report.total_rows as i64, {
        let mut total = 0;
        for t in [
            "customers",
            "addresses",
            "products",
            "orders",
            "order_items",
            "payments",
        ] {
            total += count(&client, t).await;
        }
        total
    });
    // Identity sequences moved past the loaded ids: a plain insert works.
    client
        .batch_execute(
            "INSERT INTO customers (email, first_name, last_name) VALUES ('new@example.com', 'a', 'b')",
        )
        .await
        .unwrap();
    // Secondary indexes dropped for the load are back.
    let indexes: i64 = client
        .query_one("SELECT count(*) FROM pg_indexes WHERE indexname IN ('orders_customer_id_idx', 'orders_created_at_idx', 'addresses_customer_id_idx')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 3);
    // Checks hold: ordering, enum weights present.
    let bad: i64 = client
        .query_one(
            "SELECT count(*) FROM orders WHERE updated_at < created_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
}

#[tokio::test]
async fn saas_schema_loads_without_any_spec() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client.batch_execute(SAAS).await.unwrap();
    let report = seed_database(db.conn(), None, &options(1, 0.5))
        .await
        .unwrap();
    // Default 1000 rows per table, times scale.
    for t in ["tenants", "users", "memberships", "events"] {
        assert_eq!(count(&client, t).await, 500, "{t}");
    }
    assert_eq!(report.tables.len(), 4);
    for (fk, n) in orphans(&client).await {
        assert_eq!(n, 0, "foreign key {fk} has {n} orphans");
    }
}

#[tokio::test]
async fn tables_with_rows_are_left_alone_unless_listed() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE countries (code char(2) PRIMARY KEY, name text NOT NULL);
             INSERT INTO countries VALUES ('de', 'Germany'), ('fr', 'France');
             CREATE TABLE people (id int PRIMARY KEY, country char(2) NOT NULL REFERENCES countries);",
        )
        .await
        .unwrap();
    seed_database(db.conn(), None, &options(3, 0.1))
        .await
        .unwrap();
    assert_eq!(count(&client, "countries").await, 2);
    assert_eq!(count(&client, "people").await, 100);
    for (fk, n) in orphans(&client).await {
        assert_eq!(n, 0, "{fk}");
    }
}
