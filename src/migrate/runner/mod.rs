//! Runner strategies: how the replicas of a deployment apply migrations.
//!
//! [`RunnerKind`] is the public choice; each strategy lives in its own file
//! behind the private `Strategy` trait and reproduces the protocol of the
//! tools it is named after (see the table in each file's header).

mod bookkeeping;
mod command;
mod container;
mod fault;
mod job;
mod naive;
mod session_lock;
pub(crate) mod sql;
pub(crate) mod tool_book;
pub(crate) mod tool_env;
pub(crate) mod tool_output;
mod try_lock;
mod xact_lock;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::migrate::{Layout, Migration};
use crate::provision::ConnInfo;
use crate::timeline::{Actor, BookkeepingState, EventKind, ExitStatus, Recorder, SqlState};

pub(crate) use bookkeeping::{Book, Bookkeeping};
pub use container::ContainerSpec;
pub(crate) use fault::FaultHook;
pub(crate) use job::app_after_tool;

/// The built-in runner strategies (`runner = "..."` in a scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    /// Check bookkeeping, apply, record; no lock (Django, Alembic, diesel,
    /// refinery).
    #[default]
    Naive,
    /// Blocking `pg_advisory_lock` held across the whole run (sqlx,
    /// golang-migrate).
    SessionAdvisoryLock,
    /// `pg_advisory_xact_lock` per migration transaction (Flyway's default).
    XactAdvisoryLock,
    /// `pg_try_advisory_lock`, fail fast when held (Rails, node-pg-migrate).
    TryLock,
    /// One migration job; replicas start only after it exits 0.
    Job,
    /// N processes of the user's own tool with `DATABASE_URL` set.
    Command,
    /// N containers of the user's image with `DATABASE_URL` set.
    Container,
}

impl RunnerKind {
    /// The kebab-case name, as in scenario files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Naive => "naive",
            RunnerKind::SessionAdvisoryLock => "session-advisory-lock",
            RunnerKind::XactAdvisoryLock => "xact-advisory-lock",
            RunnerKind::TryLock => "try-lock",
            RunnerKind::Job => "job",
            RunnerKind::Command => "command",
            RunnerKind::Container => "container",
        }
    }

    /// The strategy's own bookkeeping, kept when the layout is unresolved
    /// (`auto`); with a layout the strategy keeps the layout's tool's table
    /// instead ([`ReplicaCtx::book`]). `None` for `command` / `container`,
    /// whose table belongs to the user's tool.
    pub(crate) fn bookkeeping(self) -> Option<Bookkeeping> {
        match self {
            RunnerKind::Naive => Some(Bookkeeping::Naive),
            RunnerKind::SessionAdvisoryLock | RunnerKind::Job => Some(Bookkeeping::GolangMigrate),
            RunnerKind::XactAdvisoryLock => Some(Bookkeeping::Flyway),
            RunnerKind::TryLock => Some(Bookkeeping::Rails),
            RunnerKind::Command | RunnerKind::Container => None,
        }
    }
}

/// Errors of applying migrations outside a race (baseline, reference run).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Step(StepError),
    #[error("the {runner} runner cannot apply migrations itself; run the user's tool instead")]
    Unsupported { runner: &'static str },
    #[error("command failed: {0}")]
    Command(String),
}

/// A failed step of a replica: which migration, which line, which SQLSTATE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{message}", version.as_ref().map(|v| format!("migration {v}: ")).unwrap_or_default(), sqlstate.as_ref().map(|s| format!("[{s}] ")).unwrap_or_default())]
pub struct StepError {
    pub version: Option<String>,
    pub line: Option<usize>,
    pub sqlstate: Option<SqlState>,
    pub message: String,
}

impl StepError {
    pub(crate) fn from_pg(
        e: &tokio_postgres::Error,
        m: Option<&Migration>,
        line: Option<usize>,
    ) -> Self {
        StepError {
            version: m.map(|m| m.version.clone()),
            line,
            sqlstate: e.code().map(|c| SqlState::from_code(c.code())),
            message: crate::provision::describe_pg_error(e),
        }
    }

    pub(crate) fn bookkeeping(e: &tokio_postgres::Error) -> Self {
        Self::from_pg(e, None, None)
    }

    fn plain(message: impl Into<String>) -> Self {
        StepError {
            version: None,
            line: None,
            sqlstate: None,
            message: message.into(),
        }
    }
}

/// Everything one replica needs.
#[derive(Clone)]
pub(crate) struct ReplicaCtx {
    pub actor: Actor,
    pub conn: ConnInfo,
    pub recorder: Recorder,
    pub lock_timeout: Option<Duration>,
    /// Keep a failed replica's connection open until the race ends (an app
    /// that logs the error and keeps serving from its pool).
    pub hold_failed_connection: bool,
    pub fault: Option<Arc<FaultHook>>,
    /// For `command`.
    pub command: Vec<String>,
    pub workdir: Option<PathBuf>,
    /// For `container`.
    pub container: Option<ContainerSpec>,
    /// The migrations' layout: whose bookkeeping table a built-in strategy
    /// keeps (`auto`: the strategy's own, see [`Book`]).
    pub layout: Layout,
}

impl ReplicaCtx {
    pub(crate) fn app_name(&self) -> String {
        application_name(self.actor)
    }

    /// The table this replica's strategy keeps: the layout's tool's, or
    /// `own` when the layout is unresolved.
    pub(crate) fn book(&self, own: Bookkeeping) -> Book {
        tool_book::ToolBook::for_layout(self.layout).map_or(Book::Own(own), Book::Tool)
    }

    pub(crate) fn emit(&self, kind: EventKind) {
        self.recorder.emit(self.actor, kind);
    }

    fn fail(&self, e: &StepError) {
        self.emit(EventKind::Failed {
            version: e.version.clone(),
            line: e.line,
            sqlstate: e.sqlstate.clone(),
            message: e.message.clone(),
        });
    }

    /// Connects as this replica and applies the session settings.
    pub(crate) async fn connect(&self) -> Result<Client, StepError> {
        let client = self
            .conn
            .connect(&self.app_name())
            .await
            .map_err(|e| StepError::plain(e.to_string()))?;
        if let Some(t) = self.lock_timeout {
            // lock_timeout applies to advisory locks too (manual, "Advisory
            // Locks"): a waiting replica fails with 55P03 instead of hanging.
            client
                .batch_execute(&format!("SET lock_timeout = {}", t.as_millis()))
                .await
                .map_err(|e| StepError::bookkeeping(&e))?;
        }
        Ok(client)
    }
}

/// The `application_name` of an actor, visible in `pg_stat_activity`.
#[must_use]
pub fn application_name(actor: Actor) -> String {
    match actor {
        Actor::Replica(n) => format!("rehearse-replica-{n}"),
        Actor::Job => "rehearse-job".into(),
        Actor::Rerun => "rehearse-rerun".into(),
        Actor::Harness => "rehearse-harness".into(),
    }
}

/// How a replica ended, plus a connection it keeps open (see
/// [`ReplicaCtx::hold_failed_connection`]).
pub(crate) struct ReplicaEnd {
    pub status: ExitStatus,
    pub code: Option<i32>,
    pub held: Option<Client>,
}

impl ReplicaEnd {
    fn ok() -> Self {
        ReplicaEnd {
            status: ExitStatus::Success,
            code: Some(0),
            held: None,
        }
    }
}

/// A strategy: one replica's whole run.
trait Strategy {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd;
}

/// Runs one replica with `kind`.
pub(crate) async fn run_replica(
    kind: RunnerKind,
    ctx: &ReplicaCtx,
    migrations: &[Migration],
) -> ReplicaEnd {
    match kind {
        RunnerKind::Naive => naive::Naive.run(ctx, migrations).await,
        RunnerKind::SessionAdvisoryLock => session_lock::SessionLock.run(ctx, migrations).await,
        RunnerKind::XactAdvisoryLock => xact_lock::XactLock.run(ctx, migrations).await,
        RunnerKind::TryLock => try_lock::TryLock.run(ctx, migrations).await,
        RunnerKind::Job => job::Job.run(ctx, migrations).await,
        RunnerKind::Command => command::Command.run(ctx, migrations).await,
        RunnerKind::Container => container::Container.run(ctx, migrations).await,
    }
}

/// The `application_name` [`apply_serial`] connects with: what a lock
/// sampler watching a serial apply sees as the migration's backend.
#[must_use]
pub fn serial_application_name() -> String {
    application_name(SERIAL_ACTOR)
}

/// [`apply_serial`] runs as the re-run actor.
const SERIAL_ACTOR: Actor = Actor::Rerun;

/// Applies `migrations` one after another with `runner`'s protocol and
/// bookkeeping, as one replica would: used for the baseline (before
/// seeding) and the serial reference run, so pending migrations later see
/// the baseline as applied.
pub async fn apply_serial(
    conn: &ConnInfo,
    runner: &RunnerKind,
    migrations: &[Migration],
) -> Result<(), RunnerError> {
    apply_serial_in(conn, runner, Layout::Auto, migrations).await
}

/// [`apply_serial`] keeping `layout`'s tool's bookkeeping (the table the
/// race's replicas then read).
pub async fn apply_serial_in(
    conn: &ConnInfo,
    runner: &RunnerKind,
    layout: Layout,
    migrations: &[Migration],
) -> Result<(), RunnerError> {
    if matches!(runner, RunnerKind::Command | RunnerKind::Container) {
        return Err(RunnerError::Unsupported {
            runner: runner.name(),
        });
    }
    let ctx = ReplicaCtx {
        actor: SERIAL_ACTOR,
        conn: conn.clone(),
        recorder: Recorder::new(),
        lock_timeout: None,
        hold_failed_connection: false,
        fault: None,
        command: Vec::new(),
        workdir: None,
        container: None,
        layout,
    };
    let end = run_replica(*runner, &ctx, migrations).await;
    if end.status == ExitStatus::Success {
        return Ok(());
    }
    let timeline = ctx.recorder.timeline();
    let failure = timeline.events.iter().find_map(|e| match &e.kind {
        EventKind::Failed {
            version,
            line,
            sqlstate,
            message,
        } => Some(StepError {
            version: version.clone(),
            line: *line,
            sqlstate: sqlstate.clone(),
            message: message.clone(),
        }),
        _ => None,
    });
    Err(RunnerError::Step(failure.unwrap_or_else(|| {
        StepError::plain("replica did not finish")
    })))
}

/// A user's migration tool (`runner = "command"` / `"container"`, or a
/// `job` with a `command` / `container`): how the baseline reaches the
/// template, and whose bookkeeping is read after a run.
#[derive(Debug, Clone)]
pub struct ToolSetup {
    /// `Command` or `Container`.
    pub kind: RunnerKind,
    /// The migrations' layout (not `auto`): whose table the tool keeps.
    pub layout: Layout,
    /// The tool's own command that migrates to the baseline version;
    /// empty: the harness applies the baseline and writes the tool's table.
    pub baseline_command: Vec<String>,
    pub workdir: Option<PathBuf>,
    pub container: Option<ContainerSpec>,
}

/// Brings `conn`'s database to the baseline in a form the user's tool
/// accepts as already applied: its own `baseline_command`, or the
/// baseline's statements applied by the harness with the bookkeeping the
/// layout's tool writes (see `tool_book.rs`). An empty baseline needs nothing:
/// the tool creates its table on its first run.
pub async fn apply_tool_baseline(
    conn: &ConnInfo,
    tool: &ToolSetup,
    migrations: &[Migration],
) -> Result<(), RunnerError> {
    if migrations.is_empty() {
        return Ok(());
    }
    if !tool.baseline_command.is_empty() {
        return run_tool_once(conn, tool, &tool.baseline_command, migrations)
            .await
            .map_err(|e| RunnerError::Command(format!("baseline_command: {e}")));
    }
    let book = tool_book::ToolBook::for_layout(tool.layout).ok_or_else(|| {
        RunnerError::Command("the migrations' layout is unknown: set `migrations.layout`".into())
    })?;
    let client = conn
        .connect(&serial_application_name())
        .await
        .map_err(|e| RunnerError::Connect(e.to_string()))?;
    book.apply(&client, migrations)
        .await
        .map_err(RunnerError::Step)
}

/// Runs the user's tool once, serially, with `command` (for a container:
/// the image's own command when empty): the baseline command, or the
/// pending migrations of a benchmark. The error is the tool's error line.
pub async fn run_tool_once(
    conn: &ConnInfo,
    tool: &ToolSetup,
    command: &[String],
    migrations: &[Migration],
) -> Result<(), String> {
    let ctx = ReplicaCtx {
        actor: SERIAL_ACTOR,
        conn: conn.clone(),
        recorder: Recorder::new(),
        lock_timeout: None,
        hold_failed_connection: false,
        fault: None,
        command: command.to_vec(),
        workdir: tool.workdir.clone(),
        container: tool.container.clone(),
        layout: tool.layout,
    };
    let end = run_replica(tool.kind, &ctx, migrations).await;
    if end.status == ExitStatus::Success {
        return Ok(());
    }
    let timeline = ctx.recorder.timeline();
    let message = timeline.events.iter().find_map(|e| match &e.kind {
        EventKind::Failed { message, .. } => Some(message.clone()),
        _ => None,
    });
    Err(message.unwrap_or_else(|| "the tool did not finish".into()))
}

/// What the bookkeeping says after a run: the layout's tool's table for a
/// user's tool and for a built-in runner with a resolved layout, else the
/// built-in runner's own.
pub async fn tool_bookkeeping_state(
    client: &Client,
    runner: RunnerKind,
    layout: Layout,
    tool: Option<&ToolSetup>,
) -> Result<BookkeepingState, RunnerError> {
    if tool.is_none()
        && runner.bookkeeping().is_some()
        && let Some(book) = tool_book::ToolBook::for_layout(layout)
    {
        return book.state(client).await.map_err(RunnerError::Step);
    }
    match tool.and_then(|t| tool_book::ToolBook::for_layout(t.layout)) {
        Some(book) => {
            let state = book.state(client).await.map_err(RunnerError::Step)?;
            // A tool that keeps another table than its layout's (yoyo,
            // alembic over SQL files) is not judged by a table it never
            // writes.
            Ok(if state.present {
                state
            } else {
                BookkeepingState::default()
            })
        }
        None => bookkeeping_state(client, runner).await,
    }
}

/// What `runner`'s bookkeeping table says in `client`'s database.
pub async fn bookkeeping_state(
    client: &Client,
    runner: RunnerKind,
) -> Result<BookkeepingState, RunnerError> {
    match runner.bookkeeping() {
        Some(b) => b.state(client).await.map_err(RunnerError::Step),
        None => Ok(BookkeepingState::default()),
    }
}

/// Runs the statements of `m` on `client`, emitting begin/end events; the
/// fault hook may terminate the backend at its statement.
async fn run_statements(client: &Client, ctx: &ReplicaCtx, m: &Migration) -> Result<(), StepError> {
    for (index, s) in m.statements.iter().enumerate() {
        ctx.emit(EventKind::StatementBegin {
            version: m.version.clone(),
            index,
            line: s.line,
        });
        if let Some(hook) = ctx
            .fault
            .as_ref()
            .filter(|h| h.targets(ctx.actor, m, index))
        {
            return Err(hook.strike(client, ctx, m, index).await);
        }
        client
            .batch_execute(&s.sql)
            .await
            .map_err(|e| StepError::from_pg(&e, Some(m), Some(s.line)))?;
        ctx.emit(EventKind::StatementEnd {
            version: m.version.clone(),
            index,
            line: s.line,
        });
    }
    Ok(())
}

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Applies one migration in the tool's usual way: statements and the
/// bookkeeping row in one transaction when the migration is transactional,
/// one after the other otherwise (a crash between them leaves the schema
/// changed but unrecorded, as in every tool).
async fn apply_recorded(
    client: &Client,
    ctx: &ReplicaCtx,
    book: Book,
    m: &Migration,
) -> Result<(), StepError> {
    if book.is_golang() {
        return apply_dirty_marked(client, ctx, m).await;
    }
    let started = Instant::now();
    let begin_err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
    if m.transactional {
        client.batch_execute("BEGIN").await.map_err(begin_err)?;
    }
    let mut ran = false;
    let result = async {
        run_statements(client, ctx, m).await?;
        ran = true;
        book.record(client, m, started, true)
            .await
            .map_err(|e| StepError {
                version: Some(m.version.clone()),
                ..e
            })?;
        if m.transactional {
            client.batch_execute("COMMIT").await.map_err(begin_err)?;
        }
        Ok(())
    }
    .await;
    // Outside a transaction the statements committed one by one: when only
    // the record failed (another replica recorded the version first, 23505
    // on the tool's primary key) the migration is applied all the same.
    if result.is_err() && ran && !m.transactional {
        ctx.emit(EventKind::Applied {
            version: m.version.clone(),
            duration_us: elapsed_us(started),
        });
    }
    // A failed statement outside a transaction: what the layout's tool
    // records then (Flyway a `success = false` row, the others nothing).
    if result.is_err() && !ran && !m.transactional && matches!(book, Book::Tool(_)) {
        let _ = book.record(client, m, started, false).await;
    }
    match result {
        Ok(()) => {
            ctx.emit(EventKind::Applied {
                version: m.version.clone(),
                duration_us: elapsed_us(started),
            });
            Ok(())
        }
        Err(e) => {
            if m.transactional {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

/// golang-migrate's `Up` step: mark the version dirty, run the migration
/// (in its own transaction when it has one), mark it clean. A failure
/// leaves the version dirty and every later run refuses
/// (`migrate/migrate.go`, `runMigrations`).
pub(super) async fn apply_dirty_marked(
    client: &Client,
    ctx: &ReplicaCtx,
    m: &Migration,
) -> Result<(), StepError> {
    let started = Instant::now();
    Bookkeeping::set_golang_version(client, m, true).await?;
    let err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
    if m.transactional {
        client.batch_execute("BEGIN").await.map_err(err)?;
        if let Err(e) = run_statements(client, ctx, m).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        client.batch_execute("COMMIT").await.map_err(err)?;
    } else {
        run_statements(client, ctx, m).await?;
    }
    Bookkeeping::set_golang_version(client, m, false).await?;
    ctx.emit(EventKind::Applied {
        version: m.version.clone(),
        duration_us: elapsed_us(started),
    });
    Ok(())
}

/// Ends a replica after a failure: emits it, and keeps the connection open
/// when the scenario says a failed app keeps serving.
fn failed(ctx: &ReplicaCtx, e: &StepError, client: Option<Client>) -> ReplicaEnd {
    ctx.fail(e);
    let status = if ctx
        .fault
        .as_ref()
        .is_some_and(|h| h.struck_actor() == Some(ctx.actor))
    {
        ExitStatus::Killed
    } else {
        ExitStatus::Failure
    };
    ReplicaEnd {
        status,
        code: Some(1),
        held: if ctx.hold_failed_connection {
            client
        } else {
            None
        },
    }
}

/// CRC-32 (IEEE 802.3), as Go's `crc32.ChecksumIEEE`, Ruby's `Zlib.crc32`
/// and the `crc` crate's `CRC_32_ISO_HDLC` compute it.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn runner_names_are_kebab_case_in_serde() {
        for kind in [
            RunnerKind::Naive,
            RunnerKind::SessionAdvisoryLock,
            RunnerKind::XactAdvisoryLock,
            RunnerKind::TryLock,
            RunnerKind::Job,
            RunnerKind::Command,
            RunnerKind::Container,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn application_names_identify_replicas() {
        assert_eq!(application_name(Actor::Replica(7)), "rehearse-replica-7");
    }
}
