//! The persistent template cache on the local backend: a second run restores
//! the seeded template instead of building it, with the same data, and a
//! changed seeds file misses.

mod seed_support;

use std::path::Path;

use pg_rehearse::migrate::apply_serial_in;
use pg_rehearse::provision::cache::{CacheSettings, list};
use pg_rehearse::provision::{Backend, Postgres, ProvisionOptions};
use pg_rehearse::rehearsal::{Plan, ServerPool};
use pg_rehearse::report::Verdict;
use pg_rehearse::scenario::Scenario;
use pg_rehearse::seed::{SeedOptions, seed_database};

/// The ecommerce example at a small scale, in a directory of its own so
/// that its seeds file can be changed.
fn scenario_dir(dir: &Path) -> std::path::PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for file in ["0001_schema.sql", "0002_orders_channel.sql"] {
        std::fs::copy(
            Path::new("scenarios/ecommerce/migrations").join(file),
            migrations.join(file),
        )
        .unwrap();
    }
    std::fs::copy("seeds/ecommerce.toml", dir.join("seeds.toml")).unwrap();
    let path = dir.join("scenario.toml");
    std::fs::write(
        &path,
        "name = \"cached\"\n\
         [migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
         [seed]\nspec = \"seeds.toml\"\nseed = 7\nscale = 0.02\n\
         [replicas]\ncount = 2\nrunner = \"session-advisory-lock\"\n",
    )
    .unwrap();
    path
}

fn plan(path: &Path) -> Plan {
    Plan::prepare(Scenario::load(path).unwrap()).unwrap()
}

fn options(cache: Option<&CacheSettings>) -> ProvisionOptions {
    ProvisionOptions {
        template_cache: cache.cloned(),
        ..ProvisionOptions::default().with_backend(Backend::Local)
    }
}

/// Rehearses through the pipeline `rehearse run` uses; the baseline
/// stage's summary and the verdict.
async fn rehearse(plan: &Plan, cache: &CacheSettings) -> Option<(String, Verdict)> {
    // Skips loudly (fails under CI) without local binaries.
    pg_rehearse::testing::start_or_skip(&options(None))
        .await?
        .shutdown()
        .await
        .unwrap();
    let mut pool = ServerPool::default();
    let report = pool.rehearse(plan, &options(Some(cache))).await;
    pool.shutdown().await.unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    let baseline = report
        .stages
        .iter()
        .find(|s| s.stage == "baseline")
        .expect("a baseline stage");
    Some((baseline.summary.clone(), report.verdict))
}

/// Row counts and checksums of every table of a clone of `plan`'s template
/// on `postgres`, building the template when `build` (else insisting that
/// it exists already).
async fn template_data(postgres: &Postgres, plan: &Plan, build: bool) -> Vec<(String, String)> {
    let (baseline, runner) = (plan.baseline.clone(), plan.scenario.replicas.runner);
    // As the rehearsal builds it: the layout's tool's bookkeeping table.
    let layout = plan.scenario.replicas.layout;
    let spec = plan.seed_spec.clone();
    let seed = plan.scenario.seed.clone().unwrap();
    let template = postgres
        .template(&plan.template_key(), |conn| async move {
            if !build {
                return Err("the template should have come from the cache".to_string());
            }
            apply_serial_in(&conn, &runner, layout, &baseline)
                .await
                .map_err(|e| e.to_string())?;
            let options = SeedOptions {
                seed: seed.seed,
                scale: seed.scale,
                hostile: seed.hostile,
                progress: false,
            };
            seed_database(&conn, spec.as_ref(), &options)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
    assert_eq!(template.built, build);
    let clone = postgres.clone_database(&template, None).await.unwrap();
    let client = clone.connect("template-cache-test").await.unwrap();
    let mut data = seed_support::checksums(&client).await;
    for (table, sum) in &mut data {
        let rows = seed_support::count(&client, table).await;
        assert!(rows > 0 || table.contains("sqlx"), "{table} is empty");
        *sum = if table == "_sqlx_migrations" {
            // sqlx's own table records when and how fast each migration
            // ran: the same versions, never the same row contents.
            let versions: Vec<i64> = client
                .query("SELECT version FROM _sqlx_migrations ORDER BY version", &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get(0))
                .collect();
            format!("{rows} rows, versions {versions:?}")
        } else {
            format!("{rows} rows, {sum}")
        };
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_restores_the_seeded_template_and_a_changed_seeds_file_misses() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CacheSettings {
        dir: dir.path().join("cache"),
        max_size: 1 << 30,
    };
    let path = scenario_dir(&dir.path().join("scenario"));
    let first_plan = plan(&path);
    let first_key = first_plan.template_key();
    let Some((first, verdict)) = rehearse(&first_plan, &cache).await else {
        return;
    };
    assert!(first.ends_with("(built)"), "{first}");
    let entries = list(&cache.dir).unwrap();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0]
            .manifest
            .templates
            .iter()
            .any(|t| t.key == first_plan.template_key())
    );

    let (second, second_verdict) = rehearse(&first_plan, &cache).await.unwrap();
    assert!(
        second.ends_with("(restored from the template cache)"),
        "{second}"
    );
    assert_eq!(second_verdict, verdict);

    // The restored template holds exactly what a fresh build holds.
    let cached_options = ProvisionOptions {
        cached_template: Some(first_plan.template_key()),
        ..options(Some(&cache))
    };
    let cached = Postgres::start(&cached_options).await.unwrap();
    assert!(cached.template_from_cache(&first_plan.template_key()));
    let restored = template_data(&cached, &first_plan, false).await;
    cached.shutdown().await.unwrap();
    let fresh = Postgres::start(&options(None)).await.unwrap();
    let built = template_data(&fresh, &first_plan, true).await;
    fresh.shutdown().await.unwrap();
    assert!(restored.len() >= 6, "{restored:?}");
    assert_eq!(restored, built);

    // Another seeds file is another template.
    let seeds = dir.path().join("scenario/seeds.toml");
    let text = std::fs::read_to_string(&seeds).unwrap();
    std::fs::write(&seeds, text.replace("rows = 2000\n", "rows = 2500\n")).unwrap();
    let changed = plan(&path);
    assert_ne!(changed.template_key(), first_key);
    let (third, _) = rehearse(&changed, &cache).await.unwrap();
    assert!(third.ends_with("(built)"), "{third}");
    // Saved beside the first, most recently used first.
    let entries = list(&cache.dir).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].manifest.templates[0].key, changed.template_key());

    // What users see of it, and how they empty it.
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rehearse"))
            .args(args)
            .arg("--cache-dir")
            .arg(&cache.dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let listing = cli(&["cache", "ls"]);
    assert!(listing.contains("2 entries"), "{listing}");
    assert!(listing.contains(&changed.template_key()), "{listing}");
    let pruned = cli(&["cache", "prune", "--all"]);
    assert!(pruned.contains("0 entries left"), "{pruned}");
    assert!(list(&cache.dir).unwrap().is_empty());
}
