//! The live lock sampler: a dedicated connection reading `pg_locks` joined
//! with `pg_stat_activity` at a fixed interval while a rehearsal runs.
//!
//! Why it is built this way (REFERENCE.md, "Observing locks", measured on
//! this kind of machine): one sample every 10 ms costs ~1-2 % CPU and no
//! measurable throughput, while a tight loop cut a workload's throughput by
//! a quarter. `pg_blocking_pids` briefly locks the lock manager, so it is
//! called only for ungranted rows. The sampler never takes a lock on a user
//! relation: names come from `pg_class` by oid (a catalog read), never from
//! a `regclass` cast or a size function. A `statement_timeout` and a
//! `lock_timeout` bound every sample; a sample that fails or overruns its
//! tick counts as missed. The sampler stops by itself at its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::LockError;
use super::mode::{LockMode, LockType};
use crate::provision::ConnInfo;

/// The sampler connection's `application_name`: the analysis leaves it out.
pub const SAMPLER_APPLICATION_NAME: &str = "rehearse-lock-sampler";

/// How often and for how long to sample.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    /// Default 10 ms (REFERENCE.md: no measurable throughput cost).
    pub interval: Duration,
    /// Bound for one sample's query.
    pub statement_timeout: Duration,
    /// The sampler stops by itself after this long.
    pub deadline: Duration,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        SamplerOptions {
            interval: Duration::from_millis(10),
            statement_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(30 * 60),
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

// SQL: one sample. The join with pg_stat_activity is done here; pg_class
// and pg_namespace are catalogs read by oid, which locks no user table.
// pg_blocking_pids only for waiting rows. Only this database's backends,
// and not the sampler itself. Granted virtualxid rows (one per
// transaction) say nothing about waits and are left out.
const SAMPLE: &str = "SELECT l.pid, l.locktype, l.mode, l.granted, \
       CASE WHEN l.locktype IN ('relation', 'tuple', 'page') \
            THEN coalesce(n.nspname || '.' || c.relname, l.relation::text) END, \
       CASE WHEN l.locktype IN ('advisory', 'object') \
                 THEN l.classid::text || ':' || l.objid::text || ':' || l.objsubid::text \
            WHEN l.locktype = 'transactionid' THEN l.transactionid::text \
            WHEN l.locktype = 'virtualxid' THEN l.virtualxid END, \
       CASE WHEN l.granted THEN NULL ELSE pg_blocking_pids(l.pid) END, \
       coalesce(a.application_name, ''), left(coalesce(a.query, ''), 300) \
  FROM pg_locks l \
  JOIN pg_stat_activity a ON a.pid = l.pid \
  LEFT JOIN pg_class c ON c.oid = l.relation \
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace \
 WHERE a.datname = current_database() AND l.pid <> pg_backend_pid() \
   AND NOT (l.granted AND l.locktype = 'virtualxid')";

/// A running sampler; [`SamplerHandle::stop`] returns what it saw.
pub struct SamplerHandle {
    stop: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    origin: Instant,
    task: JoinHandle<Result<Samples, LockError>>,
}

/// Connects and starts sampling `conn`'s database.
pub async fn start(conn: &ConnInfo, options: SamplerOptions) -> Result<SamplerHandle, LockError> {
    let client = conn
        .connect(SAMPLER_APPLICATION_NAME)
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
    let statement = client.prepare(SAMPLE).await.map_err(LockError::query)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let taken = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&taken);
    // The clock starts here, not when the task first runs: callers line the
    // samples up with their own clock through `origin` (a task may be polled
    // only at the caller's next await).
    let origin = Instant::now();
    let task = tokio::spawn(async move {
        let started = origin;
        let interval_us = u64::try_from(options.interval.as_micros()).unwrap_or(u64::MAX);
        let mut out = Samples {
            interval_us,
            ..Samples::default()
        };
        let mut ticker = tokio::time::interval(options.interval);
        // Skip: a slow sample must not be followed by a burst of catch-up
        // samples, which is exactly the tight loop that costs throughput.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = started;
        while !flag.load(Ordering::Relaxed) && started.elapsed() < options.deadline {
            let tick = ticker.tick().await.into_std();
            // Ticks skipped since the last one were missed samples.
            let gap = tick.saturating_duration_since(last_tick).as_micros();
            let skipped = u64::try_from(gap).unwrap_or(0) / interval_us.max(1);
            if !out.samples.is_empty() && skipped > 1 {
                out.missed += skipped - 1;
            }
            last_tick = tick;
            let at_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            match client.query(&statement, &[]).await {
                Ok(rows) => {
                    out.samples.push(to_sample(at_us, &rows));
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => out.missed += 1,
            }
        }
        out.duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(out)
    });
    Ok(SamplerHandle {
        stop,
        taken,
        origin,
        task,
    })
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
    pub async fn stop(self) -> Result<Samples, LockError> {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .map_err(|e| LockError::Sampler(e.to_string()))?
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

fn to_sample(at_us: u64, rows: &[tokio_postgres::Row]) -> Sample {
    let mut locks = Vec::with_capacity(rows.len());
    let mut backends: Vec<Backend> = Vec::new();
    for r in rows {
        let Some(mode) = LockMode::from_pg(r.get::<_, &str>(2)) else {
            continue;
        };
        let pid: i32 = r.get(0);
        locks.push(LockRow {
            pid,
            locktype: LockType::from_pg(r.get::<_, &str>(1)),
            mode,
            granted: r.get(3),
            relation: r.get(4),
            object: r.get(5),
            blocked_by: r.get::<_, Option<Vec<i32>>>(6).unwrap_or_default(),
        });
        if !backends.iter().any(|b| b.pid == pid) {
            backends.push(Backend {
                pid,
                application_name: r.get(7),
                query: r.get(8),
            });
        }
    }
    Sample {
        at_us,
        locks,
        backends,
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
