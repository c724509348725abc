//! `rehearse trace`: the per-statement lock trace of a migration on a
//! throwaway database (baseline applied first), printed as a table with the
//! lint findings and whether execution confirmed them (issue 6).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::locks::{self, Confirmation, LockReport, LockType, TraceOptions, TraceOutcome};
use crate::migrate::{Layout, MigrateError, Migration, MigrationSet, RunnerKind, apply_serial};
use crate::provision::Postgres;
use crate::seed::{SeedOptions, SeedSpec, seed_database};

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// A migration file, or a directory of migrations (all traced, in order).
    #[arg(value_name = "MIGRATION")]
    migration: PathBuf,
    /// What production has today: a SQL file or a migrations directory.
    #[arg(long, value_name = "SQL_OR_DIR")]
    baseline: Option<PathBuf>,
    /// A seeds file for production-size data.
    #[arg(long, value_name = "SEEDS")]
    seed: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Loads a directory of migrations, or one file as a one-migration set.
fn load(path: &Path) -> Result<Vec<Migration>, MigrateError> {
    if path.is_dir() {
        return Ok(MigrationSet::load(path, Layout::Auto)?.migrations);
    }
    // One file: give it a name every layout reads (`<version>_<name>.sql`)
    // in a scratch directory, so the layout's own rules (statement
    // splitting, no-transaction markers) apply to it.
    let scratch = tempfile::tempdir().map_err(|e| MigrateError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let stem = path
        .file_stem()
        .map_or("migration".into(), |s| s.to_string_lossy().into_owned());
    let name = format!(
        "1_{}.sql",
        stem.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    std::fs::copy(path, scratch.path().join(name)).map_err(|e| MigrateError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(MigrationSet::load(scratch.path(), Layout::Sqlx)?.migrations)
}

pub(crate) async fn trace(args: TraceArgs, quiet: bool) -> Exit {
    let pending = match load(&args.migration) {
        Ok(pending) => pending,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let baseline = match args.baseline.as_deref().map(load).transpose() {
        Ok(baseline) => baseline.unwrap_or_default(),
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let seed = match args.seed.as_deref().map(SeedSpec::load).transpose() {
        Ok(seed) => seed,
        Err(e) => return fail(&e, Exit::BadInput),
    };
    let postgres = match Postgres::start(&args.backend.options(None)).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
    if !quiet {
        eprintln!("rehearse: tracing on {}", postgres.describe());
    }
    let exit = trace_on(&postgres, &baseline, seed.as_ref(), &pending).await;
    if let Err(e) = postgres.shutdown().await {
        return fail(&format!("cleanup failed: {e}"), Exit::Infrastructure);
    }
    exit
}

async fn trace_on(
    postgres: &Postgres,
    baseline: &[Migration],
    seed: Option<&SeedSpec>,
    pending: &[Migration],
) -> Exit {
    let db = match postgres.create_database(None).await {
        Ok(db) => db,
        Err(e) => return fail(&e, Exit::Infrastructure),
    };
    if let Err(e) = apply_serial(&db, &RunnerKind::Naive, baseline).await {
        return fail(&format!("baseline: {e}"), Exit::BadInput);
    }
    // Seeded volume: durations and rewrites as production-size data shows them.
    if let Some(spec) = seed {
        let options = SeedOptions {
            progress: false,
            ..SeedOptions::default()
        };
        if let Err(e) = seed_database(&db, Some(spec), &options).await {
            return fail(&format!("seeding: {e}"), Exit::Infrastructure);
        }
    }
    let trace = match locks::trace_database(&db, pending, &TraceOptions::default()).await {
        Ok(trace) => trace,
        Err(e) => return fail(&e, Exit::Infrastructure),
    };
    let report = LockReport::new(pending, Some(trace), None);
    let mut out = std::io::stdout().lock();
    if let Err(e) = print_table(&mut out, &report) {
        return fail(&e, Exit::Infrastructure);
    }
    Exit::Pass
}

/// Writes the per-statement table.
pub(crate) fn print_table(
    out: &mut impl std::io::Write,
    report: &LockReport,
) -> std::io::Result<()> {
    let Some(trace) = &report.trace else {
        return Ok(());
    };
    for s in &trace.statements {
        let first_line =
            crate::report::redact::redact_sql(s.sql.lines().next().unwrap_or("").trim());
        writeln!(out, "{} line {}: {first_line}", s.version, s.line)?;
        match &s.outcome {
            TraceOutcome::Ran => {}
            TraceOutcome::Failed { sqlstate, message } => writeln!(
                out,
                "  failed: {message}{}",
                sqlstate
                    .as_ref()
                    .map_or(String::new(), |c| format!(" ({})", c.code()))
            )?,
            TraceOutcome::NotTraced { reason } => writeln!(out, "  not traced: {reason}")?,
        }
        if s.outcome == TraceOutcome::Ran {
            // Relations that no longer have a name (a rewrite's transient
            // heap) and catalog object locks are counted, not listed.
            let (named, other): (Vec<_>, Vec<_>) = s
                .acquired
                .iter()
                .partition(|l| l.locktype == LockType::Relation && l.relkind.is_some());
            let mut locks: Vec<String> = named
                .iter()
                .filter_map(|l| l.relation.as_ref().map(|r| format!("{r} {}", l.mode)))
                .collect();
            if !other.is_empty() {
                locks.push(format!("+{} other", other.len()));
            }
            writeln!(
                out,
                "  {:.1} ms | locks: {} | rewrite: {}",
                s.duration_us as f64 / 1_000.0,
                if locks.is_empty() {
                    "none new".into()
                } else {
                    locks.join(", ")
                },
                if s.rewritten.is_empty() {
                    "no".into()
                } else {
                    format!("yes ({})", s.rewritten.join(", "))
                }
            )?;
        }
        for f in report
            .lint
            .iter()
            .filter(|f| f.version == s.version && f.index == s.index)
        {
            let mark = match f.confirmation {
                Confirmation::Confirmed => "confirmed",
                Confirmation::NotConfirmed => "not confirmed",
                Confirmation::Contradicted => "contradicted by execution",
            };
            writeln!(
                out,
                "  lint {} [{mark}]: {}; fix: {}",
                f.rule, f.message, f.fix
            )?;
        }
    }
    Ok(())
}
