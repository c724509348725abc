//! Seeding throughput: 1M rows into a 7-column table with a primary key.
//!
//! (a) the full generator (`seed_database`: introspection, generation and
//!     binary COPY, generation overlapped with sending),
//! (b) binary COPY of the same shape of rows precomputed in memory,
//! (c) server-side `INSERT ... SELECT generate_series` with random values of
//!     the same shape, as a hand-written SQL seed script would do.
//!
//! `cargo bench --bench seed`: runs on the test suite's shared server (a
//! local cluster by default; `REHEARSE_TEST_BACKEND` picks another).

use std::path::Path;
use std::pin::pin;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake::Fake;
use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::Name;
use pg_rehearse::seed::{SeedOptions, SeedSpec, Value, seed_database};
use pg_rehearse::testing::TestDatabase;
use rand::{RngExt, SeedableRng};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const ROWS: u64 = 1_000_000;

const TABLE: &str = "CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    age int NOT NULL,
    balance double precision NOT NULL,
    active boolean NOT NULL,
    created_at timestamptz NOT NULL
)";

const TYPES: [Type; 7] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::FLOAT8,
    Type::BOOL,
    Type::TIMESTAMPTZ,
];

fn precomputed() -> Vec<[Value; 7]> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    (0..ROWS as i64)
        .map(|i| {
            [
                Value::I64(i + 1),
                Value::Text(Name().fake_with_rng(&mut rng)),
                Value::Text(SafeEmail().fake_with_rng(&mut rng)),
                Value::I32(rng.random_range(18..90)),
                Value::F64(rng.random_range(0.0..10_000.0)),
                Value::Bool(rng.random_bool(0.8)),
                Value::Timestamp(rng.random_range(600_000_000_000_000..800_000_000_000_000)),
            ]
        })
        .collect()
}

const COPY: &str =
    "COPY accounts (id, name, email, age, balance, active, created_at) FROM STDIN (FORMAT binary)";

const INSERT_SELECT: &str = "INSERT INTO accounts
    SELECT g,
           initcap(substr(md5(random()::text), 1, 8)) || ' '
               || initcap(substr(md5(random()::text), 1, 10)),
           substr(md5(random()::text), 1, 12) || '@example.com',
           18 + floor(random() * 72)::int,
           random() * 10000,
           random() < 0.8,
           timestamptz '2019-01-01' + random() * interval '7 years'
    FROM generate_series(1, 1000000) g";

/// Empties the table and checkpoints, so that no run pays for the previous
/// run's dirty buffers.
async fn reset(client: &Client) {
    client
        .batch_execute("TRUNCATE accounts")
        .await
        .expect("truncate");
    client
        .batch_execute("CHECKPOINT")
        .await
        .expect("checkpoint");
}

async fn full_generator(db: &TestDatabase, spec: &SeedSpec, seed: u64) -> Duration {
    let options = SeedOptions {
        seed,
        scale: 1.0,
        hostile: false,
        progress: false,
    };
    let started = Instant::now();
    seed_database(db.conn(), Some(spec), &options)
        .await
        .expect("seed");
    started.elapsed()
}

async fn precomputed_copy(client: &Client, rows: &[[Value; 7]]) -> Duration {
    let started = Instant::now();
    let sink = client.copy_in(COPY).await.expect("copy");
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
    for row in rows {
        writer.as_mut().write_raw(row.iter()).await.expect("write");
    }
    writer.as_mut().finish().await.expect("finish");
    started.elapsed()
}

async fn insert_select(client: &Client) -> Duration {
    let started = Instant::now();
    client
        .batch_execute(INSERT_SELECT)
        .await
        .expect("insert select");
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let Some(db) = runtime.block_on(pg_rehearse::testing::fresh_database()) else {
        eprintln!("seed bench: no database (see pg_rehearse::testing for backends)");
        return;
    };
    let client = runtime.block_on(db.connect());
    runtime
        .block_on(client.batch_execute(TABLE))
        .expect("create table");
    let spec = SeedSpec::parse(
        &format!("[tables.accounts]\nrows = {ROWS}\n"),
        Path::new("benches/accounts.toml"),
    )
    .expect("bench spec");
    let rows = precomputed();

    // Interleaved rounds first: on a shared machine the load drifts, and
    // running the three side by side keeps their ratios honest.
    let rounds: usize = std::env::var("SEED_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut best = [Duration::MAX; 3];
    for round in 0..rounds {
        runtime.block_on(async {
            reset(&client).await;
            best[0] = best[0].min(full_generator(&db, &spec, round as u64).await);
            reset(&client).await;
            best[1] = best[1].min(precomputed_copy(&client, &rows).await);
            reset(&client).await;
            best[2] = best[2].min(insert_select(&client).await);
        });
    }
    let rate = |d: Duration| ROWS as f64 / d.as_secs_f64();
    eprintln!(
        "interleaved best of {rounds}: (a) full generator {:.0} rows/s, (b) precomputed binary COPY {:.0} rows/s, \
         (c) INSERT ... SELECT generate_series {:.0} rows/s; a/b = {:.2}, a/c = {:.2}",
        rate(best[0]),
        rate(best[1]),
        rate(best[2]),
        rate(best[0]) / rate(best[1]),
        rate(best[0]) / rate(best[2]),
    );

    let mut group = c.benchmark_group("seed_1m_rows");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(ROWS));

    group.bench_function("a_full_generator", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (db, spec, client) = (&db, &spec, &client);
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    reset(client).await;
                    total += full_generator(db, spec, i).await;
                }
                total
            }
        });
    });
    group.bench_function("b_precomputed_binary_copy", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (client, rows) = (&client, &rows);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    reset(client).await;
                    total += precomputed_copy(client, rows).await;
                }
                total
            }
        });
    });
    group.bench_function("c_insert_select_generate_series", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let client = &client;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    reset(client).await;
                    total += insert_select(client).await;
                }
                total
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
