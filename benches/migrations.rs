//! Migration timing: the pending migrations of example scenarios, applied
//! serially on a fresh clone of their seeded template per iteration (clone
//! and drop are not timed).
//!
//! `cargo bench --bench migrations` runs on the test suite's shared server
//! (a local cluster by default; `REHEARSE_TEST_BACKEND` picks another).
//! Your own migrations: list scenario folders in `REHEARSE_BENCH_SCENARIOS`
//! (comma-separated), or copy this file into your project's `benches/` with
//! your folders in `DEFAULT_SCENARIOS` (see docs/testing-guide.md).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pg_rehearse::migrate::apply_serial;
use pg_rehearse::rehearsal::Plan;
use pg_rehearse::scenario::Scenario;
use pg_rehearse::seed::{SeedOptions, seed_database};

/// Seeded examples whose pending migrations touch populated tables.
const DEFAULT_SCENARIOS: [&str; 2] = ["scenarios/ecommerce", "scenarios/saas"];

fn scenarios() -> Vec<String> {
    match std::env::var("REHEARSE_BENCH_SCENARIOS") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').map(|s| s.trim().to_string()).collect()
        }
        _ => DEFAULT_SCENARIOS.map(String::from).to_vec(),
    }
}

fn migrations(c: &mut Criterion) {
    let Some(server) = pg_rehearse::testing::shared_server() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("migrations");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for path in scenarios() {
        let scenario =
            Scenario::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let plan = Plan::prepare(scenario).unwrap_or_else(|e| panic!("{path}: {e}"));
        let runner = plan.scenario.replicas.runner;
        let template = runtime.block_on(async {
            let baseline = plan.baseline.clone();
            let spec = plan.seed_spec.clone();
            let options = plan.scenario.seed.as_ref().map(|s| SeedOptions {
                seed: s.seed,
                scale: s.scale,
                hostile: false,
                progress: false,
            });
            server
                .template(
                    &format!("bench-{}", plan.template_key()),
                    |conn| async move {
                        apply_serial(&conn, &runner, &baseline)
                            .await
                            .map_err(|e| e.to_string())?;
                        if let Some(options) = options {
                            seed_database(&conn, spec.as_ref(), &options)
                                .await
                                .map_err(|e| e.to_string())?;
                        }
                        Ok::<(), String>(())
                    },
                )
                .await
                .unwrap()
        });
        group.bench_function(&plan.scenario.name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let clone = server.clone_database(&template, None).await.unwrap();
                        let started = Instant::now();
                        apply_serial(&clone, &runner, &plan.pending).await.unwrap();
                        total += started.elapsed();
                        server.drop_database(&clone.dbname).await.unwrap();
                    }
                    total
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, migrations);
criterion_main!(benches);
