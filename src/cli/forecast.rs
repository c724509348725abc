//! `rehearse forecast`: how long the pending migrations' locks would be
//! held at production size. The statements are timed at a few small sizes
//! (fractions of production seeded from a stats snapshot, or multiples of
//! the seeds file), fitted per statement and read off at production's row
//! counts (see `crate::forecast`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::forecast::measure::{Timing, forecast, time_statements};
use crate::migrate::apply_serial;
use crate::provision::Postgres;
use crate::rehearsal::Plan;
use crate::report::forecast::{write_json, write_markdown, write_terminal};
use crate::scenario::Scenario;
use crate::seed::{SeedOptions, seed_database};
use crate::stats::StatsSnapshot;

#[derive(Debug, Args)]
pub(crate) struct ForecastArgs {
    /// The scenario file or folder.
    #[arg(value_name = "SCENARIO")]
    scenario: PathBuf,
    /// Production statistics (`rehearse stats capture`); default: the
    /// scenario's `[seed] stats`.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Production rows of a table, `TABLE=ROWS` (repeatable; wins over the
    /// snapshot).
    #[arg(long = "rows", value_name = "TABLE=ROWS", value_parser = parse_rows)]
    rows: Vec<(String, f64)>,
    /// Sizes to time, as fractions of production (with a snapshot) or
    /// multiples of the seeds file's scale (without one).
    #[arg(long, value_delimiter = ',')]
    fractions: Option<Vec<f64>>,
    /// The largest table may have at most this many rows at the largest
    /// size: fractions are scaled down to fit.
    #[arg(long, default_value_t = 1_000_000)]
    max_rows: u64,
    /// Fail (exit 1) when a forecast hold of a lock that blocks reads or
    /// writes is longer than this. Default: the scenario's `[expect]
    /// lock_budget_ms`, else 1000 ms, the same budget `rehearse run` judges
    /// measured holds against (docs/verdicts.md).
    #[arg(long, visible_alias = "lock-budget", value_name = "MS")]
    budget_ms: Option<u64>,
    /// Write the forecast as JSON here too.
    #[arg(long, value_name = "FILE")]
    report_file: Option<PathBuf>,
    /// Write the forecast as a Markdown section here too.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

fn parse_rows(text: &str) -> Result<(String, f64), String> {
    let (table, rows) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected TABLE=ROWS"))?;
    let rows: f64 = rows
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{text}`: ROWS is not a number"))?;
    if !(rows.is_finite() && rows > 0.0) {
        return Err(format!("`{text}`: ROWS must be positive"));
    }
    Ok((table.trim().to_owned(), rows))
}

pub(crate) async fn forecast_command(args: ForecastArgs, quiet: bool) -> Exit {
    let plan = match Scenario::load(&args.scenario)
        .map_err(|e| e.to_string())
        .and_then(|s| Plan::prepare(s).map_err(|e| format!("{}: {e}", args.scenario.display())))
    {
        Ok(plan) => plan,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let section = plan.scenario.forecast.clone().unwrap_or_default();
    // Flags win over `[forecast]`, which wins over `[seed] stats`.
    let stats_path = args
        .stats
        .clone()
        .or_else(|| section.stats.clone())
        .or_else(|| plan.scenario.seed.as_ref().and_then(|s| s.stats.clone()));
    let explicit_stats = args.stats.is_some() || section.stats.is_some();
    let snapshot = match stats_path.as_ref().map(|p| StatsSnapshot::load(p)) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return fail(&e, Exit::BadInput),
    };
    let mut user_rows: BTreeMap<String, f64> = section.rows.clone();
    user_rows.extend(args.rows.iter().cloned());
    let max_rows = section.max_rows.unwrap_or(args.max_rows);
    if snapshot.is_none() && user_rows.is_empty() {
        return fail(
            &"no production size: give --stats FILE, `[seed] stats` or --rows TABLE=ROWS",
            Exit::BadInput,
        );
    }
    let source = match (&stats_path, user_rows.is_empty()) {
        (Some(p), true) => format!("stats {}", p.display()),
        (Some(p), false) => format!("stats {} and --rows", p.display()),
        (None, _) => "--rows".to_owned(),
    };
    // Sizes: with a snapshot the seed's scale is a fraction of production.
    let with_stats = snapshot.is_some();
    let mut sizes = args
        .fractions
        .clone()
        .or(section.fractions.clone())
        .unwrap_or_else(|| {
            if with_stats {
                vec![0.0025, 0.005, 0.01]
            } else {
                vec![1.0, 2.0, 4.0]
            }
        });
    if sizes.len() < 2 || sizes.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
        return fail(
            &"--fractions needs at least two positive numbers",
            Exit::BadInput,
        );
    }
    if let Some(snapshot) = &snapshot {
        let largest = snapshot
            .tables
            .iter()
            .filter_map(|t| t.rows)
            .fold(0.0, f64::max);
        let top = sizes.iter().copied().fold(0.0, f64::max);
        if largest * top > max_rows as f64 {
            let shrink = max_rows as f64 / (largest * top);
            for f in &mut sizes {
                *f *= shrink;
            }
        }
    }
    let production = |table: &str| -> Option<f64> {
        let bare = table.rsplit('.').next().unwrap_or(table);
        user_rows
            .get(table)
            .or_else(|| user_rows.get(bare))
            .copied()
            .or_else(|| snapshot.as_ref()?.table(table)?.rows)
    };

    let options = args.backend.options(plan.scenario.backend);
    let postgres = match Postgres::start(&options).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
    // A snapshot given with --stats shapes the seed too.
    let spec = match (&snapshot, plan.seed_spec.clone()) {
        (Some(snapshot), spec) if explicit_stats => Some(
            spec.unwrap_or_else(crate::seed::SeedSpec::empty)
                .with_stats(std::sync::Arc::new(snapshot.clone())),
        ),
        (_, spec) => spec,
    };
    let measured = measure(&plan, spec, &postgres, &sizes, with_stats, quiet).await;
    if let Err(e) = postgres.shutdown().await {
        eprintln!("rehearse: warning: cleanup failed: {e}");
    }
    let timings = match measured {
        Ok(t) => t,
        Err(e) => return fail(&e, Exit::Infrastructure),
    };
    let report = forecast(&plan.scenario.name, &source, &timings, &production);
    // The forecast is judged against the same budget as the measured holds.
    let budget_ms = args
        .budget_ms
        .unwrap_or_else(|| plan.scenario.expect.lock_budget().ms);
    if let Err(e) = write_terminal(&report, Some(budget_ms), &mut std::io::stdout().lock()) {
        return fail(&format!("writing the forecast: {e}"), Exit::Infrastructure);
    }
    if let Some(path) = &args.report_file {
        let written = std::fs::File::create(path).and_then(|mut f| write_json(&report, &mut f));
        if let Err(e) = written {
            return fail(
                &format!("writing {}: {e}", path.display()),
                Exit::Infrastructure,
            );
        }
    }
    if let Some(path) = &args.markdown {
        let written = std::fs::File::create(path).and_then(|mut f| write_markdown(&report, &mut f));
        if let Err(e) = written {
            return fail(
                &format!("writing {}: {e}", path.display()),
                Exit::Infrastructure,
            );
        }
    }
    if report
        .forecast_exceeds(std::time::Duration::from_millis(budget_ms))
        .is_empty()
    {
        Exit::Pass
    } else {
        Exit::FindingsFail
    }
}

/// Per size: a template with the baseline and the seed at that size, a
/// clone, the pending migrations timed statement by statement on it.
async fn measure(
    plan: &Plan,
    spec: Option<crate::seed::SeedSpec>,
    postgres: &Postgres,
    sizes: &[f64],
    with_stats: bool,
    quiet: bool,
) -> Result<Vec<Vec<Timing>>, String> {
    let runner = plan.scenario.replicas.runner;
    let seed = plan.scenario.seed.as_ref();
    let mut out = Vec::new();
    for &size in sizes {
        let scale = if with_stats {
            size
        } else {
            seed.map_or(1.0, |s| s.scale) * size
        };
        let options = SeedOptions {
            seed: seed.map_or(0, |s| s.seed),
            scale,
            hostile: false,
            progress: false,
        };
        let baseline = plan.baseline.clone();
        let spec = spec.clone();
        let key = format!("forecast-{scale}-{}", plan.template_key());
        let template = postgres
            .template(&key, |conn| async move {
                apply_serial(&conn, &runner, &baseline)
                    .await
                    .map_err(|e| e.to_string())?;
                seed_database(&conn, spec.as_ref(), &options)
                    .await
                    .map_err(|e| format!("seeding: {e}"))?;
                Ok::<(), String>(())
            })
            .await
            .map_err(|e| e.to_string())?;
        let clone = postgres
            .clone_database(&template, None)
            .await
            .map_err(|e| e.to_string())?;
        let timed = async {
            let client = clone
                .connect("rehearse-forecast")
                .await
                .map_err(|e| e.to_string())?;
            time_statements(&client, &plan.pending).await
        }
        .await;
        postgres
            .drop_database(&clone.dbname)
            .await
            .map_err(|e| e.to_string())?;
        let timed = timed?;
        if !quiet {
            let rows = timed.iter().map(|t| t.rows).fold(0.0, f64::max);
            eprintln!(
                "rehearse: size {scale}: largest table touched {} rows, {} statements timed",
                rows as u64,
                timed.len()
            );
        }
        out.push(timed);
    }
    Ok(out)
}
