//! The forecast of an index build, fitted on three small sizes, lands
//! within its stated interval of a real build at a size ten times larger.

use std::time::Instant;

use pg_rehearse::forecast::{Sample, StatementKind, fit};

const CREATE: &str = "CREATE INDEX t_v ON t (v)";

/// A table of `rows` rows whose indexed column is in scrambled order.
async fn table_of(client: &tokio_postgres::Client, rows: i64) {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS t;
             CREATE TABLE t (id int8, v int8, pad text);
             INSERT INTO t SELECT g, (g::int8 * 7919) % 1000003, 'row ' || g FROM generate_series(1, {rows}) g;"
        ))
        .await
        .unwrap();
    client.batch_execute("VACUUM ANALYZE t").await.unwrap();
}

/// CPU time the backend has used, in microseconds, from
/// `/proc/<pid>/schedstat` (nanoseconds on CPU; Linux `sched-stats`
/// documentation). `None` when the server is not on this machine.
fn backend_cpu_us(pid: i32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e3)
}

/// The fastest of `repeat` builds, in microseconds: noise only adds time.
/// The backend's CPU time when the server runs here (so that other
/// processes on a busy machine do not decide the result), else wall time.
async fn build_us(client: &tokio_postgres::Client, repeat: usize) -> f64 {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let cpu = backend_cpu_us(pid);
        let started = Instant::now();
        client.batch_execute(CREATE).await.unwrap();
        let wall = started.elapsed().as_secs_f64() * 1e6;
        let took = match (cpu, backend_cpu_us(pid)) {
            (Some(before), Some(after)) => after - before,
            _ => wall,
        };
        best = best.min(took);
        client.batch_execute("DROP INDEX t_v").await.unwrap();
    }
    best
}

#[tokio::test]
async fn index_build_forecast_holds_at_ten_times_the_size() {
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    // Small tables never get parallel maintenance workers and large ones
    // do (min_parallel_table_scan_size): compare serial with serial.
    client
        .batch_execute("SET max_parallel_maintenance_workers = 0")
        .await
        .unwrap();
    let mut samples = Vec::new();
    for rows in [20_000, 40_000, 80_000] {
        table_of(&client, rows).await;
        samples.push(Sample {
            rows: rows as f64,
            duration_us: build_us(&client, 5).await,
        });
    }
    let fitted = fit(&samples, StatementKind::of(CREATE)).unwrap();
    let forecast = fitted.at(800_000.0);
    table_of(&client, 800_000).await;
    let real = build_us(&client, 3).await;
    eprintln!("forecast {forecast:?}, real {real:.0} µs, samples {samples:?}");
    assert!(
        forecast.low_us <= real && real <= forecast.high_us,
        "real {real:.0} µs outside the forecast {forecast:?} (fit {fitted:?}, samples {samples:?})"
    );
}
