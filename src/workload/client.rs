//! The clients: K connections per running replica of a version, each
//! sending weighted random queries in a closed loop or at a target rate,
//! recording every execution with the phase it ran in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{Pace, ParamSource, Query, Workload, bind_literals};
use crate::provision::{ConnInfo, quote_ident};
use crate::timeline::{Recorder, SqlState};

/// A bound on every single query: a client stuck behind a migration's lock
/// longer than this records 57014 instead of hanging the rehearsal.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many rows a `from = "table.column"` parameter samples.
const SAMPLE_ROWS: i64 = 1000;
/// Beyond this many executions, only failures and every 10th success are
/// kept (counts stay exact in the traffic report's inputs for short runs).
const KEEP_ALL: usize = 200_000;

/// One execution of one query by one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub version: String,
    pub query: String,
    /// Index into the rollout's phases.
    pub phase: usize,
    /// Client `application_name`, `rehearse-app-<version>-<n>`.
    pub client: String,
    /// Microseconds since the rehearsal started (the timeline's clock).
    pub start_us: u64,
    pub latency_us: u64,
    /// `None`: ok.
    pub sqlstate: Option<SqlState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Shared state of every client of a rollout.
#[derive(Clone)]
pub struct WorkloadRun {
    pub conn: ConnInfo,
    pub recorder: Recorder,
    pub phase: Arc<AtomicUsize>,
    executions: Arc<Mutex<Vec<Execution>>>,
    seen: Arc<AtomicUsize>,
    samples: Arc<Mutex<HashMap<String, Arc<Vec<String>>>>>,
    next_client: Arc<AtomicUsize>,
}

impl WorkloadRun {
    #[must_use]
    pub fn new(conn: ConnInfo, recorder: Recorder) -> Self {
        WorkloadRun {
            conn,
            recorder,
            phase: Arc::default(),
            executions: Arc::default(),
            seen: Arc::default(),
            samples: Arc::default(),
            next_client: Arc::default(),
        }
    }

    /// Every recorded execution so far, by start time.
    #[must_use]
    pub fn executions(&self) -> Vec<Execution> {
        let mut all = self
            .executions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        all.sort_by_key(|e| e.start_us);
        all
    }

    fn record(&self, execution: Execution) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if n >= KEEP_ALL && execution.sqlstate.is_none() && !n.is_multiple_of(10) {
            return;
        }
        self.executions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(execution);
    }

    /// Values of `table.column`, sampled once per rehearsal and reused (a
    /// column a migration drops later keeps its values for old clients).
    async fn sample(
        &self,
        client: &tokio_postgres::Client,
        column: &str,
    ) -> Result<Arc<Vec<String>>, String> {
        if let Some(values) = self
            .samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(column)
        {
            return Ok(values.clone());
        }
        let parts: Vec<&str> = column.split('.').collect();
        let (table, col) = parts.split_at(parts.len() - 1);
        let table: Vec<String> = table.iter().map(|p| quote_ident(p)).collect();
        let sql = format!(
            "SELECT {}::text FROM {} WHERE {} IS NOT NULL LIMIT {SAMPLE_ROWS}",
            quote_ident(col[0]),
            table.join("."),
            quote_ident(col[0])
        );
        let rows = client.query(&sql, &[]).await.map_err(|e| {
            format!(
                "`from = \"{column}\"`: {}",
                crate::provision::describe_pg_error(&e)
            )
        })?;
        let values: Vec<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
        if values.is_empty() {
            return Err(format!(
                "`from = \"{column}\"`: no rows to draw values from"
            ));
        }
        let values = Arc::new(values);
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(column.to_string(), values.clone());
        Ok(values)
    }

    /// Reads every `from` column the workloads name, before anything runs,
    /// so a wrong column is an input error, not a stream of failures.
    pub async fn prepare_samples(&self, workloads: &[Workload]) -> Result<(), String> {
        let client = self
            .conn
            .connect("rehearse-harness")
            .await
            .map_err(|e| e.to_string())?;
        for w in workloads {
            for q in &w.queries {
                for p in &q.params {
                    if let ParamSource::From(column) = p {
                        self.sample(&client, column).await.map_err(|e| {
                            format!("{}: query `{}`: {e}", w.path.display(), q.name)
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The clients of one running replica of a version.
pub struct ClientPool {
    pub version: String,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ClientPool {
    /// Starts `workload.clients` clients.
    #[must_use]
    pub fn start(run: &WorkloadRun, workload: &Arc<Workload>) -> ClientPool {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..workload.clients)
            .map(|_| {
                let n = run.next_client.fetch_add(1, Ordering::Relaxed);
                let name = format!("rehearse-app-{}-{n}", workload.version);
                tokio::spawn(client_loop(
                    run.clone(),
                    workload.clone(),
                    name,
                    stop.clone(),
                ))
            })
            .collect();
        ClientPool {
            version: workload.version.clone(),
            stop,
            tasks,
        }
    }

    /// Stops the clients: each finishes its current query (bounded by the
    /// statement timeout), then disconnects.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout(STATEMENT_TIMEOUT + Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ClientPool {
    /// A pool dropped without [`ClientPool::stop`] (a rollout cut short by
    /// its deadline) still ends its clients after their current query.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn client_loop(
    run: WorkloadRun,
    workload: Arc<Workload>,
    name: String,
    stop: Arc<AtomicBool>,
) {
    let Ok(client) = run.conn.connect(&name).await else {
        run.record(Execution {
            version: workload.version.clone(),
            query: "(connect)".into(),
            phase: run.phase.load(Ordering::Relaxed),
            client: name,
            start_us: run.recorder.now_us(),
            latency_us: 0,
            sqlstate: Some(SqlState::Other("08006".into())),
            message: Some("could not connect".into()),
        });
        return;
    };
    let mut settings = format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis());
    if let Some(ms) = workload.lock_timeout_ms {
        settings.push_str(&format!("; SET lock_timeout = {ms}"));
    }
    let _ = client.batch_execute(&settings).await;
    let total: u64 = workload.queries.iter().map(|q| u64::from(q.weight)).sum();
    let interval = match workload.pace {
        Pace::ClosedLoop => None,
        Pace::Rate(r) => Some(Duration::from_secs_f64(1.0 / r)),
    };
    let mut next = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pick = rand::random_range(0..total.max(1));
        let query = workload
            .queries
            .iter()
            .find(|q| {
                if pick < u64::from(q.weight) {
                    true
                } else {
                    pick -= u64::from(q.weight);
                    false
                }
            })
            .unwrap_or(&workload.queries[0]);
        let values = match params(&run, &client, query).await {
            Ok(values) => values,
            Err(_) => return,
        };
        let phase = run.phase.load(Ordering::Relaxed);
        let start_us = run.recorder.now_us();
        let result = execute(&client, query, &values).await;
        let latency_us = run.recorder.now_us().saturating_sub(start_us);
        let (sqlstate, message) = match result {
            Ok(()) => (None, None),
            Err(e) => (
                Some(e.code().map_or(SqlState::Other("08006".into()), |c| {
                    SqlState::from_code(c.code())
                })),
                Some(crate::provision::describe_pg_error(&e)),
            ),
        };
        let closed = client.is_closed();
        run.record(Execution {
            version: workload.version.clone(),
            query: query.name.clone(),
            phase,
            client: name.clone(),
            start_us,
            latency_us,
            sqlstate,
            message,
        });
        if closed {
            return;
        }
        if let Some(interval) = interval {
            next += interval;
            tokio::time::sleep_until(next).await;
        } else {
            // Yield so a closed loop on a fast query cannot starve the
            // rollout's own tasks.
            tokio::task::yield_now().await;
        }
    }
}

async fn params(
    run: &WorkloadRun,
    client: &tokio_postgres::Client,
    query: &Query,
) -> Result<Vec<Option<String>>, String> {
    let mut values = Vec::with_capacity(query.params.len());
    for p in &query.params {
        values.push(match p {
            ParamSource::From(column) => {
                let sample = run.sample(client, column).await?;
                Some(sample[rand::random_range(0..sample.len())].clone())
            }
            ParamSource::Int([lo, hi]) => Some(rand::random_range(*lo..=*hi).to_string()),
            ParamSource::Text(len) => Some(
                (0..*len)
                    .map(|_| char::from(b'a' + rand::random_range(0..26u8)))
                    .collect(),
            ),
            ParamSource::Uuid(_) => Some(uuid::Uuid::new_v4().to_string()),
            ParamSource::Value(toml::Value::String(s)) => Some(s.clone()),
            ParamSource::Value(v) => Some(v.to_string()),
        });
    }
    Ok(values)
}

async fn execute(
    client: &tokio_postgres::Client,
    query: &Query,
    values: &[Option<String>],
) -> Result<(), tokio_postgres::Error> {
    if query.statements.len() == 1 {
        return client
            .simple_query(&bind_literals(&query.statements[0], values))
            .await
            .map(drop);
    }
    client.batch_execute("BEGIN").await?;
    for statement in &query.statements {
        if let Err(e) = client.simple_query(&bind_literals(statement, values)).await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    client.batch_execute("COMMIT").await
}
