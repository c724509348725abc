//! The persistent template cache: what a second `rehearse run` of a seeded
//! scenario spends on provision + baseline + seed, against the first run
//! that built the template, measured in the same process, cold and warm
//! runs interleaved.
//!
//! `cargo bench --bench template_cache` (local backend). Environment:
//! `REHEARSE_BENCH_SCALE` (default 1.0: the ecommerce example's ~547k
//! rows), `REHEARSE_BENCH_ROUNDS` (default 3). Prints each round and the
//! median ratio; the target is <= 0.2.

use std::path::Path;
use std::time::Instant;

use pg_rehearse::provision::cache::{CacheSettings, human_size, list};
use pg_rehearse::provision::{Backend, ProvisionOptions};
use pg_rehearse::rehearsal::{Plan, ServerPool};
use pg_rehearse::report::ScenarioReport;
use pg_rehearse::scenario::Scenario;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Milliseconds of the stages the cache saves: provision and baseline
/// (baseline migrations + seed, or the restore).
fn setup_ms(report: &ScenarioReport) -> u64 {
    report
        .stages
        .iter()
        .filter(|s| s.stage == "provision" || s.stage == "baseline")
        .map(|s| s.duration_ms)
        .sum()
}

/// One run as `rehearse run` does it; the setup time, the summary of the
/// baseline stage, and the time the shutdown took (saving the cache entry).
async fn run(plan: &Plan, cache: &CacheSettings) -> (u64, String, u64) {
    let options = ProvisionOptions {
        template_cache: Some(cache.clone()),
        ..ProvisionOptions::default().with_backend(Backend::Local)
    };
    let mut pool = ServerPool::default();
    let report = pool.rehearse(plan, &options).await;
    let started = Instant::now();
    pool.shutdown().await.expect("shutdown");
    let shutdown = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    assert!(report.error.is_none(), "{:?}", report.error);
    let summary = report
        .stages
        .iter()
        .find(|s| s.stage == "baseline")
        .map(|s| s.summary.clone())
        .unwrap_or_default();
    (setup_ms(&report), summary, shutdown)
}

#[tokio::main]
async fn main() {
    let scale: f64 = env_or("REHEARSE_BENCH_SCALE", 1.0);
    let rounds: usize = env_or("REHEARSE_BENCH_ROUNDS", 3);
    let mut plan = Plan::prepare(
        Scenario::load(Path::new("scenarios/ecommerce/scenario.toml")).expect("scenario"),
    )
    .expect("plan");
    if let Some(seed) = plan.scenario.seed.as_mut() {
        seed.scale = scale;
    }
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = CacheSettings {
            dir: dir.path().join("cache"),
            max_size: 16 << 30,
        };
        let (cold, cold_summary, save) = run(&plan, &cache).await;
        assert!(cold_summary.ends_with("(built)"), "{cold_summary}");
        let size = list(&cache.dir)
            .expect("cache")
            .first()
            .map_or(0, |e| e.size);
        let (warm, warm_summary, _) = run(&plan, &cache).await;
        assert!(
            warm_summary.ends_with("(restored from the template cache)"),
            "{warm_summary}"
        );
        #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
        let ratio = warm as f64 / cold as f64;
        println!(
            "round {round}: first run {cold} ms (+{save} ms saving a {} entry), second run \
             {warm} ms: ratio {ratio:.3}",
            human_size(size)
        );
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    println!(
        "template cache, ecommerce seed at scale {scale}: second/first provision+baseline+seed \
         = {median:.3} (median of {rounds}; target <= 0.2)"
    );
}
