//! Seeding from captured statistics reproduces the captured shape: capture
//! a database of known shape, seed an empty copy of its schema from the
//! snapshot, ANALYZE, capture again and compare column by column.

use std::sync::Arc;

use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};
use pg_rehearse::stats::{CaptureOptions, ColumnStats, capture};

const DDL: &str = "
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    status text NOT NULL,
    note text,
    created_at timestamptz NOT NULL,
    score int4,
    amount numeric(12,2));";

/// 60,000 rows: skew, 30 % NULLs, a timestamp rising with the physical
/// order, a uniform integer, a skewed amount, all-distinct e-mails.
const DATA: &str = "
INSERT INTO orders
SELECT g, 'person' || g || '@mail.example',
       CASE WHEN g % 10 < 7 THEN 'paid' WHEN g % 10 < 9 THEN 'pending' ELSE 'cancelled' END,
       CASE WHEN g % 10 < 3 THEN NULL ELSE 'note ' || (g % 5000) END,
       timestamptz '2024-01-01' + g * interval '1 minute',
       (g * 7919) % 1000,
       round((((g * 31) % 10000)::numeric ^ 2) / 10000, 2)
  FROM generate_series(1, 60000) g;
ANALYZE orders;";

#[tokio::test]
async fn seeding_from_a_snapshot_reproduces_its_shape() {
    let Some(source) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let Some(target) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let source_client = source.connect().await;
    source_client
        .batch_execute(&format!("{DDL}{DATA}"))
        .await
        .unwrap();
    let captured = capture(&source_client, &CaptureOptions::default())
        .await
        .unwrap();

    let target_client = target.connect().await;
    target_client.batch_execute(DDL).await.unwrap();
    let spec = SeedSpec::empty().with_stats(Arc::new(captured.clone()));
    seed_database(
        target.conn(),
        Some(&spec),
        &SeedOptions {
            seed: 3,
            progress: false,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let seeded = capture(&target_client, &CaptureOptions::default())
        .await
        .unwrap();

    let before = captured.table("orders").unwrap();
    let after = seeded.table("orders").unwrap();
    let rows = after.rows.unwrap();
    assert!((rows - 60_000.0).abs() < 1.0, "row count {rows}");
    for column in ["email", "status", "note", "created_at", "score", "amount"] {
        let a = before.column(column).unwrap();
        let b = after.column(column).unwrap();
        compare(a, b, rows);
    }
}

fn compare(a: &ColumnStats, b: &ColumnStats, rows: f64) {
    let name = &a.name;
    assert!(
        (a.null_frac - b.null_frac).abs() <= 0.02,
        "{name}: null_frac {} vs {}",
        a.null_frac,
        b.null_frac
    );
    let (da, db) = (a.distinct_at(rows), b.distinct_at(rows));
    assert!(
        (db / da - 1.0).abs() <= 0.2,
        "{name}: distinct {da:.0} vs {db:.0}"
    );
    let (ca, cb) = (a.correlation.unwrap_or(0.0), b.correlation.unwrap_or(0.0));
    if ca.abs() >= 0.3 {
        assert!(
            ca.signum() == cb.signum() && (ca - cb).abs() <= 0.25,
            "{name}: correlation {ca:.2} vs {cb:.2}"
        );
    } else {
        assert!(cb.abs() < 0.3, "{name}: correlation {ca:.2} vs {cb:.2}");
    }
    if !a.most_common_freqs.is_empty() && a.histogram_bounds.is_empty() {
        // Only common values: their frequencies match.
        for (fa, fb) in a.most_common_freqs.iter().zip(&b.most_common_freqs) {
            assert!((fa - fb).abs() <= 0.02, "{name}: mcv {fa} vs {fb}");
        }
    }
    let (Some(ha), Some(hb)) = (numbers(&a.histogram_bounds), numbers(&b.histogram_bounds)) else {
        return;
    };
    let range = ha[ha.len() - 1] - ha[0];
    for decile in 1..10 {
        let qa = at(&ha, f64::from(decile) / 10.0);
        let qb = at(&hb, f64::from(decile) / 10.0);
        assert!(
            (qa - qb).abs() <= 0.1 * range,
            "{name}: decile {decile}: {qa} vs {qb} (range {range})"
        );
    }
}

/// Bounds as numbers (timestamps as seconds), when every one parses.
fn numbers(bounds: &[String]) -> Option<Vec<f64>> {
    if bounds.len() < 2 {
        return None;
    }
    bounds
        .iter()
        .map(|b| {
            b.parse::<f64>().ok().or_else(|| {
                chrono::NaiveDateTime::parse_from_str(
                    b.trim_end_matches("+00"),
                    "%Y-%m-%d %H:%M:%S",
                )
                .ok()
                .map(|t| t.and_utc().timestamp() as f64)
            })
        })
        .collect()
}

fn at(bounds: &[f64], q: f64) -> f64 {
    let x = q * (bounds.len() - 1) as f64;
    let i = (x as usize).min(bounds.len() - 2);
    bounds[i] + (bounds[i + 1] - bounds[i]) * (x - i as f64)
}
