//! Awkward schemas: FK cycles, self-references, hostile identifiers, types.

mod seed_support;

use std::path::Path;

use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};
use seed_support::{count, orphans};

fn options() -> SeedOptions {
    SeedOptions {
        seed: 11,
        scale: 1.0,
        hostile: false,
        progress: false,
    }
}

#[tokio::test]
async fn cyclic_foreign_keys_are_broken_through_nullable_columns() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE departments (id int PRIMARY KEY, name text NOT NULL, head_id int);
             CREATE TABLE employees (id int PRIMARY KEY, department_id int NOT NULL REFERENCES departments,
                                     manager_id int REFERENCES employees, name text NOT NULL);
             ALTER TABLE departments ADD FOREIGN KEY (head_id) REFERENCES employees;",
        )
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        "[tables.departments]\nrows = 50\n[tables.employees]\nrows = 2000\n",
        Path::new("seeds/cycle.toml"),
    )
    .unwrap();
    seed_database(db.conn(), Some(&spec), &options())
        .await
        .unwrap();
    assert_eq!(count(&client, "departments").await, 50);
    assert_eq!(count(&client, "employees").await, 2000);
    // The deferred keys were filled afterwards, not left NULL.
    let unfilled: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM departments WHERE head_id IS NULL)
                  + (SELECT count(*) FROM employees WHERE manager_id IS NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unfilled, 0);
    for (fk, n) in orphans(&client).await {
        assert_eq!(n, 0, "{fk}");
    }
}

#[tokio::test]
async fn a_cycle_of_not_null_keys_is_refused_clearly() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY, b_id int NOT NULL);
             CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a);
             ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;",
        )
        .await
        .unwrap();
    let error = seed_database(db.conn(), None, &options())
        .await
        .unwrap_err();
    assert!(error.is_bad_input());
    assert!(error.to_string().contains("cycle"), "{error}");
}

#[tokio::test]
async fn quoted_spaced_unicode_and_reserved_identifiers_round_trip() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            r#"CREATE SCHEMA "Shop Data";
               CREATE TABLE "Shop Data"."order" ("select" int PRIMARY KEY, "user name" text NOT NULL,
                                                 "qu""ote" varchar(20), "ünïcødé" numeric(8,3));
               CREATE TABLE "Shop Data"."línea ""item""" (id bigserial PRIMARY KEY,
                   "from" int NOT NULL REFERENCES "Shop Data"."order" ("select"),
                   "Group" text CHECK ("Group" IN ('it''s', 'a "b"')));
               CREATE INDEX "weird idx" ON "Shop Data"."línea ""item""" ("Group");"#,
        )
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        r#"
[tables."Shop Data.order"]
rows = 300
[tables."Shop Data.order".columns."qu\"ote"]
null_fraction = 0.5
[tables."Shop Data.línea \"item\""]
rows = 700
"#,
        Path::new("seeds/weird.toml"),
    )
    .unwrap();
    seed_database(db.conn(), Some(&spec), &options())
        .await
        .unwrap();
    assert_eq!(count(&client, r#""Shop Data"."order""#).await, 300);
    assert_eq!(count(&client, r#""Shop Data"."línea ""item""""#).await, 700);
    let groups: i64 = client
        .query_one(
            r#"SELECT count(DISTINCT "Group") FROM "Shop Data"."línea ""item""""#,
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(groups, 2);
    for (fk, n) in orphans(&client).await {
        assert_eq!(n, 0, "{fk}");
    }
}

#[tokio::test]
async fn spec_errors_against_the_schema_name_file_line_and_field() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, email text NOT NULL, kind text CHECK (kind IN ('x', 'y')))")
        .await
        .unwrap();
    let cases = [
        (
            "[tables.nope]\nrows = 1\n",
            "seeds/e.toml:1:9: tables.nope: unknown table `nope`",
        ),
        (
            "[tables.t.columns.emial]\nnull_fraction = 0.1\n",
            "seeds/e.toml:1:19: tables.t.columns.emial: unknown column `emial` in table t",
        ),
        (
            "[tables.t.columns.email]\nnull_fraction = 0.1\n",
            "seeds/e.toml:2:17: tables.t.columns.email.null_fraction: column is NOT NULL",
        ),
        (
            "[tables.t.columns.kind]\nvalues = [\"x\", \"z\"]\n",
            "seeds/e.toml:2:10: tables.t.columns.kind.values: `z` is not allowed by the column's check constraint",
        ),
        (
            "[tables.t.columns.id]\nmin = -5000000000\n",
            "seeds/e.toml:2:7: tables.t.columns.id.min: ",
        ),
    ];
    for (text, expected) in cases {
        let spec = SeedSpec::parse(text, Path::new("seeds/e.toml")).unwrap();
        let error = seed_database(db.conn(), Some(&spec), &options())
            .await
            .unwrap_err();
        assert!(error.is_bad_input(), "{error}");
        assert!(
            error.to_string().starts_with(expected),
            "{error}\nexpected: {expected}"
        );
    }
    let long = "x".repeat(64);
    let spec = SeedSpec::parse(
        &format!("[tables.{long}]\nrows = 1\n"),
        Path::new("seeds/e.toml"),
    )
    .unwrap();
    let error = seed_database(db.conn(), Some(&spec), &options())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("64 bytes; postgres identifiers are at most 63 bytes"),
        "{error}"
    );
    assert_eq!(
        count(&client, "t").await,
        0,
        "a failed seed leaves nothing behind"
    );
}

#[tokio::test]
async fn every_supported_type_loads() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
             CREATE TABLE everything (
                 id uuid PRIMARY KEY, b bool NOT NULL, s smallint NOT NULL, i int NOT NULL, l bigint NOT NULL,
                 r real NOT NULL, d double precision NOT NULL, n numeric NOT NULL, n2 numeric(5,4) NOT NULL,
                 t text NOT NULL, v varchar(3) NOT NULL, c char(4) NOT NULL, by bytea NOT NULL,
                 dt date NOT NULL, ts timestamp NOT NULL, tz timestamptz NOT NULL, tm time NOT NULL,
                 iv interval NOT NULL, j json NOT NULL, jb jsonb NOT NULL, ip inet NOT NULL,
                 m mood NOT NULL, p positive_int NOT NULL, arr int[] NOT NULL, tags text[] NOT NULL,
                 pt point, gen_col int GENERATED ALWAYS AS (i + 1) STORED
             );",
        )
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        "[tables.everything]\nrows = 2000\n",
        Path::new("seeds/types.toml"),
    )
    .unwrap();
    seed_database(db.conn(), Some(&spec), &options())
        .await
        .unwrap();
    assert_eq!(count(&client, "everything").await, 2000);
    let ok: bool = client
        .query_one("SELECT bool_and(abs(n2) < 10 AND length(v) <= 3 AND p > 0 AND gen_col = i + 1) FROM everything", &[])
        .await
        .unwrap()
        .get(0);
    assert!(ok);
}
