//! The live lock sampler: a dedicated connection reading `pg_locks` at a
//! fixed interval while a rehearsal runs, naming backends and relations
//! from what it remembers.
//!
//! Why it is built this way (REFERENCE.md, "Observing locks", measured on
//! this kind of machine): one sample every 10 ms is cheap, a tight loop cut
//! a workload's throughput by a quarter, and reading `pg_locks` alone and
//! joining client-side sampled ~4x faster than the join in SQL. So a tick
//! reads `pg_locks` only; `pg_stat_activity` is read when an unknown pid
//! shows up, while anything waits and every tenth tick; relation names come
//! from a cache filled by oid from `pg_class` (a catalog read, never a
//! `regclass` cast or a size function, so no lock on a user relation).
//! `pg_blocking_pids` briefly locks the lock manager, so it is called only
//! for waiting pids. A `statement_timeout` and a `lock_timeout` bound every
//! query; a sample that fails or overruns its tick counts as missed. The
//! sampler runs on a thread of its own (a workload's busy runtime neither
//! delays its ticks nor shares a worker with it) and stops by itself at its
//! deadline, or when its handle is dropped. On a cluster this process
//! started it connects through the unix socket, whose round trip costs
//! both ends less CPU than loopback TCP.
//!
//! What a tick costs (`cargo bench --bench locks`, 2-core VM, under load):
//! the round trip itself (a `SELECT 1` poller costs about as much), plus
//! `pg_locks`, which walks every backend slot's fast-path locks and the
//! whole shared lock and predicate-lock hash tables, all sized by
//! `max_connections`, whatever few locks are held. That is why the servers
//! a rehearsal starts keep Postgres's default of 100 unless a scenario
//! needs more ([`crate::rehearsal::Plan::server_max_connections`]): at 300
//! the backend's half of a tick costs about a third more.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::LockError;
use super::mode::{LockMode, LockType};
use crate::provision::ConnInfo;

/// The sampler connection's `application_name`: the analysis leaves it out.
pub const SAMPLER_APPLICATION_NAME: &str = "rehearse-lock-sampler";

/// How often and for how long to sample.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    /// Default 10 ms; a scenario sets it with `[locks] sample_interval_ms`.
    /// Each tick is a round trip plus a walk of the lock tables: on a
    /// saturated 2-core VM with `max_connections = 100`, 10 ms costs the
    /// workload about 2 % of its throughput (README, "Lock sampler").
    pub interval: Duration,
    /// Bound for one sample's query.
    pub statement_timeout: Duration,
    /// The sampler stops by itself after this long.
    pub deadline: Duration,
    /// Keep holds on system catalogs in the analysis (`[locks] catalog`);
    /// left out by default: no application query waits on them.
    pub catalog: bool,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            interval: Duration::from_millis(10),
            statement_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(30 * 60),
            catalog: false,
        }
    }
}

impl SamplerOptions {
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    #[must_use]
    pub fn with_catalog(mut self, catalog: bool) -> Self {
        self.catalog = catalog;
        self
    }

    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }
}

/// One `pg_locks` row as sampled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRow {
    pub pid: i32,
    pub locktype: LockType,
    pub mode: LockMode,
    pub granted: bool,
    /// `schema.table` (or the oid when the name is not visible yet).
    pub relation: Option<String>,
    /// The relation's oid: how the analysis tells relations that existed
    /// before the rehearsal from those it created, and folds an index,
    /// toast table or owned sequence into its table.
    #[serde(default)]
    pub oid: Option<u32>,
    /// Advisory key or object ids; for `transactionid` rows, the xid.
    pub object: Option<String>,
    /// `pg_blocking_pids` of an ungranted row; empty for granted rows.
    pub blocked_by: Vec<i32>,
}

/// A backend seen in a sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub pid: i32,
    pub application_name: String,
    /// Its current (or last) statement, truncated.
    pub query: String,
}

/// One sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Microseconds since the sampler started.
    pub at_us: u64,
    pub locks: Vec<LockRow>,
    pub backends: Vec<Backend>,
}

/// Everything the sampler saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Samples {
    pub interval_us: u64,
    pub samples: Vec<Sample>,
    /// Ticks without a sample: the query failed, timed out or overran.
    pub missed: u64,
    pub duration_us: u64,
    /// The database's own relations when sampling began, by oid, each
    /// mapped to the table it belongs to (an index, toast table, toast
    /// index or owned sequence to its table; a table to itself). A relation
    /// not in here was created during the rehearsal. `None` in recordings
    /// made before this was read.
    #[serde(default)]
    pub existing: Option<std::collections::BTreeMap<u32, String>>,
    /// Holds on system catalogs are kept (see [`SamplerOptions::catalog`]).
    #[serde(default)]
    pub catalog: bool,
}

impl Samples {
    /// Samples taken per second of sampling.
    #[must_use]
    pub fn rate_per_second(&self) -> f64 {
        if self.duration_us == 0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "rates need no exact counts")]
        let rate = self.samples.len() as f64 * 1e6 / self.duration_us as f64;
        rate
    }
}

// SQL, per tick: `pg_locks` alone (REFERENCE.md: joining client-side
// reached ~4x the sample rate of the server-side join, and every sample's
// CPU comes out of the workload's on a small machine). Rows of other
// databases' relations and advisory locks are left out here; the
// database-less rows (transaction ids) are kept to the pids of this
// database's backends client-side. Granted virtualxid rows (one per
// transaction) say nothing about waits and are left out. `{db}` is this
// database's oid, read once.
const LOCKS: &str = "SELECT l.pid, l.locktype, l.mode, l.granted, l.relation, \
       CASE WHEN l.locktype IN ('advisory', 'object') \
                 THEN l.classid::text || ':' || l.objid::text || ':' || l.objsubid::text \
            WHEN l.locktype = 'transactionid' THEN l.transactionid::text \
            WHEN l.locktype = 'virtualxid' THEN l.virtualxid END \
  FROM pg_locks l \
 WHERE l.pid <> pg_backend_pid() AND NOT (l.granted AND l.locktype = 'virtualxid') \
   AND (l.database IS NULL OR l.database IN (0, {db}))";

// Who the backends are. Read when a lock row names a pid not seen yet,
// while anything waits (the waiters' and blockers' statements attribute
// the wait), and every `ACTIVITY_EVERY` ticks otherwise.
const ACTIVITY: &str = "SELECT pid, coalesce(datname = current_database(), false), \
       coalesce(application_name, ''), left(coalesce(query, ''), 300) \
  FROM pg_stat_activity WHERE pid <> pg_backend_pid()";

// pg_blocking_pids briefly locks the lock manager: only for waiting pids.
const BLOCKERS: &str = "SELECT p, pg_blocking_pids(p) FROM unnest($1::int4[]) AS p";

// Relation names by oid: pg_class and pg_namespace are catalogs read by
// oid, which locks no user table (no regclass cast, no size function). A
// relation created by a transaction still running has no visible name yet:
// it is shown by oid until it has one.
const NAMES: &str = "SELECT c.oid, n.nspname || '.' || c.relname \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
 WHERE c.oid = ANY($1::oid[])";

// The relations that exist before the rehearsal, each with the relation it
// belongs to: an index's table (pg_index.indrelid), a toast table's table
// (pg_class.reltoastrelid), an owned sequence's table (pg_depend 'a' for
// serial, 'i' for identity; 1259 is pg_class's fixed oid). Catalog reads by
// oid only: no lock on any user relation. Oids below 16384
// (FirstNormalObjectId) are the system's own and are left out.
const EXISTING: &str = "SELECT c.oid, n.nspname || '.' || c.relname, \
       coalesce(i.indrelid, t.oid, d.refobjid) \
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
  LEFT JOIN pg_index i ON i.indexrelid = c.oid \
  LEFT JOIN pg_class t ON t.reltoastrelid = c.oid \
  LEFT JOIN pg_depend d ON c.relkind = 'S' AND d.classid = 1259 AND d.objid = c.oid \
        AND d.refclassid = 1259 AND d.deptype IN ('a', 'i') \
 WHERE c.oid >= 16384";

/// Ticks between two reads of `pg_stat_activity` when nothing changed.
const ACTIVITY_EVERY: u64 = 10;
/// Ticks between two clears of the relation name cache (renames show up).
const NAMES_EVERY: u64 = 100;

/// A running sampler; [`SamplerHandle::stop`] returns what it saw.
/// Dropping the handle stops the sampler too (at its next tick).
pub struct SamplerHandle {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    origin: Instant,
    done: Option<oneshot::Receiver<Samples>>,
}

/// Connects and starts sampling `conn`'s database.
///
/// The sampler runs on a thread of its own with a single-threaded runtime:
/// its ticks stay on time when the caller's runtime is busy with workload
/// clients, and its wake-ups and row decoding never take a worker thread
/// from them.
pub async fn start(conn: &ConnInfo, options: SamplerOptions) -> Result<SamplerHandle, LockError> {
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU64::new(0));
    // The clock starts here: callers line the samples up with their own
    // clock through `origin`.
    let origin = Instant::now();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), LockError>>();
    let (done_tx, done_rx) = oneshot::channel::<Samples>();
    let conn = conn.clone();
    let flag = Arc::clone(&stop);
    let counter = Arc::clone(&taken);
    std::thread::Builder::new()
        .name(SAMPLER_APPLICATION_NAME.into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(LockError::Sampler(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                let (client, statements) = match connect(&conn, &options).await {
                    Ok(ready) => ready,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let samples =
                    sample_until_stopped(&client, &statements, &options, origin, &flag, &counter)
                        .await;
                let _ = done_tx.send(samples);
            });
        })
        .map_err(|e| LockError::Sampler(format!("starting the sampler thread: {e}")))?;
    ready_rx
        .await
        .map_err(|_| LockError::Sampler("the sampler thread ended while connecting".into()))??;
    Ok(SamplerHandle {
        stop,
        taken,
        origin,
        done: Some(done_rx),
    })
}

/// The sampler's connection and its prepared statements.
async fn connect(
    conn: &ConnInfo,
    options: &SamplerOptions,
) -> Result<(tokio_postgres::Client, Statements), LockError> {
    // Through the unix socket where there is one: a tick is a round trip,
    // and a socket round trip costs both ends less CPU than loopback TCP.
    let client = conn
        .connect_nearby(SAMPLER_APPLICATION_NAME)
        .await
        .map_err(|e| LockError::Connect(e.to_string()))?;
    // The sampler must never wait: a lock it cannot get at once is a
    // missed sample, not a stall (lock_timeout), and no sample runs long.
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}; SET lock_timeout = 100",
            options.statement_timeout.as_millis()
        ))
        .await
        .map_err(LockError::query)?;
    let db: u32 = client
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(LockError::query)?
        .get(0);
    let statements = Statements {
        locks: client
            .prepare(&LOCKS.replace("{db}", &db.to_string()))
            .await
            .map_err(LockError::query)?,
        activity: client.prepare(ACTIVITY).await.map_err(LockError::query)?,
        blockers: client.prepare(BLOCKERS).await.map_err(LockError::query)?,
        names: client.prepare(NAMES).await.map_err(LockError::query)?,
    };
    Ok((client, statements))
}

/// Samples every tick until `stop` is set or the deadline passes.
async fn sample_until_stopped(
    client: &tokio_postgres::Client,
    statements: &Statements,
    options: &SamplerOptions,
    started: Instant,
    stop: &AtomicBool,
    counter: &AtomicU64,
) -> Samples {
    let interval_us = u64::try_from(options.interval.as_micros()).unwrap_or(u64::MAX);
    let mut out = Samples {
        interval_us,
        existing: existing_relations(client).await.ok(),
        catalog: options.catalog,
        ..Samples::default()
    };
    let mut ticker = tokio::time::interval(options.interval);
    // Skip: a slow sample must not be followed by a burst of catch-up
    // samples, which is exactly the tight loop that costs throughput.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_tick = started;
    let mut known = Known::default();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < options.deadline {
        let tick = ticker.tick().await.into_std();
        // Ticks skipped since the last one were missed samples.
        let gap = tick.saturating_duration_since(last_tick).as_micros();
        let skipped = u64::try_from(gap).unwrap_or(0) / interval_us.max(1);
        if !out.samples.is_empty() && skipped > 1 {
            out.missed += skipped - 1;
        }
        last_tick = tick;
        let at_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match known.sample(client, statements, at_us).await {
            Ok(sample) => {
                out.samples.push(sample);
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => out.missed += 1,
        }
    }
    out.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    known.name_late(client, statements, &mut out).await;
    out
}

/// Reads [`EXISTING`] and resolves each relation to its table (a toast
/// index goes through its toast table).
async fn existing_relations(
    client: &tokio_postgres::Client,
) -> Result<std::collections::BTreeMap<u32, String>, tokio_postgres::Error> {
    let rows = client.query(EXISTING, &[]).await?;
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut owners: HashMap<u32, u32> = HashMap::new();
    for r in &rows {
        let oid: u32 = r.get(0);
        names.insert(oid, r.get(1));
        if let Some(owner) = r.get::<_, Option<u32>>(2) {
            owners.insert(oid, owner);
        }
    }
    Ok(names
        .iter()
        .map(|(oid, name)| {
            let mut at = *oid;
            // Index of a toast table of a table: at most three steps.
            for _ in 0..3 {
                match owners.get(&at) {
                    Some(owner) if names.contains_key(owner) => at = *owner,
                    _ => break,
                }
            }
            (
                *oid,
                names.get(&at).cloned().unwrap_or_else(|| name.clone()),
            )
        })
        .collect())
}

impl SamplerHandle {
    /// The instant `Sample::at_us` counts from.
    #[must_use]
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Sampler time minus the time of a clock that started at `other` (such
    /// as a timeline recorder's), in microseconds: an instant the sampler
    /// stamps `t` is `t - offset` on the other clock.
    #[must_use]
    pub fn offset_from(&self, other: Instant) -> i64 {
        signed_us(other, self.origin)
    }

    /// Samples taken so far (lets a caller wait until the sampler has seen
    /// a state, instead of sleeping).
    #[must_use]
    pub fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Stops sampling and returns the samples.
    pub async fn stop(mut self) -> Result<Samples, LockError> {
        self.stop.store(true, Ordering::Relaxed);
        let done = self
            .done
            .take()
            .ok_or_else(|| LockError::Sampler("already stopped".into()))?;
        done.await
            .map_err(|_| LockError::Sampler("the sampler thread ended without its samples".into()))
    }
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `a - b` in microseconds, negative when `a` is earlier.
fn signed_us(a: Instant, b: Instant) -> i64 {
    let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match a.checked_duration_since(b) {
        Some(d) => us(d),
        None => -us(b.duration_since(a)),
    }
}

struct Statements {
    locks: tokio_postgres::Statement,
    activity: tokio_postgres::Statement,
    blockers: tokio_postgres::Statement,
    names: tokio_postgres::Statement,
}

/// What the sampler remembers between ticks: backends and relation names.
#[derive(Default)]
struct Known {
    /// This database's backends, by pid.
    ours: HashMap<i32, Backend>,
    /// Pids of other databases' backends (and background processes).
    others: HashSet<i32>,
    /// Relation names by oid; `None` while the name is not visible.
    names: HashMap<u32, Option<String>>,
    /// Oids that samples show as numbers (their name was not visible yet).
    shown_by_oid: HashSet<u32>,
    ticks: u64,
    activity_read_at: u64,
}

/// One `pg_locks` row before it is kept or named.
struct RawLock {
    pid: i32,
    locktype: LockType,
    mode: LockMode,
    granted: bool,
    relation: Option<u32>,
    object: Option<String>,
}

impl Known {
    /// Takes one sample: `pg_locks`, then whatever else this tick needs.
    async fn sample(
        &mut self,
        client: &tokio_postgres::Client,
        statements: &Statements,
        at_us: u64,
    ) -> Result<Sample, tokio_postgres::Error> {
        self.ticks += 1;
        if self.ticks.is_multiple_of(NAMES_EVERY) {
            self.names.clear();
        }
        let raw: Vec<RawLock> = client
            .query(&statements.locks, &[])
            .await?
            .iter()
            .filter_map(|r| {
                Some(RawLock {
                    pid: r.get(0),
                    locktype: LockType::from_pg(r.get::<_, &str>(1)),
                    mode: LockMode::from_pg(r.get::<_, &str>(2))?,
                    granted: r.get(3),
                    relation: r.get(4),
                    object: r.get(5),
                })
            })
            .collect();

        let unknown_pid = raw
            .iter()
            .any(|l| !self.ours.contains_key(&l.pid) && !self.others.contains(&l.pid));
        let anyone_waits = raw
            .iter()
            .any(|l| !l.granted && self.ours.contains_key(&l.pid));
        if unknown_pid || anyone_waits || self.ticks - self.activity_read_at >= ACTIVITY_EVERY {
            self.read_activity(client, statements).await?;
        }
        let raw: Vec<RawLock> = raw
            .into_iter()
            .filter(|l| self.ours.contains_key(&l.pid))
            .collect();

        let mut blocked_by: HashMap<i32, Vec<i32>> = HashMap::new();
        let mut waiting: Vec<i32> = raw.iter().filter(|l| !l.granted).map(|l| l.pid).collect();
        waiting.sort_unstable();
        waiting.dedup();
        if !waiting.is_empty() {
            for r in client.query(&statements.blockers, &[&waiting]).await? {
                blocked_by.insert(
                    r.get(0),
                    r.get::<_, Option<Vec<i32>>>(1).unwrap_or_default(),
                );
            }
        }

        let unnamed: Vec<u32> = raw
            .iter()
            .filter_map(|l| l.relation)
            .filter(|oid| !self.names.contains_key(oid))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unnamed.is_empty() {
            let rows = client.query(&statements.names, &[&unnamed]).await?;
            for oid in unnamed {
                self.names.insert(oid, None);
            }
            for r in rows {
                self.names.insert(r.get(0), Some(r.get(1)));
            }
        }

        let mut backends: Vec<Backend> = Vec::new();
        let locks = raw
            .into_iter()
            .map(|l| {
                if !backends.iter().any(|b| b.pid == l.pid)
                    && let Some(backend) = self.ours.get(&l.pid)
                {
                    backends.push(backend.clone());
                }
                let named = matches!(
                    l.locktype,
                    LockType::Relation | LockType::Tuple | LockType::Page
                );
                LockRow {
                    pid: l.pid,
                    locktype: l.locktype,
                    mode: l.mode,
                    granted: l.granted,
                    relation: l.relation.filter(|_| named).map(|oid| {
                        self.names.get(&oid).cloned().flatten().unwrap_or_else(|| {
                            self.shown_by_oid.insert(oid);
                            oid.to_string()
                        })
                    }),
                    oid: l.relation.filter(|_| named),
                    object: l.object,
                    blocked_by: if l.granted {
                        Vec::new()
                    } else {
                        blocked_by.get(&l.pid).cloned().unwrap_or_default()
                    },
                }
            })
            .collect();
        Ok(Sample {
            at_us,
            locks,
            backends,
        })
    }

    /// Names, once sampling is over, the relations samples show by oid: a
    /// table or index the migration created was invisible to the sampler
    /// until its transaction committed. Relations that are gone (rolled
    /// back, dropped) keep their oid.
    async fn name_late(
        &mut self,
        client: &tokio_postgres::Client,
        statements: &Statements,
        out: &mut Samples,
    ) {
        if self.shown_by_oid.is_empty() {
            return;
        }
        let oids: Vec<u32> = self.shown_by_oid.drain().collect();
        let Ok(rows) = client.query(&statements.names, &[&oids]).await else {
            return;
        };
        let late: HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, u32>(0).to_string(), r.get(1)))
            .collect();
        for lock in out.samples.iter_mut().flat_map(|s| s.locks.iter_mut()) {
            if let Some(name) = lock.relation.as_ref().and_then(|r| late.get(r)) {
                lock.relation = Some(name.clone());
            }
        }
    }

    async fn read_activity(
        &mut self,
        client: &tokio_postgres::Client,
        statements: &Statements,
    ) -> Result<(), tokio_postgres::Error> {
        let rows = client.query(&statements.activity, &[]).await?;
        self.ours.clear();
        self.others.clear();
        for r in rows {
            let pid: i32 = r.get(0);
            if r.get(1) {
                self.ours.insert(
                    pid,
                    Backend {
                        pid,
                        application_name: r.get(2),
                        query: r.get(3),
                    },
                );
            } else {
                self.others.insert(pid);
            }
        }
        self.activity_read_at = self.ticks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed() {
        let a = Instant::now();
        let b = a + Duration::from_millis(3);
        assert_eq!(signed_us(b, a), 3_000);
        assert_eq!(signed_us(a, b), -3_000);
        assert_eq!(signed_us(a, a), 0);
    }
}
