//! Provisioning timings: instance ready and cleanup per backend, and a
//! template clone of a ~200 MB database against the raw
//! `CREATE DATABASE ... TEMPLATE` it wraps, in the same run.
//!
//! `cargo bench --bench provision`. The Docker group needs an image present
//! (`REHEARSE_DOCKER_IMAGE=rehearse-postgres:15` after
//! `ci/build-postgres-image.sh`); it is left out, with a message, otherwise.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pg_rehearse::provision::{Backend, Postgres, ProvisionOptions, Template, describe_pg_error};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Time to a ready instance (an authenticated query answers), and time to
/// clean it up, measured separately.
fn ready_and_cleanup(c: &mut Criterion, backend: Backend, samples: usize) {
    let rt = runtime();
    let options = ProvisionOptions::default().with_backend(backend);
    // One start outside the measurement: builds the local cluster cache,
    // checks that the backend exists at all.
    match rt.block_on(Postgres::start(&options)) {
        Ok(postgres) => rt.block_on(postgres.shutdown()).unwrap(),
        Err(e) => {
            eprintln!("provision bench: {backend} backend unavailable, left out: {e}");
            return;
        }
    }
    let mut group = c.benchmark_group(format!("provision/{backend}"));
    group.sample_size(samples);
    group.bench_function("ready", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let options = options.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let postgres = Postgres::start(&options).await.unwrap();
                    total += started.elapsed();
                    postgres.shutdown().await.unwrap();
                }
                total
            }
        });
    });
    group.bench_function("cleanup", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let options = options.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let postgres = Postgres::start(&options).await.unwrap();
                    let started = Instant::now();
                    postgres.shutdown().await.unwrap();
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.finish();
}

fn local(c: &mut Criterion) {
    ready_and_cleanup(c, Backend::Local, 30);
}

fn docker(c: &mut Criterion) {
    ready_and_cleanup(c, Backend::Docker, 10);
}

/// About 200 MB: 1.6 M rows of ~100 bytes plus the primary key index. One
/// statement per call: VACUUM refuses to run inside the implicit
/// transaction of a multi-statement string.
const TEMPLATE_SQL: &[&str] = &[
    "CREATE TABLE payload (id bigint PRIMARY KEY, body text NOT NULL)",
    "INSERT INTO payload SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 1600000) g",
    "VACUUM ANALYZE payload",
];

fn clone(c: &mut Criterion) {
    let rt = runtime();
    let Ok(postgres) = rt.block_on(Postgres::start(
        &ProvisionOptions::default().with_backend(Backend::Local),
    )) else {
        eprintln!("provision bench: no local backend, clone bench left out");
        return;
    };
    let template: Template = rt
        .block_on(postgres.template("bench-200mb", |conn| async move {
            let client = conn.connect("bench").await.map_err(|e| e.to_string())?;
            for sql in TEMPLATE_SQL {
                client
                    .batch_execute(sql)
                    .await
                    .map_err(|e| describe_pg_error(&e))?;
            }
            Ok::<(), String>(())
        }))
        .unwrap();
    let size: i64 = rt.block_on(async {
        let client = postgres.conn().connect("bench").await.unwrap();
        client
            .query_one("SELECT pg_database_size($1)", &[&template.name])
            .await
            .unwrap()
            .get(0)
    });
    eprintln!(
        "provision bench: template {} is {} MB",
        template.name,
        size / 1_000_000
    );
    let mut group = c.benchmark_group("provision/clone-200mb");
    group.sample_size(20);
    group.bench_function("rehearse clone_database", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let (postgres, template) = (&postgres, &template);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let clone = postgres.clone_database(template, None).await.unwrap();
                    total += started.elapsed();
                    postgres.drop_database(&clone.dbname).await.unwrap();
                }
                total
            }
        });
    });
    group.bench_function("raw CREATE DATABASE TEMPLATE FILE_COPY", |b| {
        b.to_async(&rt).iter_custom(|iterations| {
            let (postgres, template) = (&postgres, &template);
            async move {
                let client = postgres.conn().connect("bench-raw").await.unwrap();
                let mut total = Duration::ZERO;
                for i in 0..iterations {
                    let name = format!("bench_raw_{i}");
                    let sql = format!(
                        "CREATE DATABASE {name} TEMPLATE {} STRATEGY FILE_COPY",
                        template.name
                    );
                    let started = Instant::now();
                    client.batch_execute(&sql).await.unwrap();
                    total += started.elapsed();
                    client
                        .batch_execute(&format!("DROP DATABASE {name}"))
                        .await
                        .unwrap();
                }
                total
            }
        });
    });
    group.finish();
    rt.block_on(postgres.shutdown()).unwrap();
}

criterion_group!(benches, local, docker, clone);
criterion_main!(benches);
