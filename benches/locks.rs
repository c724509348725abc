//! Lock sampler resolution and overhead (issue 6).
//!
//! - `locks/workload`: a pgbench-like loop of short transactions from 4
//!   connections to a local Postgres on 127.0.0.1, with the sampler off and
//!   at 10 ms, in the same run (target: at most 2 % throughput loss).
//! - The achieved sample rate with 150 lock rows held, at the default
//!   10 ms interval and in a tight loop (1 µs interval), printed once.
//! - An interleaved A/B, printed once: rounds alternate sampler off and on
//!   (the order flipping every round), so drift of a shared VM hits both
//!   arms alike; the median of each arm and of the paired ratios is the
//!   overhead figure to quote. The criterion groups run one arm after the
//!   other and carry that drift.
//!
//! `cargo bench --bench locks`.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearse::locks::{SamplerOptions, sampler};
use rehearse::provision::{Backend, ConnInfo, Postgres, ProvisionOptions};

const CONNECTIONS: usize = 4;
const TRANSACTIONS: u64 = 2_000;
const ACCOUNTS: i32 = 10_000;
/// A new sampler's first ticks read pg_stat_activity and pg_class and warm
/// its backend's catalog caches: a rehearsal's sampler runs for the whole
/// rehearsal, so the A/B times steady-state sampling only.
const SETTLE_MS: u64 = 300;

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

/// Transactions per second of one `workload` run, the sampler on or off
/// (started before the clock and given a tick to settle).
async fn timed_round(conn: &ConnInfo, clients: &[tokio_postgres::Client], sampler_on: bool) -> f64 {
    let handle = if sampler_on {
        let handle = sampler::start(conn, SamplerOptions::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
        Some(handle)
    } else {
        None
    };
    let started = Instant::now();
    workload(clients).await;
    let rate = TRANSACTIONS as f64 / started.elapsed().as_secs_f64();
    if let Some(handle) = handle {
        assert!(!handle.stop().await.unwrap().samples.is_empty());
    }
    rate
}

/// CPU seconds (user + system) of `/proc/<pid>/task/<tid>/stat` or
/// `/proc/<pid>/stat`, in clock ticks of 10 ms.
fn cpu_ticks(stat: &std::path::Path) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // Fields after the parenthesised command: state is field 3; utime and
    // stime are fields 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The sampler thread of this process (threads are named after it; the
/// kernel keeps 15 characters).
fn sampler_thread() -> Option<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        sampler::SAMPLER_APPLICATION_NAME
            .starts_with(comm.trim())
            .then(|| dir.join("stat"))
    })
}

/// CPU the sampler uses while the workload runs: its thread here and its
/// backend in Postgres, from /proc (a local server on this machine).
async fn cpu_cost(conn: &ConnInfo, clients: &[tokio_postgres::Client]) {
    let monitor = conn.connect("bench-monitor").await.unwrap();
    let handle = sampler::start(conn, SamplerOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let backend: i32 = monitor
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&sampler::SAMPLER_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    let backend = std::path::PathBuf::from(format!("/proc/{backend}/stat"));
    let (Some(thread), Some(_)) = (sampler_thread(), cpu_ticks(&backend)) else {
        eprintln!("locks bench: sampler CPU not measured (no /proc access)");
        return;
    };
    let before = (cpu_ticks(&thread).unwrap(), cpu_ticks(&backend).unwrap());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        workload(clients).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = (cpu_ticks(&thread).unwrap(), cpu_ticks(&backend).unwrap());
    let samples = handle.stop().await.unwrap();
    let per_second = |ticks: u64| ticks as f64 * 10.0 / seconds;
    let (thread_ms, backend_ms) = (
        per_second(after.0 - before.0),
        per_second(after.1 - before.1),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "locks bench: sampler CPU under the workload ({:.0} samples/s, {} missed): thread \
         {thread_ms:.1} ms/s + backend {backend_ms:.1} ms/s = {:.2} % of {cores} core(s)",
        samples.rate_per_second(),
        samples.missed,
        (thread_ms + backend_ms) / (10.0 * cores as f64)
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Off/on rounds interleaved; prints each arm's median and the overhead.
async fn interleaved(conn: &ConnInfo, clients: &[tokio_postgres::Client], rounds: usize) {
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        workload(clients).await; // warm-up
    }
    for round in 0..rounds {
        let (a, b) = if round % 2 == 0 {
            let a = timed_round(conn, clients, false).await;
            (a, timed_round(conn, clients, true).await)
        } else {
            let b = timed_round(conn, clients, true).await;
            (timed_round(conn, clients, false).await, b)
        };
        off.push(a);
        on.push(b);
        ratios.push(b / a);
    }
    let (off, on, ratio) = (median(&mut off), median(&mut on), median(&mut ratios));
    // `median` sorted the ratios: their quartiles show the round-to-round noise.
    let quartile = |q: usize| ratios[(ratios.len() - 1) * q / 4];
    eprintln!(
        "locks bench: interleaved A/B, {rounds} rounds of {TRANSACTIONS} transactions: \
         sampler off {:.2}k txn/s, sampler 10 ms {:.2}k txn/s (medians); overhead {:.1} % \
         (medians), {:.1} % (median of paired ratios; quartiles {:.1} % .. {:.1} %)",
        off / 1e3,
        on / 1e3,
        (1.0 - on / off) * 100.0,
        (1.0 - ratio) * 100.0,
        (1.0 - quartile(3)) * 100.0,
        (1.0 - quartile(1)) * 100.0
    );
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

    rt.block_on(cpu_cost(&conn, &clients));
    rt.block_on(interleaved(&conn, &clients, 100));

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
