//! The lock observatory: which locks a migration takes, for how
//! long on production-size data, and who waits behind them.
//!
//! - [`mode`]: lock modes and the conflict matrix, as data.
//! - [`trace`]: per-statement trace, each migration in its own transaction.
//! - [`sampler`]: live `pg_locks` sampling during a rehearsal.
//! - [`analysis`]: pure derivation of holds, waits, the lock queue and
//!   blocked-backend-seconds from samples.
//! - [`lint`]: static rules, confirmed or not by the trace.
//!
//! [`trace`] and [`sampler`] talk to Postgres; they decide nothing. The
//! verdicts are the lock checks in `findings`, run on a [`LockReport`].

pub mod analysis;
pub mod lint;
pub mod mode;
pub mod sampler;
pub mod trace;

use serde::{Deserialize, Serialize};

pub use analysis::{Holder, LockAnalysis, TimelineRef, analyse};
pub use lint::{Confirmation, LintFinding, RuleId};
pub use mode::{LockMode, LockType};
pub use sampler::{SamplerHandle, SamplerOptions, Samples};
pub use trace::{
    HeldLock, Trace, TraceOptions, TraceOutcome, TracedStatement, trace_migrations,
    trace_migrations_streaming,
};

use crate::migrate::Migration;
use crate::provision::ConnInfo;

/// Errors of the tracer and the sampler.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock observer cannot connect: {0}")]
    Connect(String),
    #[error("lock observer query failed: {0}")]
    Query(String),
    #[error("lock sampler stopped unexpectedly: {0}")]
    Sampler(String),
}

impl LockError {
    pub(crate) fn query(e: tokio_postgres::Error) -> LockError {
        LockError::Query(crate::provision::describe_pg_error(&e))
    }
}

/// Everything the lock observatory found for one scenario: plain data,
/// judged by the lock checks without a database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockReport {
    /// The per-statement trace on a throwaway clone.
    #[serde(default)]
    pub trace: Option<Trace>,
    /// Lint findings, marked by what the trace saw.
    #[serde(default)]
    pub lint: Vec<LintFinding>,
    /// What the sampler saw during the rehearsal.
    #[serde(default)]
    pub sampled: Option<LockAnalysis>,
}

impl LockReport {
    /// Lints `pending` and confirms each finding against `trace`.
    #[must_use]
    /// Waits in `sampled` are attributed to the traced statement that took
    /// the lock they waited for.
    pub fn new(pending: &[Migration], trace: Option<Trace>, sampled: Option<LockAnalysis>) -> Self {
        let mut found = lint::lint(pending);
        let mut sampled = sampled;
        if trace.is_none() {
            lint::drop_unconfirmed_trace_only(&mut found);
        }
        if let Some(trace) = &trace {
            lint::confirm(&mut found, &trace.statements);
            if let Some(sampled) = &mut sampled {
                sampled.attribute_to_trace(trace);
            }
        }
        LockReport {
            trace,
            lint: found,
            sampled,
        }
    }
}

/// Traces `pending` on the database `conn` names, committing each
/// migration (give it a throwaway clone), with the connections named
/// `rehearse-trace` and `rehearse-trace-watch`.
pub async fn trace_database(
    conn: &ConnInfo,
    pending: &[Migration],
    options: &TraceOptions,
) -> Result<Trace, LockError> {
    trace_database_streaming(conn, pending, options, &mut |_, _| {}).await
}

/// [`trace_database`], calling `on_migration` as each migration is traced.
pub async fn trace_database_streaming(
    conn: &ConnInfo,
    pending: &[Migration],
    options: &TraceOptions,
    on_migration: &mut dyn FnMut(&Migration, &[TracedStatement]),
) -> Result<Trace, LockError> {
    let client = conn
        .connect("rehearse-trace")
        .await
        .map_err(|e| LockError::Connect(e.to_string()))?;
    let watcher = conn
        .connect("rehearse-trace-watch")
        .await
        .map_err(|e| LockError::Connect(e.to_string()))?;
    trace_migrations_streaming(&client, &watcher, pending, options, on_migration).await
}

/// A transactional migration made of `statements`, one per entry (line =
/// position), for tracing ad-hoc SQL in tests, benches and the CLI.
#[must_use]
pub fn adhoc_migration(version: &str, statements: &[&str]) -> Migration {
    Migration {
        version: version.to_string(),
        description: String::new(),
        kind: crate::migrate::MigrationKind::Versioned,
        path: format!("{version}.sql").into(),
        statements: statements
            .iter()
            .enumerate()
            .map(|(i, sql)| crate::migrate::Statement {
                sql: (*sql).to_string(),
                line: i + 1,
            })
            .collect(),
        transactional: true,
        down: None,
    }
}
