//! Per-statement lock trace (the technique eugene uses, REFERENCE.md
//! "Observing locks"): the pending statements run one by one inside one
//! transaction on a throwaway clone; after each, the locks this backend
//! holds are read from `pg_locks WHERE pid = pg_backend_pid()` and diffed
//! with the previous set, and `pg_class.relfilenode` is compared for
//! rewrites. Everything is rolled back at the end.
//!
//! This gives exact modes, not durations under load (that is the
//! sampler's job). Statements that cannot run in a transaction block
//! (CONCURRENTLY, VACUUM) are not traced here: the sampler sees them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::LockError;
use super::lint::{self, Classified};
use super::mode::{LockMode, LockType};
use crate::migrate::Migration;
use crate::timeline::SqlState;

/// A lock the traced backend holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldLock {
    pub locktype: LockType,
    pub mode: LockMode,
    /// `schema.table` for relation locks.
    pub relation: Option<String>,
    /// `pg_class.relkind` of a locked relation (`r` table, `i` index...).
    pub relkind: Option<String>,
    /// Advisory key or object ids (`classid:objid:objsubid`).
    pub object: Option<String>,
}

/// How a traced statement ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum TraceOutcome {
    Ran,
    /// Failed; later statements still ran (each runs in a savepoint).
    Failed {
        sqlstate: Option<SqlState>,
        message: String,
    },
    /// Not run inside the trace transaction, and why.
    NotTraced {
        reason: String,
    },
}

/// One statement of a pending migration, traced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedStatement {
    pub version: String,
    /// 0-based index inside the migration.
    pub index: usize,
    pub line: usize,
    pub sql: String,
    pub duration_us: u64,
    /// Locks first held after this statement (not held before it).
    pub acquired: Vec<HeldLock>,
    /// Every lock held after it. A statement needing a lock its transaction
    /// already holds in a stronger mode takes nothing new: this shows what
    /// it ran under.
    pub held: Vec<HeldLock>,
    /// Tables whose `relfilenode` changed: rewritten (or truncated).
    pub rewritten: Vec<String>,
    /// `lock_timeout` in effect when the statement ran (`0` = none).
    pub lock_timeout: String,
    #[serde(flatten)]
    pub outcome: TraceOutcome,
}

impl TracedStatement {
    /// The strongest table lock this statement took on `relation`.
    #[must_use]
    pub fn strongest_on(&self, relation: &str) -> Option<LockMode> {
        self.acquired
            .iter()
            .filter(|l| l.locktype == LockType::Relation && l.relation.as_deref() == Some(relation))
            .map(|l| l.mode)
            .max()
    }

    /// The strongest lock this statement took on a table (not an index),
    /// and that table; if it took none, the strongest its transaction
    /// already held (what it ran under).
    #[must_use]
    pub fn strongest_table_lock(&self) -> Option<(&str, LockMode)> {
        Self::strongest(&self.acquired).or_else(|| Self::strongest(&self.held))
    }

    fn strongest(locks: &[HeldLock]) -> Option<(&str, LockMode)> {
        locks
            .iter()
            .filter(|l| {
                l.locktype == LockType::Relation
                    && matches!(l.relkind.as_deref(), Some("r" | "p" | "m"))
            })
            .filter_map(|l| l.relation.as_deref().map(|r| (r, l.mode)))
            .max_by_key(|(_, m)| *m)
    }
}

/// The trace of every pending statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub statements: Vec<TracedStatement>,
}

/// Bounds for a trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Per statement; a statement running longer fails with 57014.
    pub statement_timeout: Duration,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            statement_timeout: Duration::from_secs(600),
        }
    }
}

// SQL: locks of this backend on user objects. Catalog relations (oid below
// FirstNormalObjectId, 16384) are left out: the trace's own catalog reads
// and every DDL's catalog writes lock them, which is noise here.
const OWN_LOCKS: &str = "SELECT l.locktype, l.mode, \
       CASE WHEN l.locktype = 'relation' THEN coalesce(n.nspname || '.' || c.relname, l.relation::text) END, \
       c.relkind::text, \
       CASE WHEN l.locktype IN ('advisory', 'object') \
            THEN l.classid::text || ':' || l.objid::text || ':' || l.objsubid::text END \
  FROM pg_locks l \
  LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation \
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace \
 WHERE l.pid = pg_backend_pid() AND l.granted \
   AND l.locktype NOT IN ('virtualxid', 'transactionid') \
   AND (l.locktype <> 'relation' OR l.relation::int8 >= 16384)";

// SQL: storage of user tables, to see rewrites.
const RELFILENODES: &str = "SELECT c.oid::int8, n.nspname || '.' || c.relname, c.relfilenode::int8 \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
 WHERE c.relkind IN ('r', 'm', 'p') AND c.oid >= 16384";

async fn own_locks(client: &Client) -> Result<BTreeSet<HeldLock>, LockError> {
    let rows = client
        .query(OWN_LOCKS, &[])
        .await
        .map_err(LockError::query)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(HeldLock {
                locktype: LockType::from_pg(r.get::<_, &str>(0)),
                mode: LockMode::from_pg(r.get::<_, &str>(1))?,
                relation: r.get(2),
                relkind: r.get(3),
                object: r.get(4),
            })
        })
        .collect())
}

async fn relfilenodes(client: &Client) -> Result<BTreeMap<i64, (String, i64)>, LockError> {
    let rows = client
        .query(RELFILENODES, &[])
        .await
        .map_err(LockError::query)?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect())
}

/// Traces `migrations` on `client`'s database and rolls everything back.
pub async fn trace_migrations(
    client: &Client,
    migrations: &[Migration],
    options: &TraceOptions,
) -> Result<Trace, LockError> {
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            options.statement_timeout.as_millis()
        ))
        .await
        .map_err(LockError::query)?;
    client
        .batch_execute("BEGIN")
        .await
        .map_err(LockError::query)?;
    let result = trace_in_transaction(client, migrations).await;
    // ROLLBACK leaves the clone as it was, so it can be reused.
    let rollback = client
        .batch_execute("ROLLBACK")
        .await
        .map_err(LockError::query);
    let trace = result?;
    rollback?;
    Ok(trace)
}

async fn trace_in_transaction(
    client: &Client,
    migrations: &[Migration],
) -> Result<Trace, LockError> {
    let mut trace = Trace::default();
    let mut held = own_locks(client).await?;
    for migration in migrations {
        for (index, statement) in migration.statements.iter().enumerate() {
            let mut traced = TracedStatement {
                version: migration.version.clone(),
                index,
                line: statement.line,
                sql: statement.sql.clone(),
                duration_us: 0,
                acquired: Vec::new(),
                held: Vec::new(),
                rewritten: Vec::new(),
                lock_timeout: String::new(),
                outcome: TraceOutcome::Ran,
            };
            let classified = lint::classify(&statement.sql);
            if let Some(reason) = not_traceable(&classified) {
                traced.outcome = TraceOutcome::NotTraced { reason };
                trace.statements.push(traced);
                continue;
            }
            traced.lock_timeout = client
                .query_one("SHOW lock_timeout", &[])
                .await
                .map_err(LockError::query)?
                .get(0);
            let before = relfilenodes(client).await?;
            client
                .batch_execute("SAVEPOINT rehearse_trace")
                .await
                .map_err(LockError::query)?;
            let started = Instant::now();
            let ran = client.batch_execute(&statement.sql).await;
            traced.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match ran {
                Ok(()) => {
                    client
                        .batch_execute("RELEASE SAVEPOINT rehearse_trace")
                        .await
                        .map_err(LockError::query)?;
                    let now = own_locks(client).await?;
                    traced.acquired = now.difference(&held).cloned().collect();
                    traced.held = now.iter().cloned().collect();
                    held = now;
                    let after = relfilenodes(client).await?;
                    traced.rewritten = before
                        .iter()
                        .filter(|(oid, (_, node))| after.get(oid).is_some_and(|(_, n)| n != node))
                        .map(|(_, (name, _))| name.clone())
                        .collect();
                }
                Err(e) => {
                    // The locks it took are visible before the savepoint is
                    // rolled back: they are what it would have held.
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT rehearse_trace")
                        .await
                        .map_err(LockError::query)?;
                    traced.outcome = TraceOutcome::Failed {
                        sqlstate: e.code().map(|c| SqlState::from_code(c.code())),
                        message: crate::provision::describe_pg_error(&e),
                    };
                }
            }
            trace.statements.push(traced);
        }
    }
    Ok(trace)
}

fn not_traceable(classified: &Classified) -> Option<String> {
    if classified.transaction_control {
        Some("transaction control: the trace runs everything in one transaction".into())
    } else if classified.needs_no_transaction {
        Some("cannot run inside a transaction block: observed by the sampler instead".into())
    } else {
        None
    }
}
