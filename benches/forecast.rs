//! How good is the forecast? Five kinds of statement are timed at three
//! small sizes, fitted, forecast at a much larger size, and then really run
//! at that size. Prints the error per kind and the median.
//!
//! `cargo bench --bench forecast` (sizes: `FORECAST_ROWS`, default
//! 1,000,000 rows for the real run; the fit uses 1/40, 1/20 and 1/10 of
//! it). Each timing is the fastest of three, through the same
//! `pg_rehearse::forecast::measure` code a rehearsal uses (wall clock,
//! statement by statement, each migration in its own transaction).

use std::path::PathBuf;

use pg_rehearse::forecast::measure::{Timing, forecast, time_statements};
use pg_rehearse::forecast::{StatementKind, human_duration};
use pg_rehearse::migrate::{Migration, MigrationKind, Statement};

const KINDS: &[(&str, &str)] = &[
    ("index build", "CREATE INDEX child_v ON child (v)"),
    (
        "table rewrite",
        "ALTER TABLE child ALTER COLUMN amount TYPE int8",
    ),
    (
        "FK validation",
        "ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id)",
    ),
    (
        "SET NOT NULL scan",
        "ALTER TABLE child ALTER COLUMN note SET NOT NULL",
    ),
    ("unbatched backfill", "UPDATE child SET amount = amount + 1"),
];

fn migration(sql: &str) -> Migration {
    Migration {
        version: "1".into(),
        description: "bench".into(),
        kind: MigrationKind::Versioned,
        path: PathBuf::from("bench.sql"),
        statements: vec![Statement {
            sql: sql.into(),
            line: 1,
        }],
        transactional: true,
        down: None,
    }
}

async fn load(client: &tokio_postgres::Client, rows: u64) {
    let parents = (rows / 10).max(1);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS child; DROP TABLE IF EXISTS parent;
             CREATE TABLE parent (id int8 PRIMARY KEY);
             INSERT INTO parent SELECT generate_series(1, {parents});
             CREATE TABLE child (id int8 PRIMARY KEY, parent_id int8, v int8, amount int4, note text);
             INSERT INTO child SELECT g, 1 + (g * 7919) % {parents}, (g * 104729) % 1000003,
                    g % 1000, 'note ' || g FROM generate_series(1::int8, {rows}) g;"
        ))
        .await
        .expect("loading");
    client
        .batch_execute("VACUUM ANALYZE parent")
        .await
        .expect("vacuum");
    client
        .batch_execute("VACUUM ANALYZE child")
        .await
        .expect("vacuum");
}

/// Fastest of three runs of `sql`, undone after each (DROP for the index,
/// the constraint; otherwise a reload is not needed: the others are
/// idempotent on this data or rolled back below).
async fn time_kind(client: &tokio_postgres::Client, sql: &str) -> Timing {
    let mut best: Option<Timing> = None;
    for _ in 0..3 {
        let timing = time_statements(client, &[migration(sql)])
            .await
            .expect("statement runs")
            .remove(0);
        // Undo, so that the next run does the same work.
        let undo = match StatementKind::of(sql) {
            StatementKind::IndexBuild => "DROP INDEX child_v",
            StatementKind::ForeignKeyValidation => "ALTER TABLE child DROP CONSTRAINT child_parent",
            StatementKind::Scan => "ALTER TABLE child ALTER COLUMN note DROP NOT NULL",
            StatementKind::TableRewrite => "ALTER TABLE child ALTER COLUMN amount TYPE int4",
            _ => "VACUUM child",
        };
        client.batch_execute(undo).await.expect("undo");
        if best
            .as_ref()
            .is_none_or(|b| timing.duration_us < b.duration_us)
        {
            best = Some(timing);
        }
    }
    best.expect("three runs")
}

async fn time_all(client: &tokio_postgres::Client, rows: u64) -> Vec<Timing> {
    load(client, rows).await;
    let mut out = Vec::new();
    for (_, sql) in KINDS {
        out.push(time_kind(client, sql).await);
    }
    out
}

fn main() {
    let real_rows: u64 = std::env::var("FORECAST_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let Some(db) = pg_rehearse::testing::fresh_database().await else {
            return;
        };
        let client = db.connect().await;
        let mut sizes = Vec::new();
        for divisor in [40, 20, 10] {
            sizes.push(time_all(&client, real_rows / divisor).await);
        }
        let report = forecast("bench", "rows", &sizes, &|_| Some(real_rows as f64));
        let real = time_all(&client, real_rows).await;
        println!(
            "{:<20} {:>12} {:>26} {:>12} {:>8}",
            "kind", "fit on", "forecast (interval)", "real", "error"
        );
        let mut errors = Vec::new();
        for ((label, _), (f, r)) in KINDS.iter().zip(report.statements.iter().zip(&real)) {
            let Some(d) = f.duration else {
                println!("{label:<20} no forecast");
                continue;
            };
            let error = (d.point_us - r.duration_us).abs() / r.duration_us;
            errors.push(error);
            println!(
                "{:<20} {:>12} {:>26} {:>12} {:>7.0}%{}",
                label,
                format!("{}-{} rows", real_rows / 40, real_rows / 10),
                format!(
                    "{} ({} - {})",
                    human_duration(d.point_us),
                    human_duration(d.low_us),
                    human_duration(d.high_us)
                ),
                human_duration(r.duration_us),
                error * 100.0,
                if d.low_us <= r.duration_us && r.duration_us <= d.high_us {
                    ""
                } else {
                    "  outside the interval"
                }
            );
        }
        errors.sort_by(f64::total_cmp);
        if let Some(median) = errors.get(errors.len() / 2) {
            println!(
                "median error {:.0}%, worst {:.0}% (target: median <= 25%, every kind <= 50%), real run at {real_rows} rows",
                median * 100.0,
                errors.last().copied().unwrap_or(0.0) * 100.0
            );
        }
    });
}
