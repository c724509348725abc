//! Lock sampler resolution and overhead (issue 6).
//!
//! - `locks/workload`: a pgbench-like loop of short transactions from 4
//!   connections to a local Postgres on 127.0.0.1, with the sampler off and
//!   at 10 ms, in the same run (target: at most 2 % throughput loss).
//! - The achieved sample rate with 150 lock rows held, at the default
//!   10 ms interval and in a tight loop (1 µs interval), printed once.
//!
//! `cargo bench --bench locks`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearse::locks::{SamplerOptions, sampler};
use rehearse::provision::{Backend, ConnInfo, Postgres, ProvisionOptions};

const CONNECTIONS: usize = 4;
const TRANSACTIONS: u64 = 2_000;
const ACCOUNTS: i32 = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `TRANSACTIONS` short read-write transactions over `CONNECTIONS`
/// connections (pgbench's TPC-B-like core: update a balance, read it back).
async fn workload(clients: &[tokio_postgres::Client]) {
    let per_client = TRANSACTIONS / clients.len() as u64;
    let tasks = clients.iter().enumerate().map(|(n, client)| async move {
        for i in 0..per_client {
            let id = i32::try_from((i * 7919 + n as u64 * 104_729) % ACCOUNTS as u64).unwrap() + 1;
            client
                .batch_execute(&format!(
                    "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = {id}; \
                     SELECT balance FROM accounts WHERE id = {id}; COMMIT"
                ))
                .await
                .unwrap();
        }
    });
    futures_util::future::join_all(tasks).await;
}

async fn setup(conn: &ConnInfo) -> Vec<tokio_postgres::Client> {
    let admin = conn.connect("bench-setup").await.unwrap();
    admin
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS accounts; \
             CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL); \
             INSERT INTO accounts SELECT g, 0 FROM generate_series(1, {ACCOUNTS}) g; \
             ANALYZE accounts;"
        ))
        .await
        .unwrap();
    let mut clients = Vec::new();
    for n in 0..CONNECTIONS {
        clients.push(conn.connect(&format!("bench-app-{n}")).await.unwrap());
    }
    clients
}

/// Samples per second achieved with 150 advisory lock rows held.
async fn sample_rate(conn: &ConnInfo, interval: Duration) -> (f64, u64) {
    let holder = conn.connect("bench-holder").await.unwrap();
    holder
        .batch_execute("SELECT pg_advisory_lock(g) FROM generate_series(1, 150) g")
        .await
        .unwrap();
    let options = SamplerOptions::default().with_interval(interval);
    let handle = sampler::start(conn, options).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = handle.stop().await.unwrap();
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let rows = samples.samples.last().map_or(0, |s| s.locks.len());
    assert!(rows >= 150, "only {rows} lock rows sampled");
    (samples.rate_per_second(), samples.missed)
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let options = ProvisionOptions::default().with_backend(Backend::Local);
    let postgres = match rt.block_on(Postgres::start(&options)) {
        Ok(postgres) => postgres,
        Err(e) => {
            eprintln!("locks bench: local backend unavailable, left out: {e}");
            return;
        }
    };
    let conn = rt.block_on(postgres.create_database(None)).unwrap();
    let clients = rt.block_on(setup(&conn));

    for (label, interval) in [
        ("10 ms", Duration::from_millis(10)),
        ("tight", Duration::from_micros(1)),
    ] {
        let (rate, missed) = rt.block_on(sample_rate(&conn, interval));
        eprintln!(
            "locks bench: sampler {label}, 150 lock rows: {rate:.0} samples/s, {missed} missed"
        );
    }

    let mut group = c.benchmark_group("locks/workload");
    group.throughput(Throughput::Elements(TRANSACTIONS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("sampler-off", |b| {
        b.to_async(&rt).iter(|| workload(&clients));
    });
    group.bench_function("sampler-10ms", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let clients = &clients;
            let conn = &conn;
            async move {
                let handle = sampler::start(conn, SamplerOptions::default())
                    .await
                    .unwrap();
                let started = Instant::now();
                for _ in 0..iterations {
                    workload(clients).await;
                }
                let elapsed = started.elapsed();
                let samples = handle.stop().await.unwrap();
                assert!(!samples.samples.is_empty());
                elapsed
            }
        });
    });
    group.finish();
    drop(clients);
    rt.block_on(postgres.shutdown()).unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
