//! `rehearse trace`: the per-statement lock trace of a migration history on
//! a throwaway database (baseline applied first), each migration in its
//! own transaction as its tool applies it. Text is printed migration by
//! migration as the trace runs; `--format json|md` print the whole report
//! at the end. Exit 1 when a statement fails (like lint tools), 0 when
//! every statement ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{BackendArgs, fail, provision_exit};
use crate::exit::Exit;
use crate::locks::{
    self, Confirmation, LintFinding, LockMode, LockReport, Trace, TraceOptions, TraceOutcome,
    TracedStatement,
};
use crate::migrate::{Layout, MigrateError, Migration, MigrationSet, RunnerKind, apply_serial};
use crate::provision::Postgres;
use crate::seed::{SeedOptions, SeedSpec, seed_database};

/// How `trace` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TraceFormat {
    /// For people, streamed migration by migration.
    Text,
    /// Every detail, one document at the end.
    Json,
    /// A Markdown table per migration (for a pull-request comment).
    Md,
}

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
    /// Output format.
    #[arg(long, value_enum, default_value_t = TraceFormat::Text)]
    format: TraceFormat,
    /// Seconds the whole trace may take; also each statement's
    /// statement_timeout. Statements past it fail (57014) or are not run.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
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
    let mut migrations = MigrationSet::load(scratch.path(), Layout::Sqlx)?.migrations;
    // Named by the file itself, not by the scratch copy's number.
    for m in &mut migrations {
        m.version = path.display().to_string();
        m.path = path.to_path_buf();
    }
    Ok(migrations)
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
    if args.timeout == 0 {
        return fail(&"--timeout must be at least 1 second", Exit::BadInput);
    }
    let postgres = match Postgres::start(&args.backend.options(None)).await {
        Ok(postgres) => postgres,
        Err(e) => return fail(&e, provision_exit(&e)),
    };
    if !quiet {
        eprintln!(
            "rehearse: tracing {} migration(s) on {}, {}",
            pending.len(),
            postgres.describe(),
            match (seed.is_some(), baseline.is_empty()) {
                (true, _) => "with seeded data",
                (false, true) => {
                    "on an empty database (no --seed): durations and row counts are those of empty tables"
                }
                (false, false) => {
                    "no --seed: the tables hold only the rows the baseline inserts"
                }
            }
        );
    }
    let options = TraceOptions::bounded(Duration::from_secs(args.timeout));
    let exit = trace_on(
        &postgres,
        &baseline,
        seed.as_ref(),
        &pending,
        &options,
        args.format,
    )
    .await;
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
    options: &TraceOptions,
    format: TraceFormat,
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
    let mut write_error = None;
    let mut on_migration = |migration: &Migration, statements: &[TracedStatement]| {
        if format != TraceFormat::Text || write_error.is_some() {
            return;
        }
        let mut lint = locks::lint::lint(std::slice::from_ref(migration));
        locks::lint::confirm(&mut lint, statements);
        let mut out = std::io::stdout().lock();
        if let Err(e) =
            print_migration(&mut out, migration, statements, &lint).and_then(|()| out.flush())
        {
            write_error = Some(e);
        }
    };
    let trace =
        match locks::trace_database_streaming(&db, pending, options, &mut on_migration).await {
            Ok(trace) => trace,
            Err(e) => return fail(&e, Exit::Infrastructure),
        };
    if let Some(e) = write_error {
        return fail(&e, Exit::Infrastructure);
    }
    let failures = trace.failures();
    let timed_out = trace.timed_out;
    let statements = trace.statements.len();
    let report = LockReport::new(pending, Some(trace), None);
    let mut out = std::io::stdout().lock();
    let written = match format {
        TraceFormat::Text => print_summary(&mut out, &report),
        TraceFormat::Json => serde_json::to_writer(&mut out, &JsonTrace::new(pending, &report))
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        TraceFormat::Md => print_markdown(&mut out, pending, &report),
    };
    if let Err(e) = written {
        return fail(&e, Exit::Infrastructure);
    }
    if failures > 0 || timed_out {
        eprintln!(
            "rehearse: {failures} of {statements} statement(s) failed{}",
            if timed_out {
                "; the --timeout ran out before the end"
            } else {
                ""
            }
        );
        return Exit::FindingsFail;
    }
    Exit::Pass
}

/// What a lock mode stops, in words.
fn blocks(mode: LockMode) -> &'static str {
    if mode.blocks_reads() {
        "blocks reads and writes"
    } else if mode.blocks_writes() {
        "blocks writes"
    } else if mode.conflicts_with(LockMode::RowShare) {
        "blocks SELECT FOR UPDATE"
    } else if mode.conflicts_with(LockMode::ShareUpdateExclusive) {
        "blocks other DDL and VACUUM"
    } else {
        "blocks nothing the application takes"
    }
}

/// The first line of a statement, shortened.
fn headline(sql: &str) -> String {
    let first = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .unwrap_or("");
    if first.chars().count() > 72 {
        format!("{}…", first.chars().take(71).collect::<String>())
    } else {
        first.to_string()
    }
}

/// Lock, rewrite, rows and duration of one statement, on one line.
fn statement_facts(s: &TracedStatement) -> String {
    let mut locks: Vec<String> = s
        .acquired
        .iter()
        .filter_map(|l| {
            let relation = l.relation.as_ref()?;
            let held = if s.already_held.contains(relation) {
                ", already held"
            } else {
                ""
            };
            Some(format!("{relation} {} ({}{held})", l.mode, blocks(l.mode)))
        })
        .collect();
    let others = s.acquired.iter().filter(|l| l.relation.is_none()).count();
    if others > 0 {
        locks.push(format!("{others} object lock(s)"));
    }
    if locks.is_empty() {
        locks.push("no lock on an existing table".into());
    }
    let mut facts = vec![locks.join(", ")];
    if !s.created.is_empty() {
        facts.push(format!("creates {}", s.created.join(", ")));
    }
    facts.push(if s.rewritten.is_empty() {
        "rewrite: no".into()
    } else {
        format!("rewrite: yes ({})", s.rewritten.join(", "))
    });
    facts.push(format!(
        "rows: {}",
        s.rows.map_or("-".to_string(), |r| r.to_string())
    ));
    if s.lock_wait_us > 0 {
        facts.push(format!(
            "waited {:.1} ms for locks",
            s.lock_wait_us as f64 / 1_000.0
        ));
    }
    facts.push(format!("{:.1} ms", s.duration_us as f64 / 1_000.0));
    facts.join(" | ")
}

fn confirmation(f: &LintFinding) -> String {
    if let Some(reason) = &f.suppressed {
        return format!("suppressed: {reason}");
    }
    match f.confirmation {
        Confirmation::Confirmed => "confirmed by the trace",
        Confirmation::NotConfirmed => "not confirmed",
        Confirmation::Contradicted => "contradicted by the trace",
    }
    .to_string()
}

/// One migration, as text: a header, then one line per statement.
pub(crate) fn print_migration(
    out: &mut impl Write,
    migration: &Migration,
    statements: &[TracedStatement],
    lint: &[LintFinding],
) -> std::io::Result<()> {
    let in_transaction = statements.iter().all(|s| s.in_transaction);
    writeln!(
        out,
        "{} ({})",
        migration.path.display(),
        if in_transaction {
            "one transaction"
        } else {
            "no transaction: watched from a second connection"
        }
    )?;
    for s in statements {
        write!(
            out,
            "  line {}: {} => ",
            s.line,
            headline(&crate::report::redact::redact_sql(&s.sql))
        )?;
        match &s.outcome {
            TraceOutcome::Ran => writeln!(out, "{}", statement_facts(s))?,
            TraceOutcome::Failed { sqlstate, message } => writeln!(
                out,
                "FAILED: {message}{} after {:.1} ms",
                sqlstate
                    .as_ref()
                    .map_or(String::new(), |c| format!(" (SQLSTATE {})", c.code())),
                s.duration_us as f64 / 1_000.0
            )?,
            TraceOutcome::NotTraced { reason } => writeln!(out, "not traced: {reason}")?,
        }
        for f in lint.iter().filter(|f| f.index == s.index) {
            writeln!(
                out,
                "      lint {} [{}]: {}; fix: {}",
                f.rule,
                confirmation(f),
                f.message,
                f.fix
            )?;
        }
    }
    Ok(())
}

fn print_summary(out: &mut impl Write, report: &LockReport) -> std::io::Result<()> {
    let Some(trace) = &report.trace else {
        return Ok(());
    };
    let blocking = trace
        .statements
        .iter()
        .filter(|s| s.table_locks().any(|(_, m)| m.blocks_writes()))
        .count();
    writeln!(
        out,
        "{} statement(s): {} failed, {} block writes or reads on an existing table, {} rewrite a table; {} lint finding(s)",
        trace.statements.len(),
        trace.failures(),
        blocking,
        trace
            .statements
            .iter()
            .filter(|s| !s.rewritten.is_empty())
            .count(),
        report.lint.len()
    )
}

fn print_markdown(
    out: &mut impl Write,
    pending: &[Migration],
    report: &LockReport,
) -> std::io::Result<()> {
    let Some(trace) = &report.trace else {
        return Ok(());
    };
    let cell = |s: &str| s.replace('|', "\\|");
    let mut at = 0;
    for migration in pending {
        let n = migration.statements.len();
        let statements = &trace.statements[at..(at + n).min(trace.statements.len())];
        at += n;
        writeln!(out, "### `{}`\n", migration.path.display())?;
        writeln!(
            out,
            "| line | statement | locks (what they block) | rewrite | rows | ms |"
        )?;
        writeln!(out, "|---|---|---|---|---|---|")?;
        for s in statements {
            let locks = match &s.outcome {
                TraceOutcome::Ran => s
                    .acquired
                    .iter()
                    .filter_map(|l| {
                        Some(format!(
                            "{} {} ({})",
                            l.relation.as_ref()?,
                            l.mode,
                            blocks(l.mode)
                        ))
                    })
                    .collect::<Vec<_>>()
                    .join("<br>"),
                TraceOutcome::Failed { sqlstate, message } => format!(
                    "**failed**: {message}{}",
                    sqlstate
                        .as_ref()
                        .map_or(String::new(), |c| format!(" (SQLSTATE {})", c.code()))
                ),
                TraceOutcome::NotTraced { reason } => format!("not traced: {reason}"),
            };
            writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {:.1} |",
                s.line,
                cell(&headline(&s.sql)),
                cell(&locks),
                if s.rewritten.is_empty() { "no" } else { "yes" },
                s.rows.map_or("-".to_string(), |r| r.to_string()),
                s.duration_us as f64 / 1_000.0
            )?;
        }
        writeln!(out)?;
    }
    for f in &report.lint {
        writeln!(
            out,
            "- `{}` {} line {}: {} ({}); fix: {}",
            f.rule,
            f.version,
            f.line,
            f.message,
            confirmation(f),
            f.fix
        )?;
    }
    Ok(())
}

/// `--format json`: the trace by migration, with the lint findings.
#[derive(Serialize)]
struct JsonTrace<'a> {
    migrations: Vec<JsonMigration<'a>>,
    lint: &'a [LintFinding],
    statements: usize,
    failures: usize,
    timed_out: bool,
}

#[derive(Serialize)]
struct JsonMigration<'a> {
    version: &'a str,
    path: String,
    statements: Vec<JsonStatement<'a>>,
}

#[derive(Serialize)]
struct JsonStatement<'a> {
    #[serde(flatten)]
    statement: &'a TracedStatement,
    /// What the strongest lock on an existing table blocks.
    blocks: &'static str,
}

impl<'a> JsonTrace<'a> {
    fn new(pending: &'a [Migration], report: &'a LockReport) -> Self {
        static EMPTY: Trace = Trace {
            statements: Vec::new(),
            timed_out: false,
        };
        let trace = report.trace.as_ref().unwrap_or(&EMPTY);
        let mut at = 0;
        let migrations = pending
            .iter()
            .map(|m| {
                let n = m.statements.len();
                let statements = trace.statements
                    [at.min(trace.statements.len())..(at + n).min(trace.statements.len())]
                    .iter()
                    .map(|s| JsonStatement {
                        statement: s,
                        blocks: s
                            .strongest_table_lock()
                            .map_or("nothing", |(_, m)| blocks(m)),
                    })
                    .collect();
                at += n;
                JsonMigration {
                    version: &m.version,
                    path: m.path.display().to_string(),
                    statements,
                }
            })
            .collect();
        JsonTrace {
            migrations,
            lint: &report.lint,
            statements: trace.statements.len(),
            failures: trace.failures(),
            timed_out: trace.timed_out,
        }
    }
}
