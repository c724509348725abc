//! `rehearse bench`: how long the pending migrations take at several seed
//! scales, the fitted growth, and a comparison with a stored baseline, for
//! nightly regression detection.
//!
//! Per scale: a template with the baseline applied and seeded at that
//! scale (built once per content hash), then for each repetition a fresh
//! clone on which the pending migrations are applied serially and timed.
//! The fastest repetition counts: noise only ever adds time.
//!
//! Lock holds are measured, not inferred: while the migrations run, the
//! lock sampler a rehearsal uses reads `pg_locks` every 10 ms (no
//! measurable cost, see the sampler), and the migration connection's holds
//! give the longest hold per relation and mode. That includes the time to
//! commit and any wait, which a per-statement trace in a rolled-back
//! transaction would miss; its resolution is the sampling interval, so a
//! hold shorter than that may not be seen, and the report says so.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::locks::{self, Holder, SamplerOptions};
use crate::migrate::{apply_serial, serial_application_name};
use crate::provision::{ConnInfo, Postgres};
use crate::rehearsal::Plan;
use crate::report::bench::{
    BenchPoint, BenchReport, ScaleLocks, fit_growth, lock_regressions, measures_locks, regressions,
    write_table,
};
use crate::report::summary::human_us;
use crate::scenario::Scenario;
use crate::seed::{SeedOptions, seed_database};

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The scenario file or folder.
    #[arg(value_name = "SCENARIO")]
    scenario: PathBuf,
    /// Seed scales, comma-separated (multiply the seeds file's row counts).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    scales: Vec<f64>,
    /// Timed repetitions per scale (the fastest counts).
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// A baseline file from `--save-baseline` to compare with.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write this run's results as a baseline file.
    #[arg(long, value_name = "FILE")]
    save_baseline: Option<PathBuf>,
    /// Percent slower than the baseline (or longer held, for a lock that
    /// blocks reads or writes) that fails the run (exit 1).
    #[arg(long, default_value_t = 20.0)]
    threshold: f64,
    /// Write the results as JSON here too.
    #[arg(long, value_name = "FILE")]
    report_file: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Counts every row of every user table exactly (statistics may lag).
const COUNT_ROWS: &str = "SELECT coalesce(sum((xpath('/row/c/text()', \
     query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, relname), \
     false, true, '')))[1]::text::bigint), 0)::bigint FROM pg_stat_user_tables";

pub(crate) async fn bench(args: BenchArgs, quiet: bool) -> Exit {
    let plan = match Scenario::load(&args.scenario)
        .map_err(|e| e.to_string())
        .and_then(|s| Plan::prepare(s).map_err(|e| format!("{}: {e}", args.scenario.display())))
    {
        Ok(plan) => plan,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    if args.scales.is_empty() || args.scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return fail(&"--scales must be positive numbers", Exit::BadInput);
    }
    let baseline = match args.baseline.as_ref().map(read_baseline).transpose() {
        Ok(baseline) => baseline,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let options = args.backend.options(plan.scenario.backend);
    let options = options
        .clone()
        .with_max_connections(plan.server_max_connections(&options));
    let postgres = match Postgres::start(&options).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
    let measured = measure(&plan, &postgres, &args, quiet).await;
    if let Err(e) = postgres.shutdown().await {
        eprintln!("rehearse: warning: cleanup failed: {e}");
    }
    let points = match measured {
        Ok(points) => points,
        Err(e) => return fail(&e, Exit::Infrastructure),
    };
    let growth = fit_growth(&points);
    let report = BenchReport {
        scenario: plan.scenario.name.clone(),
        points,
        growth,
    };
    if let Err(e) = write_table(&report, &mut std::io::stdout().lock()) {
        return fail(&format!("writing the table: {e}"), Exit::Infrastructure);
    }
    for path in [&args.save_baseline, &args.report_file]
        .into_iter()
        .flatten()
    {
        if let Err(e) = write_json(path, &report) {
            return fail(
                &format!("writing {}: {e}", path.display()),
                Exit::Infrastructure,
            );
        }
    }
    let Some(baseline) = baseline else {
        return Exit::Pass;
    };
    let slower = regressions(&baseline, &report, args.threshold);
    for r in &slower {
        println!(
            "REGRESSION at scale {}: {} vs baseline {} ({:.0}% slower, threshold {}%)",
            r.scale,
            human_us(r.current_us),
            human_us(r.baseline_us),
            r.slower_pct,
            args.threshold
        );
    }
    let longer = lock_regressions(&baseline, &report, args.threshold);
    for r in &longer {
        println!("{}", r.describe(args.threshold));
    }
    if !measures_locks(&baseline) {
        println!("the baseline has no lock holds (an older version wrote it): not compared");
    }
    if slower.is_empty() && longer.is_empty() {
        println!("within {}% of the baseline", args.threshold);
        Exit::Pass
    } else {
        Exit::FindingsFail
    }
}

async fn measure(
    plan: &Plan,
    postgres: &Postgres,
    args: &BenchArgs,
    quiet: bool,
) -> Result<Vec<BenchPoint>, String> {
    let runner = plan.scenario.replicas.runner;
    let tool = plan.scenario.replicas.tool();
    let mut points = Vec::new();
    for &scale in &args.scales {
        let seed = plan.scenario.seed.as_ref();
        let options = SeedOptions {
            seed: seed.map_or(0, |s| s.seed),
            scale: seed.map_or(1.0, |s| s.scale) * scale,
            hostile: false,
            progress: false,
        };
        let baseline = plan.baseline.clone();
        let spec = plan.seed_spec.clone();
        let tool = tool.clone();
        // The scale goes first: template names keep only the key's start.
        let key = format!("bench-{scale}-{}", plan.template_key());
        let template = postgres
            .template(&key, |conn| async move {
                match &tool {
                    Some(tool) => crate::migrate::apply_tool_baseline(&conn, tool, &baseline).await,
                    None => apply_serial(&conn, &runner, &baseline).await,
                }
                .map_err(|e| e.to_string())?;
                seed_database(&conn, spec.as_ref(), &options)
                    .await
                    .map_err(|e| format!("seeding: {e}"))?;
                Ok::<(), String>(())
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut best: Option<u64> = None;
        let mut rows = 0;
        let mut runs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            let clone = postgres
                .clone_database(&template, None)
                .await
                .map_err(|e| e.to_string())?;
            let timed = time_pending(plan, &clone).await;
            postgres
                .drop_database(&clone.dbname)
                .await
                .map_err(|e| e.to_string())?;
            let run = timed?;
            rows = run.rows;
            best = Some(best.map_or(run.duration_us, |b| b.min(run.duration_us)));
            runs.push(run.locks);
        }
        let duration_us = best.unwrap_or(0);
        let locks = ScaleLocks::fastest_of(&runs);
        if !quiet {
            let worst = locks
                .as_ref()
                .and_then(ScaleLocks::worst_blocking)
                .map_or_else(
                    || "no blocking lock seen".to_string(),
                    |h| {
                        format!(
                            "longest blocking hold {} ({})",
                            human_us(h.hold_us),
                            h.label()
                        )
                    },
                );
            eprintln!(
                "rehearse: scale {scale}: {rows} rows, migration {}, {worst}",
                human_us(duration_us)
            );
        }
        points.push(BenchPoint {
            scale,
            rows,
            duration_us,
            locks,
        });
    }
    Ok(points)
}

/// One repetition at one scale.
struct Run {
    rows: u64,
    duration_us: u64,
    locks: ScaleLocks,
}

/// Counts the rows, then applies the pending migrations and times them,
/// with the lock sampler watching.
async fn time_pending(plan: &Plan, clone: &ConnInfo) -> Result<Run, String> {
    let client = clone
        .connect("rehearse-bench")
        .await
        .map_err(|e| e.to_string())?;
    let rows: i64 = client
        .query_one(COUNT_ROWS, &[])
        .await
        .map_err(|e| format!("counting rows: {e}"))?
        .get(0);
    drop(client);
    let options = SamplerOptions::default().with_interval(plan.scenario.locks.sample_interval());
    let deadline = options.deadline;
    let sampler = locks::sampler::start(clone, options)
        .await
        .map_err(|e| format!("lock sampler: {e}"))?;
    let started = Instant::now();
    let config = &plan.scenario.replicas;
    let applied = match config.tool() {
        // The user's tool migrates once, as the job would.
        Some(tool) => crate::migrate::run_tool_once(clone, &tool, &config.command, &plan.pending)
            .await
            .map_err(crate::migrate::RunnerError::Command),
        None => apply_serial(clone, &config.runner, &plan.pending).await,
    };
    let elapsed = started.elapsed();
    // Stopped before the result is looked at: a failed apply must not
    // leave the sampler running.
    let samples = sampler
        .stop()
        .await
        .map_err(|e| format!("lock sampler: {e}"))?;
    applied.map_err(|e| e.to_string())?;
    if elapsed > deadline {
        eprintln!(
            "rehearse: warning: the migration ran longer than the lock sampler samples ({}): \
             its lock holds cover that much only",
            human_us(u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX))
        );
    }
    let analysis = locks::analyse(&samples, &plan.pending, None);
    let migration = Holder::from_application_name(&serial_application_name());
    Ok(Run {
        rows: u64::try_from(rows).unwrap_or(0),
        duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        locks: ScaleLocks::of(&analysis, &migration),
    })
}

fn read_baseline(path: &PathBuf) -> Result<BenchReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a bench baseline: {e}", path.display()))
}

fn write_json(path: &PathBuf, report: &BenchReport) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
}
