//! Lock sampler resolution and overhead.
//!
//! - The achieved sample rate with 150 lock rows held, at the default
//!   10 ms interval and in a tight loop (1 µs interval), printed once.
//! - The sampler's CPU while a workload runs: its thread here and its
//!   backend, in nanoseconds from `/proc/*/schedstat`, printed once.
//! - An interleaved comparison, printed once: every round runs the same
//!   pgbench-like workload (4 connections, short read-write transactions)
//!   three times, with the sampler off, at 10 ms, and off again, each
//!   round in another order, so a shared VM's drift hits every arm alike.
//!   The median of the paired ratios is the throughput loss to quote
//!   (target: at most 2 %), with a 95 % bootstrap interval; the second
//!   "off" arm is the control, whose interval shows what the machine can
//!   resolve. `REHEARSE_LOCKS_ROUNDS` sets the rounds (default 100; on a
//!   noisy 2-core VM, 600 narrow the interval to about ±1 point).
//! - The server has the default `max_connections` of a rehearsal (100);
//!   `REHEARSE_LOCKS_MAX_CONNECTIONS` sets another, since every `pg_locks`
//!   read walks lock tables sized by it.
//! - `locks/workload`: the criterion groups, sampler off and at 10 ms,
//!   one after the other (so they carry the drift the comparison cancels).
//!
//! `cargo bench --bench locks` (`-- nothing` skips the criterion groups).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pg_rehearse::locks::{SamplerOptions, sampler};
use pg_rehearse::provision::{
    Backend, ConnInfo, DEFAULT_MAX_CONNECTIONS, Postgres, ProvisionOptions,
};

const CONNECTIONS: usize = 4;
const TRANSACTIONS: u64 = 2_000;
const ACCOUNTS: i32 = 10_000;
/// A new sampler's first ticks read pg_stat_activity and pg_class and warm
/// its backend's catalog caches: a rehearsal's sampler runs for the whole
/// rehearsal, so the A/B times steady-state sampling only.
const SETTLE_MS: u64 = 100;

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
             CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL) \
                 WITH (autovacuum_enabled = off); \
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
        Some(
            sampler::start(conn, SamplerOptions::default())
                .await
                .unwrap(),
        )
    } else {
        None
    };
    // Every round starts from the same table (autovacuum, off for this
    // table, would otherwise land in one arm or the other), and both arms
    // pause alike before the clock starts.
    clients[0].batch_execute("VACUUM accounts").await.unwrap();
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let started = Instant::now();
    workload(clients).await;
    let rate = TRANSACTIONS as f64 / started.elapsed().as_secs_f64();
    if let Some(handle) = handle {
        assert!(!handle.stop().await.unwrap().samples.is_empty());
    }
    rate
}

/// Nanoseconds a task has run on a CPU: the first field of
/// `/proc/<pid>/schedstat` (or `/proc/<pid>/task/<tid>/schedstat`), exact
/// where the `stat` file's utime and stime count 10 ms clock ticks.
fn cpu_ns(schedstat: &Path) -> Option<u64> {
    std::fs::read_to_string(schedstat)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The thread of this process named `name` (the kernel keeps 15
/// characters of a thread's name).
fn thread_named(name: &str) -> Option<PathBuf> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        name.starts_with(comm.trim()).then(|| dir.join("schedstat"))
    })
}

/// The schedstat file of the backend serving `application_name`.
async fn backend_of(monitor: &tokio_postgres::Client, application_name: &str) -> PathBuf {
    let pid: i32 = monitor
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap()
        .get(0);
    PathBuf::from(format!("/proc/{pid}/schedstat"))
}

/// What a poller cost while the workload ran for about 10 s.
struct Cost {
    thread_ns: f64,
    backend_ns: f64,
    seconds: f64,
}

impl Cost {
    /// Runs the workload for about 10 s and reads both tasks' CPU around
    /// it; `None` without /proc schedstat access.
    async fn measure(
        clients: &[tokio_postgres::Client],
        thread: Option<PathBuf>,
        backend: &Path,
    ) -> Option<Cost> {
        let thread = thread?;
        let before = (cpu_ns(&thread)?, cpu_ns(backend)?);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            workload(clients).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let after = (cpu_ns(&thread)?, cpu_ns(backend)?);
        Some(Cost {
            thread_ns: (after.0 - before.0) as f64,
            backend_ns: (after.1 - before.1) as f64,
            seconds,
        })
    }

    /// "thread + backend µs per tick = share of the machine's cores".
    fn describe(&self, ticks: u64) -> String {
        let ticks = ticks.max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        format!(
            "{:.0} + {:.0} us per tick, {:.0} ticks/s: {:.2} % of {cores} core(s)",
            self.thread_ns / 1e3 / ticks,
            self.backend_ns / 1e3 / ticks,
            ticks / self.seconds,
            (self.thread_ns + self.backend_ns) / 1e7 / self.seconds / cores
        )
    }
}

/// The sampler's CPU while the workload runs: its thread here and its
/// backend in Postgres, from /proc (a local server on this machine).
async fn sampler_cost(
    conn: &ConnInfo,
    clients: &[tokio_postgres::Client],
    monitor: &tokio_postgres::Client,
    interval: Duration,
) -> String {
    let handle = sampler::start(conn, SamplerOptions::default().with_interval(interval))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let backend = backend_of(monitor, sampler::SAMPLER_APPLICATION_NAME).await;
    let taken = handle.taken();
    let cost = Cost::measure(
        clients,
        thread_named(sampler::SAMPLER_APPLICATION_NAME),
        &backend,
    )
    .await;
    let ticks = handle.taken() - taken;
    let missed = handle.stop().await.unwrap().missed;
    cost.map_or_else(
        || "not measured (no /proc schedstat access)".into(),
        |cost| format!("{}, {missed} missed", cost.describe(ticks)),
    )
}

const POLLER: &str = "bench-poller";

/// The floor under any sampler that makes a round trip per tick: a thread
/// like the sampler's (its own single-threaded runtime, the unix socket)
/// running a prepared `SELECT 1` every 10 ms.
async fn round_trip_floor(
    conn: &ConnInfo,
    clients: &[tokio_postgres::Client],
    monitor: &tokio_postgres::Client,
) -> String {
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicU64::new(0));
    let (flag, counter, conn) = (Arc::clone(&stop), Arc::clone(&ticks), conn.clone());
    let poller = std::thread::Builder::new()
        .name(POLLER.into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = conn.connect_nearby(POLLER).await.unwrap();
                let one = client.prepare("SELECT 1").await.unwrap();
                let mut ticker = tokio::time::interval(Duration::from_millis(10));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !flag.load(Ordering::Relaxed) {
                    ticker.tick().await;
                    client.query(&one, &[]).await.unwrap();
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        })
        .unwrap();
    while ticks.load(Ordering::Relaxed) < 10 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let backend = backend_of(monitor, POLLER).await;
    let before = ticks.load(Ordering::Relaxed);
    let cost = Cost::measure(clients, thread_named(POLLER), &backend).await;
    let polled = ticks.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    cost.map_or_else(
        || "not measured (no /proc schedstat access)".into(),
        |cost| cost.describe(polled),
    )
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

/// Rounds per resampled block: a shared VM's slow spells span several
/// consecutive rounds, so rounds are resampled in runs, not one by one
/// (which would make the interval too narrow).
const BLOCK: usize = 10;

/// The median of `ratios` (one per round, in order) and its 95 % moving
/// block bootstrap interval.
fn median_with_interval(ratios: &[f64]) -> (f64, f64, f64) {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let block = BLOCK.min(ratios.len());
    let mut medians: Vec<f64> = (0..2_000)
        .map(|_| {
            let mut resample = Vec::with_capacity(ratios.len() + block);
            while resample.len() < ratios.len() {
                let at = rng.random_range(0..=ratios.len() - block);
                resample.extend_from_slice(&ratios[at..at + block]);
            }
            resample.truncate(ratios.len());
            median(&mut resample)
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let at = |q: f64| medians[((medians.len() - 1) as f64 * q).round() as usize];
    (median(&mut ratios.to_vec()), at(0.025), at(0.975))
}

/// Rounds of the interleaved comparison: `REHEARSE_LOCKS_ROUNDS`, default 100.
fn rounds() -> usize {
    std::env::var("REHEARSE_LOCKS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// "1.2 % (95 % interval 0.1 % .. 2.5 %)" for per-round ratios to a baseline.
fn loss(ratios: &[f64]) -> String {
    let (mid, low, high) = median_with_interval(ratios);
    format!(
        "{:.1} % (95 % interval {:.1} % .. {:.1} %)",
        (1.0 - mid) * 100.0,
        (1.0 - high) * 100.0,
        (1.0 - low) * 100.0
    )
}

/// Three arms interleaved, each round in another of the six orders: the
/// sampler off, at 10 ms, and off again. The sampler's loss is measured
/// against the mean of the round's two "off" runs; the second "off" arm
/// against the first is the control (an A/A comparison), whose interval
/// shows what the machine can resolve.
async fn interleaved(conn: &ConnInfo, clients: &[tokio_postgres::Client], rounds: usize) {
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 2, 1],
        [2, 1, 0],
        [1, 0, 2],
    ];
    let mut rates: [Vec<f64>; 3] = Default::default();
    for _ in 0..3 {
        workload(clients).await; // warm-up
    }
    for round in 0..rounds {
        for arm in ORDERS[round % ORDERS.len()] {
            rates[arm].push(timed_round(conn, clients, arm == 1).await);
        }
    }
    let [off, on, again] = &rates;
    let sampler: Vec<f64> = (0..rounds)
        .map(|r| on[r] / ((off[r] + again[r]) / 2.0))
        .collect();
    let control: Vec<f64> = (0..rounds).map(|r| again[r] / off[r]).collect();
    eprintln!(
        "locks bench: interleaved, {rounds} rounds of {TRANSACTIONS} transactions per arm \
         ({:.2}k txn/s with the sampler off, median); throughput loss, median of per-round \
         ratios: sampler 10 ms {}; control (off vs off) {}",
        median(&mut off.clone()) / 1e3,
        loss(&sampler),
        loss(&control)
    );
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    // What `rehearse run` starts unless a scenario needs more connections;
    // `REHEARSE_LOCKS_MAX_CONNECTIONS` measures another size (every
    // pg_locks read walks lock tables sized by it).
    let max_connections = std::env::var("REHEARSE_LOCKS_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let options = ProvisionOptions::default()
        .with_backend(Backend::Local)
        .with_max_connections(max_connections);
    let postgres = match rt.block_on(Postgres::start(&options)) {
        Ok(postgres) => postgres,
        Err(e) => {
            eprintln!("locks bench: local backend unavailable, left out: {e}");
            return;
        }
    };
    eprintln!("locks bench: local server, max_connections = {max_connections}");
    let conn = rt.block_on(postgres.create_database(None)).unwrap();
    let clients = rt.block_on(setup(&conn));

    for (label, interval) in [
        ("10 ms", Duration::from_millis(10)),
        ("tight", Duration::from_micros(1)),
    ] {
        let (rate, missed) = rt.block_on(sample_rate(&conn, interval));
        // In a tight loop every tick overruns: "missed" means nothing there.
        let missed = if interval >= Duration::from_millis(1) {
            format!(", {missed} missed")
        } else {
            String::new()
        };
        eprintln!("locks bench: sampler {label}, 150 lock rows: {rate:.0} samples/s{missed}");
    }

    let monitor = rt.block_on(conn.connect("bench-monitor")).unwrap();
    for ms in [10, 20, 50] {
        let cost = rt.block_on(sampler_cost(
            &conn,
            &clients,
            &monitor,
            Duration::from_millis(ms),
        ));
        eprintln!("locks bench: sampler CPU under the workload, {ms} ms interval: {cost}");
    }
    let floor = rt.block_on(round_trip_floor(&conn, &clients, &monitor));
    eprintln!("locks bench: a 10 ms SELECT 1 poller under the workload (the floor): {floor}");
    if rounds() > 0 {
        rt.block_on(interleaved(&conn, &clients, rounds()));
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
