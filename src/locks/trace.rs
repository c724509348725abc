//! Per-statement lock trace (the technique eugene uses, REFERENCE.md
//! "Observing locks"), applied the way migration tools apply a history:
//! each migration runs in its own transaction, committed before the next
//! one, on a throwaway clone. After each statement the locks this backend
//! holds are read from `pg_locks WHERE pid = pg_backend_pid()` and diffed
//! with those held before it; `pg_class.relfilenode` of the locked tables
//! is compared for rewrites.
//!
//! A statement that needs a lock its transaction already holds in the same
//! mode adds no row to `pg_locks` (the lock manager keeps one entry per
//! lock and mode). For those, the mode the statement requires comes from
//! its form (the manual's ALTER TABLE / CREATE INDEX / LOCK pages, see
//! [`required_lock`]) and the table is marked `already_held`: in
//! production each migration takes its locks afresh, so the report always
//! shows the strongest lock the statement requires.
//!
//! Statements that cannot run in a transaction block (CREATE/DROP INDEX
//! CONCURRENTLY, REINDEX CONCURRENTLY, VACUUM) and the statements of a
//! no-transaction migration run in autocommit mode while a second
//! connection polls `pg_locks` for the migrator's backend: modes held,
//! time spent waiting (`granted = false`) and duration.
//!
//! Relations created in the same transaction are invisible to every other
//! session, so their locks block nobody: they are listed as created, never
//! as locks. Indexes and toast tables are folded into their table. No OID
//! is ever reported: relations by name, other objects through
//! `pg_describe_object`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::LockError;
use super::lint::{self, Classified};
use super::mode::{LockMode, LockType};
use crate::migrate::Migration;
use crate::timeline::SqlState;

/// A lock a traced statement requires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldLock {
    pub locktype: LockType,
    pub mode: LockMode,
    /// `schema.table` for relation locks (indexes and toast folded into
    /// their table).
    pub relation: Option<String>,
    /// `pg_class.relkind` of the relation (`r` table, `p` partitioned,
    /// `m` materialized view, `S` sequence, `v` view...).
    pub relkind: Option<String>,
    /// What other lock is on: `pg_describe_object` text, or the advisory
    /// key.
    pub object: Option<String>,
}

/// How a traced statement ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum TraceOutcome {
    #[default]
    Ran,
    /// Failed; rolled back to its savepoint, the rest still ran.
    Failed {
        sqlstate: Option<SqlState>,
        message: String,
    },
    /// Not run, and why.
    NotTraced { reason: String },
}

/// One statement of a pending migration, traced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TracedStatement {
    pub version: String,
    /// 0-based index inside the migration.
    pub index: usize,
    pub line: usize,
    /// The statement, passwords masked.
    pub sql: String,
    pub duration_us: u64,
    /// The strongest lock the statement requires on each pre-existing
    /// relation (taken now or already held by its transaction), and the
    /// other (object, advisory) locks it took.
    pub acquired: Vec<HeldLock>,
    /// Relations of `acquired` whose lock the transaction already held
    /// before this statement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub already_held: Vec<String>,
    /// Relations of `acquired` whose lock comes from the statement's form:
    /// it ran outside a transaction too fast for the watcher to see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inferred: Vec<String>,
    /// Relations this statement created: nobody else sees them until
    /// commit, so their locks block nobody.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<String>,
    /// Tables whose `relfilenode` changed: rewritten (or truncated).
    pub rewritten: Vec<String>,
    /// Rows from the command tag (INSERT, UPDATE, DELETE, MERGE, COPY,
    /// SELECT); `None` for other statements.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Rows of an UPDATE's or DELETE's table just before it ran (to judge
    /// a backfill touching most of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows: Option<u64>,
    /// Time spent waiting for a lock, seen by the watcher connection
    /// (statements run outside a transaction).
    #[serde(default)]
    pub lock_wait_us: u64,
    /// `false` when it ran outside a transaction block (watched).
    #[serde(default = "yes")]
    pub in_transaction: bool,
    /// `lock_timeout` in effect when the statement ran (`0` = none).
    pub lock_timeout: String,
    #[serde(flatten)]
    pub outcome: TraceOutcome,
}

fn yes() -> bool {
    true
}

impl TracedStatement {
    /// The strongest lock this statement requires on `relation`.
    #[must_use]
    pub fn strongest_on(&self, relation: &str) -> Option<LockMode> {
        self.acquired
            .iter()
            .filter(|l| l.locktype == LockType::Relation && l.relation.as_deref() == Some(relation))
            .map(|l| l.mode)
            .max()
    }

    /// The strongest lock this statement requires on a table (not a
    /// sequence or view), and that table.
    #[must_use]
    pub fn strongest_table_lock(&self) -> Option<(&str, LockMode)> {
        self.table_locks().max_by_key(|(_, m)| *m)
    }

    /// Every table lock this statement requires, by table.
    pub fn table_locks(&self) -> impl Iterator<Item = (&str, LockMode)> {
        self.acquired
            .iter()
            .filter(|l| {
                l.locktype == LockType::Relation
                    && matches!(l.relkind.as_deref(), Some("r" | "p" | "m"))
            })
            .filter_map(|l| l.relation.as_deref().map(|r| (r, l.mode)))
    }

    /// Whether the statement failed.
    #[must_use]
    pub fn failed(&self) -> bool {
        matches!(self.outcome, TraceOutcome::Failed { .. })
    }
}

/// The trace of every pending statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    pub statements: Vec<TracedStatement>,
    /// The trace's time budget ran out; later statements were not run.
    #[serde(default)]
    pub timed_out: bool,
}

impl Trace {
    /// Statements that failed.
    #[must_use]
    pub fn failures(&self) -> usize {
        self.statements.iter().filter(|s| s.failed()).count()
    }
}

/// Bounds for a trace.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Per statement; a statement running longer fails with 57014.
    pub statement_timeout: Duration,
    /// The whole trace; statements after it are not run.
    pub total_timeout: Option<Duration>,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            statement_timeout: Duration::from_secs(600),
            total_timeout: None,
        }
    }
}

impl TraceOptions {
    /// Both bounds set to `timeout`.
    #[must_use]
    pub fn bounded(timeout: Duration) -> Self {
        TraceOptions {
            statement_timeout: timeout,
            total_timeout: Some(timeout),
        }
    }
}

// SQL: user relations (oid from FirstNormalObjectId, 16384), with what an
// index or toast table belongs to. Read at the start of each migration:
// what exists then is what other sessions can see.
const RELATIONS: &str = "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relfilenode::int8, \
       coalesce(ix.indrelid::int8, tt.oid::int8, 0) \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
  LEFT JOIN pg_index ix ON ix.indexrelid = c.oid \
  LEFT JOIN pg_class tt ON tt.reltoastrelid = c.oid \
 WHERE c.oid >= 16384";

// SQL: the same for a few relations (those created since).
const RELATIONS_BY_OID: &str = "SELECT c.oid::int8, n.nspname, c.relname, c.relkind::text, c.relfilenode::int8, \
       coalesce(ix.indrelid::int8, tt.oid::int8, 0) \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
  LEFT JOIN pg_index ix ON ix.indexrelid = c.oid \
  LEFT JOIN pg_class tt ON tt.reltoastrelid = c.oid \
 WHERE c.oid = ANY($1::int8[]::oid[])";

// SQL: granted locks of a backend on user objects, with the current
// storage of locked relations. Catalog relations (oid below 16384) are
// left out: every DDL's catalog writes lock them, which is noise here.
// `granted = false` rows (only the watcher reads them) are waits.
const LOCKS_OF: &str = "SELECT l.locktype, l.mode, l.granted, l.relation::int8, c.relfilenode::int8, \
       CASE WHEN l.locktype = 'object' \
            THEN coalesce(pg_describe_object(l.classid, l.objid, l.objsubid), 'dropped object') \
            WHEN l.locktype = 'advisory' \
            THEN 'advisory ' || l.classid::text || ':' || l.objid::text || ':' || l.objsubid::text END \
  FROM pg_locks l \
  LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation \
 WHERE l.pid = $1 \
   AND (l.locktype IN ('object', 'advisory') \
        OR (l.locktype = 'relation' AND l.relation::int8 >= 16384) \
        OR NOT l.granted)";

// SQL: storage of a few relations, after a statement ran outside a
// transaction.
const RELFILENODES_OF: &str =
    "SELECT oid::int8, relfilenode::int8 FROM pg_class WHERE oid = ANY($1::int8[]::oid[])";

/// A user relation as the trace knows it.
#[derive(Debug, Clone)]
struct Relation {
    name: String,
    schema: String,
    relname: String,
    kind: String,
    relfilenode: i64,
    /// The table an index or toast table belongs to (0: none).
    owner: i64,
    toast: bool,
}

/// The relations that existed when the current migration began.
#[derive(Debug, Default)]
struct Catalog {
    relations: HashMap<i64, Relation>,
    /// Their names: a "new" relation with an old name is a rebuild (ALTER
    /// COLUMN TYPE recreates the table's indexes under new OIDs).
    names: HashSet<String>,
}

fn relation_of(row: &tokio_postgres::Row) -> (i64, Relation) {
    let schema: String = row.get(1);
    let name: String = row.get(2);
    (
        row.get(0),
        Relation {
            toast: schema == "pg_toast",
            name: format!("{schema}.{name}"),
            schema: schema.clone(),
            relname: name.clone(),
            kind: row.get(3),
            relfilenode: row.get(4),
            owner: row.get(5),
        },
    )
}

impl Catalog {
    async fn load(client: &Client) -> Result<Catalog, LockError> {
        let rows = client
            .query(RELATIONS, &[])
            .await
            .map_err(LockError::query)?;
        let relations: HashMap<i64, Relation> = rows.iter().map(relation_of).collect();
        let names = relations.values().map(|r| r.name.clone()).collect();
        Ok(Catalog { relations, names })
    }

    /// The table a relation folds into (itself unless an index or toast).
    fn table_of(&self, oid: i64) -> i64 {
        let mut oid = oid;
        // index -> toast -> table at most.
        for _ in 0..3 {
            match self.relations.get(&oid) {
                Some(r) if r.owner != 0 && self.relations.contains_key(&r.owner) => oid = r.owner,
                _ => break,
            }
        }
        oid
    }

    /// Resolves a name as written in SQL among `candidates`.
    fn resolve(&self, name: &[String], candidates: impl Iterator<Item = i64>) -> Option<i64> {
        let (schema, relname) = match name {
            [relname] => (None, relname),
            [schema, relname] => (Some(schema), relname),
            _ => return None,
        };
        candidates.into_iter().find(|oid| {
            self.relations.get(oid).is_some_and(|r| match schema {
                Some(s) => r.name == format!("{s}.{relname}"),
                None => r.name.rsplit_once('.').is_some_and(|(_, n)| n == relname),
            })
        })
    }
}

/// One lock row of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum LockKey {
    Relation(i64),
    Other(LockType, String),
}

struct LockRow {
    key: LockKey,
    mode: LockMode,
    granted: bool,
    relfilenode: Option<i64>,
}

async fn locks_of(client: &Client, pid: i32) -> Result<Vec<LockRow>, LockError> {
    let rows = client
        .query(LOCKS_OF, &[&pid])
        .await
        .map_err(LockError::query)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let locktype = LockType::from_pg(r.get::<_, &str>(0));
            let key = match (r.get::<_, Option<i64>>(3), r.get::<_, Option<String>>(5)) {
                (Some(oid), _) if locktype == LockType::Relation => LockKey::Relation(oid),
                (_, Some(object)) => LockKey::Other(locktype, object),
                // A wait on a transaction or virtualxid: counted, not listed.
                _ => LockKey::Other(locktype, String::new()),
            };
            Some(LockRow {
                key,
                mode: LockMode::from_pg(r.get::<_, &str>(1))?,
                granted: r.get(2),
                relfilenode: r.get(4),
            })
        })
        .collect())
}

/// Traces `migrations` on `client`'s database, committing each migration
/// (run it on a throwaway clone). `watcher` is a second connection to the
/// same database, for statements that run outside a transaction.
pub async fn trace_migrations(
    client: &Client,
    watcher: &Client,
    migrations: &[Migration],
    options: &TraceOptions,
) -> Result<Trace, LockError> {
    trace_migrations_streaming(client, watcher, migrations, options, &mut |_, _| {}).await
}

/// [`trace_migrations`], calling `on_migration` with each migration's
/// statements as soon as it is traced.
pub async fn trace_migrations_streaming(
    client: &Client,
    watcher: &Client,
    migrations: &[Migration],
    options: &TraceOptions,
    on_migration: &mut dyn FnMut(&Migration, &[TracedStatement]),
) -> Result<Trace, LockError> {
    let started = Instant::now();
    let deadline = options.total_timeout.map(|t| started + t);
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .map_err(LockError::query)?
        .get(0);
    let mut tracer = Tracer {
        client,
        watcher,
        pid,
        options,
        deadline,
        catalog: Catalog::default(),
        stale: true,
        statement_timeout_ms: 0,
    };
    let mut trace = Trace::default();
    for migration in migrations {
        let first = trace.statements.len();
        if tracer.out_of_time() {
            trace.timed_out = true;
            trace.statements.extend(
                migration.statements.iter().enumerate().map(|(i, s)| {
                    not_run(migration, i, s, "the trace's time budget ran out".into())
                }),
            );
        } else {
            tracer.migration(migration, &mut trace.statements).await?;
            trace.timed_out |= tracer.out_of_time();
        }
        on_migration(migration, &trace.statements[first..]);
    }
    Ok(trace)
}

fn not_run(
    migration: &Migration,
    index: usize,
    statement: &crate::migrate::Statement,
    reason: String,
) -> TracedStatement {
    TracedStatement {
        version: migration.version.clone(),
        index,
        line: statement.line,
        sql: crate::redact::redact_sql(&statement.sql),
        in_transaction: migration.transactional,
        outcome: TraceOutcome::NotTraced { reason },
        ..TracedStatement::default()
    }
}

struct Tracer<'a> {
    client: &'a Client,
    watcher: &'a Client,
    pid: i32,
    options: &'a TraceOptions,
    deadline: Option<Instant>,
    catalog: Catalog,
    /// Relations were created, dropped or renamed since the catalog was read.
    stale: bool,
    statement_timeout_ms: u128,
}

/// What one statement's execution returned.
struct Ran {
    result: Result<u64, tokio_postgres::Error>,
    duration_us: u64,
}

impl Tracer<'_> {
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sets `statement_timeout` to the per-statement bound, cut to what is
    /// left of the trace's budget.
    async fn bound(&mut self) -> Result<(), LockError> {
        let mut limit = self.options.statement_timeout;
        if let Some(deadline) = self.deadline {
            limit = limit.min(deadline.saturating_duration_since(Instant::now()));
        }
        let ms = limit.as_millis().max(1);
        if ms.abs_diff(self.statement_timeout_ms) > 50 || self.statement_timeout_ms == 0 {
            self.client
                .batch_execute(&format!("SET statement_timeout = {ms}"))
                .await
                .map_err(LockError::query)?;
            self.statement_timeout_ms = ms;
        }
        Ok(())
    }

    async fn lock_timeout(&self) -> Result<String, LockError> {
        Ok(self
            .client
            .query_one("SHOW lock_timeout", &[])
            .await
            .map_err(LockError::query)?
            .get(0))
    }

    async fn refresh_catalog(&mut self) -> Result<(), LockError> {
        if self.stale {
            self.catalog = Catalog::load(self.client).await?;
            self.stale = false;
        }
        Ok(())
    }

    async fn migration(
        &mut self,
        migration: &Migration,
        out: &mut Vec<TracedStatement>,
    ) -> Result<(), LockError> {
        let classified: Vec<Classified> = migration
            .statements
            .iter()
            .map(|s| lint::classify(&s.sql))
            .collect();
        // A statement that cannot run in a transaction block makes the
        // migration one its tool must run without a transaction.
        let transactional =
            migration.transactional && !classified.iter().any(|c| c.needs_no_transaction);
        self.refresh_catalog().await?;
        self.bound().await?;
        if transactional {
            self.client
                .batch_execute("BEGIN")
                .await
                .map_err(LockError::query)?;
        }
        let result = self
            .statements(migration, &classified, transactional, out)
            .await;
        if transactional {
            // Committed so the next migration sees it, as its tool does.
            let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            self.client
                .batch_execute(end)
                .await
                .map_err(LockError::query)?;
        }
        result
    }

    async fn statements(
        &mut self,
        migration: &Migration,
        classified: &[Classified],
        transactional: bool,
        out: &mut Vec<TracedStatement>,
    ) -> Result<(), LockError> {
        // Locks this transaction holds, by key, with every mode held.
        let mut held: BTreeSet<(LockKey, LockMode)> = BTreeSet::new();
        // Current storage of the tables held (for rewrites).
        let mut storage: HashMap<i64, i64> = HashMap::new();
        // Relations created in this transaction, by oid.
        let mut created: HashSet<i64> = HashSet::new();
        let mut lock_timeout = self.lock_timeout().await?;
        for (index, (statement, c)) in migration.statements.iter().zip(classified).enumerate() {
            if self.out_of_time() {
                out.push(not_run(
                    migration,
                    index,
                    statement,
                    "the trace's time budget ran out".into(),
                ));
                continue;
            }
            if c.transaction_control {
                out.push(not_run(
                    migration,
                    index,
                    statement,
                    "transaction control: the trace runs each migration in its own transaction"
                        .into(),
                ));
                continue;
            }
            self.bound().await?;
            let mut traced = not_run(migration, index, statement, String::new());
            traced.in_transaction = transactional;
            traced.lock_timeout.clone_from(&lock_timeout);
            if transactional {
                self.in_transaction(
                    &statement.sql,
                    c,
                    &mut traced,
                    &mut held,
                    &mut storage,
                    &mut created,
                )
                .await?;
            } else {
                self.stale = true;
                self.refresh_catalog().await?;
                self.watched(&statement.sql, &mut traced).await?;
                self.stale = true;
            }
            if c.tokens.iter().any(|t| {
                matches!(
                    t.as_str(),
                    "LOCK_TIMEOUT" | "RESET" | "SET_CONFIG" | "\"lock_timeout\""
                )
            }) {
                lock_timeout = self.lock_timeout().await?;
            }
            out.push(traced);
        }
        Ok(())
    }

    /// Rows of the table an UPDATE or DELETE names, counted in its
    /// transaction just before it (it scans the table anyway).
    async fn count_rows(&self, c: &Classified) -> Result<Option<u64>, LockError> {
        let Some((name, _)) = required_lock(c) else {
            return Ok(None);
        };
        let Some(oid) = self
            .catalog
            .resolve(&name, self.catalog.relations.keys().copied())
        else {
            return Ok(None);
        };
        let relation = &self.catalog.relations[&oid];
        let quoted = format!(
            "{}.{}",
            quote_ident(&relation.schema),
            quote_ident(&relation.relname)
        );
        // A failure here (no privilege) leaves the count unknown.
        Ok(self
            .client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .ok()
            .and_then(|r| u64::try_from(r.get::<_, i64>(0)).ok()))
    }

    /// Runs `sql` in the migration's transaction, in a savepoint so that a
    /// failure does not end the trace.
    async fn run(&self, sql: &str) -> Ran {
        // Newlines around the statement: a trailing `--` comment must not
        // swallow the RELEASE.
        let wrapped =
            format!("SAVEPOINT rehearse_trace;\n{sql}\n;\nRELEASE SAVEPOINT rehearse_trace");
        let started = Instant::now();
        let result = self
            .client
            .simple_query(&wrapped)
            .await
            .map(|m| rows_of(&m));
        Ran {
            result,
            duration_us: micros(started.elapsed()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn in_transaction(
        &mut self,
        sql: &str,
        c: &Classified,
        traced: &mut TracedStatement,
        held: &mut BTreeSet<(LockKey, LockMode)>,
        storage: &mut HashMap<i64, i64>,
        created: &mut HashSet<i64>,
    ) -> Result<(), LockError> {
        if c.starts_with(&["UPDATE"]) || c.starts_with(&["DELETE"]) {
            traced.table_rows = self.count_rows(c).await?;
        }
        let ran = self.run(sql).await;
        traced.duration_us = ran.duration_us;
        let rows = match ran.result {
            Ok(rows) => rows,
            Err(e) => {
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT rehearse_trace")
                    .await
                    .map_err(LockError::query)?;
                traced.outcome = failed(&e);
                return Ok(());
            }
        };
        traced.outcome = TraceOutcome::Ran;
        traced.rows = counts_rows(c).then_some(rows);
        let now = locks_of(self.client, self.pid).await?;
        // Relations never seen before: created by this statement, or a
        // rewrite's transient heap (gone from pg_class already).
        let unknown: Vec<i64> = now
            .iter()
            .filter_map(|l| match l.key {
                LockKey::Relation(oid)
                    if !self.catalog.relations.contains_key(&oid) && !created.contains(&oid) =>
                {
                    Some(oid)
                }
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            self.stale = true;
            let rows = self
                .client
                .query(RELATIONS_BY_OID, &[&unknown])
                .await
                .map_err(LockError::query)?;
            for (oid, r) in rows.iter().map(relation_of) {
                created.insert(oid);
                if !r.toast && !self.catalog.names.contains(&r.name) {
                    traced.created.push(r.name);
                }
            }
            traced.created.sort();
            traced.created.dedup();
        }
        let was_held: HashSet<i64> = held
            .iter()
            .filter_map(|(k, _)| match k {
                LockKey::Relation(oid) => Some(self.catalog.table_of(*oid)),
                LockKey::Other(..) => None,
            })
            .collect();
        let mut required: BTreeMap<i64, LockMode> = BTreeMap::new();
        let mut other = Vec::new();
        for row in &now {
            let entry = (row.key.clone(), row.mode);
            // A rewrite replaces a table's storage (relfilenode).
            if let LockKey::Relation(oid) = row.key
                && let (Some(node), Some(relation)) =
                    (row.relfilenode, self.catalog.relations.get(&oid))
                && self.catalog.table_of(oid) == oid
            {
                let before = storage.entry(oid).or_insert(relation.relfilenode);
                if *before != node {
                    *before = node;
                    if !traced.rewritten.contains(&relation.name) {
                        traced.rewritten.push(relation.name.clone());
                    }
                }
            }
            if held.contains(&entry) {
                continue;
            }
            match &row.key {
                LockKey::Relation(oid) if self.catalog.relations.contains_key(oid) => {
                    let table = self.catalog.table_of(*oid);
                    let mode = required.entry(table).or_insert(row.mode);
                    *mode = (*mode).max(row.mode);
                }
                LockKey::Relation(_) => {}
                LockKey::Other(locktype, object) => other.push(HeldLock {
                    locktype: *locktype,
                    mode: row.mode,
                    relation: None,
                    relkind: None,
                    object: Some(object.clone()),
                }),
            }
        }
        // The same mode re-requested adds no pg_locks row: what the
        // statement's form requires, on a table it already held.
        if let Some((name, mode)) = required_lock(c)
            && let Some(table) = self.catalog.resolve(&name, was_held.iter().copied())
            && required.get(&table).is_none_or(|m| *m < mode)
        {
            required.insert(table, mode);
            traced
                .already_held
                .push(self.catalog.relations[&table].name.clone());
        }
        // Renames and drops need ACCESS EXCLUSIVE: the next migration
        // must see the catalog as this one leaves it.
        if required.values().any(|m| *m == LockMode::AccessExclusive) {
            self.stale = true;
        }
        traced.acquired = required
            .into_iter()
            .filter_map(|(oid, mode)| {
                let r = self.catalog.relations.get(&oid)?;
                Some(HeldLock {
                    locktype: LockType::Relation,
                    mode,
                    relation: Some(r.name.clone()),
                    relkind: Some(r.kind.clone()),
                    object: None,
                })
            })
            .chain(other)
            .collect();
        held.extend(now.into_iter().map(|l| (l.key, l.mode)));
        Ok(())
    }

    /// Runs `sql` outside a transaction while the watcher polls the
    /// migrator's locks.
    async fn watched(&mut self, sql: &str, traced: &mut TracedStatement) -> Result<(), LockError> {
        let started = Instant::now();
        let run = self.client.simple_query(sql);
        tokio::pin!(run);
        let mut seen: BTreeMap<LockKey, LockMode> = BTreeMap::new();
        let mut wait_us = 0u64;
        let mut last = Instant::now();
        let result = loop {
            tokio::select! {
                biased;
                r = &mut run => break r,
                polled = locks_of(self.watcher, self.pid) => {
                    let rows = polled?;
                    let now = Instant::now();
                    if rows.iter().any(|r| !r.granted) {
                        wait_us += micros(now - last);
                    }
                    last = now;
                    for r in rows.into_iter().filter(|r| r.granted) {
                        let mode = seen.entry(r.key).or_insert(r.mode);
                        *mode = (*mode).max(r.mode);
                    }
                }
            }
        };
        traced.duration_us = micros(started.elapsed());
        traced.lock_wait_us = wait_us;
        let rows = match result {
            Ok(messages) => rows_of(&messages),
            Err(e) => {
                traced.outcome = failed(&e);
                return Ok(());
            }
        };
        traced.outcome = TraceOutcome::Ran;
        traced.rows = counts_rows(&lint::classify(sql)).then_some(rows);
        let mut required: BTreeMap<i64, LockMode> = BTreeMap::new();
        for (key, mode) in &seen {
            match key {
                LockKey::Relation(oid) if self.catalog.relations.contains_key(oid) => {
                    let m = required.entry(self.catalog.table_of(*oid)).or_insert(*mode);
                    *m = (*m).max(*mode);
                }
                LockKey::Relation(_) => {}
                LockKey::Other(_, object) if object.is_empty() => {}
                LockKey::Other(locktype, object) => traced.acquired.push(HeldLock {
                    locktype: *locktype,
                    mode: *mode,
                    relation: None,
                    relkind: None,
                    object: Some(object.clone()),
                }),
            }
        }
        // Too fast for the watcher (a CONCURRENTLY build on a small table
        // takes a millisecond): what the statement's form requires.
        if required.is_empty()
            && let Some((name, mode)) = required_lock(&lint::classify(sql))
            && let Some(oid) = self
                .catalog
                .resolve(&name, self.catalog.relations.keys().copied())
        {
            let table = self.catalog.table_of(oid);
            required.insert(table, mode);
            traced
                .inferred
                .push(self.catalog.relations[&table].name.clone());
        }
        let tables: Vec<i64> = required.keys().copied().collect();
        let nodes = self
            .client
            .query(RELFILENODES_OF, &[&tables])
            .await
            .map_err(LockError::query)?;
        for row in nodes {
            let (oid, node): (i64, i64) = (row.get(0), row.get(1));
            if let Some(r) = self.catalog.relations.get(&oid)
                && r.relfilenode != node
            {
                traced.rewritten.push(r.name.clone());
            }
        }
        let mut acquired: Vec<HeldLock> = required
            .into_iter()
            .filter_map(|(oid, mode)| {
                let r = self.catalog.relations.get(&oid)?;
                Some(HeldLock {
                    locktype: LockType::Relation,
                    mode,
                    relation: Some(r.name.clone()),
                    relkind: Some(r.kind.clone()),
                    object: None,
                })
            })
            .collect();
        acquired.append(&mut traced.acquired);
        traced.acquired = acquired;
        Ok(())
    }
}

/// An identifier quoted for SQL (manual, "Identifiers and Key Words").
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn failed(e: &tokio_postgres::Error) -> TraceOutcome {
    TraceOutcome::Failed {
        sqlstate: e.code().map(|c| SqlState::from_code(c.code())),
        // The SQLSTATE is kept apart: the message does not repeat it.
        message: crate::redact::redact_sql(&e.as_db_error().map_or_else(
            || crate::provision::describe_pg_error(e),
            |db| db.message().to_string(),
        )),
    }
}

/// Rows from the command tags (SAVEPOINT and RELEASE count none).
fn rows_of(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => *n,
            _ => 0,
        })
        .sum()
}

/// Statements whose command tag counts rows.
fn counts_rows(c: &Classified) -> bool {
    c.tokens.first().is_some_and(|t| {
        matches!(
            t.as_str(),
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "SELECT" | "WITH"
        )
    })
}

/// A relation name as written in SQL (`a.b` or `b`), unquoted and folded
/// as PostgreSQL folds it.
fn name_at(tokens: &[String], at: usize) -> Option<(Vec<String>, usize)> {
    let part = |t: &str| -> Option<String> {
        if let Some(q) = t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(q.to_string())
        } else if t
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            Some(t.to_lowercase())
        } else {
            None
        }
    };
    let first = part(tokens.get(at)?)?;
    if tokens.get(at + 1).map(String::as_str) == Some(".") {
        let second = part(tokens.get(at + 2)?)?;
        return Some((vec![first, second], at + 3));
    }
    Some((vec![first], at + 1))
}

/// Skips optional words at `at`.
fn skip(tokens: &[String], mut at: usize, words: &[&[&str]]) -> usize {
    for w in words {
        if tokens.len() >= at + w.len()
            && tokens[at..at + w.len()].iter().zip(*w).all(|(a, b)| a == b)
        {
            at += w.len();
        }
    }
    at
}

/// The table lock a statement's form requires, from the manual's pages
/// for each command ("Explicit Locking", ALTER TABLE, CREATE INDEX, CREATE
/// TRIGGER, LOCK, TRUNCATE, REFRESH MATERIALIZED VIEW). `None` when the
/// form is not one of these: then only what `pg_locks` shows counts.
#[must_use]
pub fn required_lock(c: &Classified) -> Option<(Vec<String>, LockMode)> {
    let t = &c.tokens;
    if c.starts_with(&["ALTER", "TABLE"]) {
        let at = skip(t, 2, &[&["IF", "EXISTS"], &["ONLY"]]);
        let (name, end) = name_at(t, at)?;
        return Some((name, alter_table_mode(&t[end..])));
    }
    let concurrently = c.has("CONCURRENTLY");
    if c.starts_with(&["DROP", "INDEX"]) {
        // The index's table: SHARE UPDATE EXCLUSIVE when concurrent, else
        // ACCESS EXCLUSIVE (manual, DROP INDEX).
        let at = skip(t, 2, &[&["CONCURRENTLY"], &["IF", "EXISTS"]]);
        let mode = if concurrently {
            LockMode::ShareUpdateExclusive
        } else {
            LockMode::AccessExclusive
        };
        return Some((name_at(t, at)?.0, mode));
    }
    if c.starts_with(&["REINDEX"]) {
        // REINDEX [ ( options ) ] { INDEX | TABLE } [ CONCURRENTLY ] name:
        // SHARE on the table, SHARE UPDATE EXCLUSIVE when concurrent.
        let kind = t.iter().position(|w| w == "INDEX" || w == "TABLE")?;
        let at = skip(t, kind + 1, &[&["CONCURRENTLY"]]);
        let mode = if concurrently {
            LockMode::ShareUpdateExclusive
        } else {
            LockMode::Share
        };
        return Some((name_at(t, at)?.0, mode));
    }
    if c.starts_with(&["CREATE"]) {
        let on = t.iter().position(|w| w == "ON")?;
        let mode = if t.iter().take(on).any(|w| w == "INDEX") {
            if concurrently {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::Share
            }
        } else if t.iter().take(on).any(|w| w == "TRIGGER") {
            LockMode::ShareRowExclusive
        } else {
            return None;
        };
        let at = skip(t, on + 1, &[&["ONLY"]]);
        return Some((name_at(t, at)?.0, mode));
    }
    if c.starts_with(&["TRUNCATE"]) || c.starts_with(&["DROP", "TABLE"]) {
        let at = skip(t, 1, &[&["TABLE"], &["IF", "EXISTS"], &["ONLY"]]);
        return Some((name_at(t, at)?.0, LockMode::AccessExclusive));
    }
    if c.starts_with(&["INSERT", "INTO"]) || c.starts_with(&["MERGE", "INTO"]) {
        return Some((name_at(t, 2)?.0, LockMode::RowExclusive));
    }
    if c.starts_with(&["UPDATE"]) || c.starts_with(&["DELETE", "FROM"]) {
        let at = skip(t, 1, &[&["FROM"], &["ONLY"]]);
        return Some((name_at(t, at)?.0, LockMode::RowExclusive));
    }
    if c.starts_with(&["LOCK"]) {
        let at = skip(t, 1, &[&["TABLE"], &["ONLY"]]);
        let (name, end) = name_at(t, at)?;
        let mode = t[end..]
            .iter()
            .position(|w| w == "IN")
            .and_then(|i| {
                let words = &t[end + i + 1..];
                let stop = words.iter().position(|w| w == "MODE")?;
                let wanted = words[..stop].join(" ");
                LockMode::ALL.into_iter().find(|m| m.sql_name() == wanted)
            })
            .unwrap_or(LockMode::AccessExclusive);
        return Some((name, mode));
    }
    if c.starts_with(&["REFRESH", "MATERIALIZED", "VIEW"]) {
        let concurrently = t.get(3).is_some_and(|w| w == "CONCURRENTLY");
        let at = 3 + usize::from(concurrently);
        let mode = if concurrently {
            LockMode::Exclusive
        } else {
            LockMode::AccessExclusive
        };
        return Some((name_at(t, at)?.0, mode));
    }
    None
}

/// The strongest mode among an ALTER TABLE's subcommands (manual, ALTER
/// TABLE: "ACCESS EXCLUSIVE unless explicitly noted").
fn alter_table_mode(rest: &[String]) -> LockMode {
    let mut strongest = None::<LockMode>;
    let mut depth = 0i32;
    let mut start = 0;
    for (i, w) in rest.iter().enumerate() {
        match w.as_str() {
            "(" => depth += 1,
            ")" => depth -= 1,
            "," if depth == 0 => {
                strongest = strongest.max(Some(subcommand_mode(&rest[start..i])));
                start = i + 1;
            }
            _ => {}
        }
    }
    strongest
        .max(Some(subcommand_mode(&rest[start..])))
        .unwrap_or(LockMode::AccessExclusive)
}

fn subcommand_mode(sub: &[String]) -> LockMode {
    let s = |words: &[&str]| {
        sub.windows(words.len())
            .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
    };
    let first = sub.first().map_or("", String::as_str);
    if s(&["VALIDATE", "CONSTRAINT"])
        || s(&["SET", "STATISTICS"])
        || s(&["CLUSTER", "ON"])
        || s(&["SET", "WITHOUT", "CLUSTER"])
        || s(&["ATTACH", "PARTITION"])
        || (s(&["DETACH", "PARTITION"]) && s(&["CONCURRENTLY"]))
        || (first == "SET" && sub.get(1).is_some_and(|w| w == "("))
    {
        LockMode::ShareUpdateExclusive
    } else if (first == "ADD" && s(&["FOREIGN", "KEY"]))
        || ((first == "ENABLE" || first == "DISABLE") && s(&["TRIGGER"]))
    {
        LockMode::ShareRowExclusive
    } else {
        LockMode::AccessExclusive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_lock_follows_the_manual() {
        let req = |sql: &str| required_lock(&lint::classify(sql));
        let name = |n: &[&str]| n.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        assert_eq!(
            req("ALTER TABLE IF EXISTS ONLY public.\"T\" ADD COLUMN c int"),
            Some((name(&["public", "T"]), LockMode::AccessExclusive))
        );
        assert_eq!(
            req("ALTER TABLE t VALIDATE CONSTRAINT c"),
            Some((name(&["t"]), LockMode::ShareUpdateExclusive))
        );
        assert_eq!(
            req("ALTER TABLE t VALIDATE CONSTRAINT c, ADD COLUMN d int"),
            Some((name(&["t"]), LockMode::AccessExclusive))
        );
        assert_eq!(
            req("ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)"),
            Some((name(&["t"]), LockMode::ShareRowExclusive))
        );
        assert_eq!(
            req("CREATE UNIQUE INDEX IF NOT EXISTS i ON ONLY t (a)"),
            Some((name(&["t"]), LockMode::Share))
        );
        assert_eq!(
            req("LOCK TABLE t IN SHARE ROW EXCLUSIVE MODE"),
            Some((name(&["t"]), LockMode::ShareRowExclusive))
        );
        assert_eq!(
            req("update t set a = 1"),
            Some((name(&["t"]), LockMode::RowExclusive))
        );
        assert_eq!(
            req("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON s.t (a)"),
            Some((name(&["s", "t"]), LockMode::ShareUpdateExclusive))
        );
        assert_eq!(
            req("DROP INDEX CONCURRENTLY IF EXISTS i"),
            Some((name(&["i"]), LockMode::ShareUpdateExclusive))
        );
        assert_eq!(
            req("REINDEX (VERBOSE) INDEX CONCURRENTLY i"),
            Some((name(&["i"]), LockMode::ShareUpdateExclusive))
        );
        assert_eq!(req("SELECT 1"), None);
    }
}
