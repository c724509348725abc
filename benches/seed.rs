//! Seeding throughput: 1M rows into a 7-column table with a primary key.
//!
//! (a) the full generator (`seed_database`: introspection, generation and
//!     binary COPY, generation overlapped with sending),
//! (b) binary COPY of the same shape of rows precomputed in memory,
//! (c) server-side `INSERT ... SELECT generate_series` with random values of
//!     the same shape, as a hand-written SQL seed script would do.
//!
//! Run with `REHEARSE_TEST_DATABASE_URL` (or whatever backend
//! `rehearse::testing` provides): `cargo bench --bench seed`.

use std::path::Path;
use std::pin::pin;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fake::Fake;
use fake::faker::internet::en::SafeEmail;
use fake::faker::name::en::Name;
use rand::{RngExt, SeedableRng};
use rehearse::seed::{SeedOptions, SeedSpec, Value, seed_database};
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

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let Some(db) = runtime.block_on(rehearse::testing::fresh_database()) else {
        eprintln!("seed bench: no database (set REHEARSE_TEST_DATABASE_URL)");
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

    let mut group = c.benchmark_group("seed_1m_rows");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(ROWS));

    let truncate = || async {
        client
            .batch_execute("TRUNCATE accounts")
            .await
            .expect("truncate");
    };

    group.bench_function("a_full_generator", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (db, spec, truncate) = (&db, &spec, &truncate);
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    truncate().await;
                    let options = SeedOptions {
                        seed: i,
                        scale: 1.0,
                        hostile: false,
                        progress: false,
                    };
                    let started = Instant::now();
                    seed_database(db.conn(), Some(spec), &options)
                        .await
                        .expect("seed");
                    total += started.elapsed();
                }
                total
            }
        });
    });

    group.bench_function("b_precomputed_binary_copy", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (client, rows, truncate) = (&client, &rows, &truncate);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    truncate().await;
                    let started = Instant::now();
                    let sink = client
                        .copy_in("COPY accounts (id, name, email, age, balance, active, created_at) FROM STDIN (FORMAT binary)")
                        .await
                        .expect("copy");
                    let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
                    for row in rows {
                        writer.as_mut().write_raw(row.iter()).await.expect("write");
                    }
                    writer.as_mut().finish().await.expect("finish");
                    total += started.elapsed();
                }
                total
            }
        });
    });

    group.bench_function("c_insert_select_generate_series", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (client, truncate) = (&client, &truncate);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    truncate().await;
                    let started = Instant::now();
                    client
                        .batch_execute(&format!(
                            "INSERT INTO accounts
                             SELECT g,
                                    initcap(substr(md5(random()::text), 1, 8)) || ' '
                                        || initcap(substr(md5(random()::text), 1, 10)),
                                    substr(md5(random()::text), 1, 12) || '@example.com',
                                    18 + floor(random() * 72)::int,
                                    random() * 10000,
                                    random() < 0.8,
                                    timestamptz '2019-01-01' + random() * interval '7 years'
                             FROM generate_series(1, {ROWS}) g"
                        ))
                        .await
                        .expect("insert select");
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
