//! The clients: K connections per running replica of a version, each
//! sending weighted random queries in a closed loop or at a target rate,
//! recording every execution with the phase it ran in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{Pace, ParamSource, ParamUse, Query, Workload, bind_literals};
use crate::provision::{ConnInfo, quote_ident};
use crate::timeline::{Recorder, SqlState};

/// A bound on every single query: a client stuck behind a migration's lock
/// longer than this records 57014 instead of hanging the rehearsal.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How many rows a `from = "table.column"` parameter samples.
const SAMPLE_ROWS: i64 = 1000;
// The planner's row estimate of a table (pg_class.reltuples; -1 before the
// first ANALYZE): a catalog read, no lock on the table.
const SAMPLE_ESTIMATE: &str = "SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)";
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
        let (table, col) = (table.join("."), quote_ident(col[0]));
        let describe = |e: tokio_postgres::Error| {
            format!(
                "`from = \"{column}\"`: {}",
                crate::provision::describe_pg_error(&e)
            )
        };
        // Uniform over the whole table, not the first rows on disk: whether
        // live traffic meets the rows a migration locks must not depend on
        // physical order. A large table is sampled with BERNOULLI (every
        // page read, each row kept with the same probability; manual,
        // "SELECT", TABLESAMPLE), about twice the rows needed, then
        // shuffled; a small one, or one whose row estimate is missing or
        // stale, is shuffled whole.
        let estimate: f64 = client
            .query_one(SAMPLE_ESTIMATE, &[&table])
            .await
            .map_err(describe)?
            .get::<_, Option<f32>>(0)
            .map_or(-1.0, f64::from);
        #[expect(clippy::cast_precision_loss, reason = "a sampling percentage")]
        let wanted = SAMPLE_ROWS as f64;
        let mut rows = Vec::new();
        if estimate > wanted * 10.0 {
            let percent = (wanted * 2.0 * 100.0 / estimate).clamp(0.0001, 100.0);
            let sql = format!(
                "SELECT {col}::text FROM {table} TABLESAMPLE BERNOULLI ({percent}) \
                 WHERE {col} IS NOT NULL ORDER BY random() LIMIT {SAMPLE_ROWS}"
            );
            rows = client.query(&sql, &[]).await.map_err(describe)?;
        }
        if rows.len() < usize::try_from(SAMPLE_ROWS / 10).unwrap_or(100) {
            let sql = format!(
                "SELECT {col}::text FROM {table} WHERE {col} IS NOT NULL \
                 ORDER BY random() LIMIT {SAMPLE_ROWS}"
            );
            rows = client.query(&sql, &[]).await.map_err(describe)?;
        }
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

    /// Readies `workloads` for the clients, before anything runs: reads
    /// every `from` column a hand-written query names (a wrong column is an
    /// input error, not a stream of failures), and settles the parameters
    /// of imported queries against the catalog (see `resolve`).
    /// Returns the workloads as the clients should run them.
    pub async fn prepare(&self, workloads: &[Workload]) -> Result<Vec<Workload>, String> {
        let client = self
            .conn
            .connect("rehearse-harness")
            .await
            .map_err(|e| e.to_string())?;
        let mut ready = Vec::with_capacity(workloads.len());
        for w in workloads {
            let mut w = w.clone();
            for q in &mut w.queries {
                if !q.hints.is_empty() {
                    if q.weight > 0 {
                        self.resolve(&client, q).await;
                    }
                    continue;
                }
                for p in &q.params {
                    if let ParamSource::From(column) = p {
                        self.sample(&client, column).await.map_err(|e| {
                            format!("{}: query `{}`: {e}", w.path.display(), q.name)
                        })?;
                    }
                }
            }
            ready.push(w);
        }
        Ok(ready)
    }

    /// Settles an imported query's parameters on the schema the rollout
    /// starts from. A lookup whose column cannot be sampled (an empty
    /// table, a column only the migration adds) falls back to values of
    /// its type. A written value goes to a single-column foreign key: it
    /// takes values of the referenced column, so the INSERT finds its
    /// parent row; otherwise generated text is cut to a `varchar(n)` /
    /// `char(n)` limit. A parameter left without any source makes the
    /// query prepared-only, with a note.
    async fn resolve(&self, client: &tokio_postgres::Client, query: &mut Query) {
        for (i, hint) in query.hints.iter().enumerate() {
            let source = match (&hint.column, hint.usage) {
                (Some(column), ParamUse::Lookup) => match self.sample(client, column).await {
                    Ok(_) => Some(ParamSource::From(column.clone())),
                    Err(_) => hint.generated.clone(),
                },
                (Some(column), ParamUse::Write) => {
                    let facts = column_facts(client, column).await;
                    let parent = match facts.as_ref().and_then(|f| f.references.as_ref()) {
                        Some(parent) => self.sample(client, parent).await.ok().map(|_| parent),
                        None => None,
                    };
                    match (parent, &hint.generated, &facts) {
                        (Some(parent), _, _) => Some(ParamSource::From(parent.clone())),
                        (None, Some(generated), facts) => {
                            Some(capped(generated, facts.as_ref().and_then(|f| f.max_len)))
                        }
                        // Existing values are safe to write again where no
                        // unique index covers the column.
                        (None, None, Some(facts)) if !facts.unique => {
                            match self.sample(client, column).await {
                                Ok(_) => Some(ParamSource::From(column.clone())),
                                Err(_) => None,
                            }
                        }
                        (None, None, _) => None,
                    }
                }
                _ => hint.generated.clone(),
            };
            match source {
                Some(source) => query.params[i] = source,
                None => {
                    query.weight = 0;
                    query.note = Some(format!("${}: {}", i + 1, hint.unresolved()));
                    return;
                }
            }
        }
    }
}

/// What the catalog says about a column an imported query writes to.
struct ColumnFacts {
    /// `n` of `varchar(n)` / `char(n)` (or arrays of them).
    max_len: Option<usize>,
    /// A unique index includes the column.
    unique: bool,
    /// `table.column` a single-column foreign key of it references.
    references: Option<String>,
}

/// The facts of column `$2` of table `$1` (a quoted, possibly
/// schema-qualified name; no row when either is missing). Typmod of
/// `varchar(n)` and `bpchar(n)` is `n + 4` (manual, "Character Types";
/// `format_type`).
const COLUMN_FACTS: &str = "
SELECT CASE WHEN (CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE t.oid END)
                 IN ('varchar'::regtype, 'bpchar'::regtype) AND a.atttypmod > 4
            THEN a.atttypmod - 4 END,
       EXISTS (SELECT FROM pg_index i
                WHERE i.indrelid = a.attrelid AND i.indisunique AND a.attnum = ANY (i.indkey)),
       (SELECT CASE WHEN rn.nspname = 'public' THEN format('%s.%s', rc.relname, ra.attname)
                    ELSE format('%s.%s.%s', rn.nspname, rc.relname, ra.attname) END
          FROM pg_constraint c
          JOIN pg_class rc ON rc.oid = c.confrelid
          JOIN pg_namespace rn ON rn.oid = rc.relnamespace
          JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1]
         WHERE c.contype = 'f' AND c.conrelid = a.attrelid AND c.conkey = ARRAY[a.attnum]
         LIMIT 1)
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped";

/// The catalog's facts about `table.column` (`None`: no such column yet,
/// e.g. one the migration adds).
async fn column_facts(client: &tokio_postgres::Client, column: &str) -> Option<ColumnFacts> {
    let parts: Vec<&str> = column.split('.').collect();
    let (name, table) = parts.split_last()?;
    let table: Vec<String> = table.iter().map(|p| quote_ident(p)).collect();
    let row = client
        .query_opt(COLUMN_FACTS, &[&table.join("."), name])
        .await
        .ok()??;
    Some(ColumnFacts {
        max_len: row
            .get::<_, Option<i32>>(0)
            .and_then(|n| usize::try_from(n).ok()),
        unique: row.get(1),
        references: row.get(2),
    })
}

/// `generated`, with text no longer than `max_len`.
fn capped(generated: &ParamSource, max_len: Option<usize>) -> ParamSource {
    match (generated, max_len) {
        (ParamSource::Text(len), Some(max)) => ParamSource::Text((*len).min(max).max(1)),
        _ => generated.clone(),
    }
}

/// `value` as a one-element array literal: `{"value"}`, with `"` and `\`
/// escaped (manual, "Array Value Input").
fn array_of(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{{\"{escaped}\"}}")
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

impl ClientPool {
    /// Ends every client now, mid-query if need be (a rollout past its
    /// deadline: the harness then terminates their backends).
    pub fn abort(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
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
    if total == 0 {
        // Every query is prepared-only (their notes say why): nothing to send.
        return;
    }
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
    for (i, p) in query.params.iter().enumerate() {
        let value = match p {
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
        };
        let array = query.hints.get(i).is_some_and(|h| h.array);
        values.push(if array {
            value.map(|v| array_of(&v))
        } else {
            value
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `from` draws from the whole table, not its first pages: on 50,000
    /// rows in key order, the sample reaches both ends (the first 1,000 on
    /// disk would all be at most 1,000), and a small table is drawn whole.
    #[tokio::test]
    async fn from_samples_across_the_whole_table() {
        let Some(db) = crate::testing::fresh_database().await else {
            return;
        };
        let client = db.connect().await;
        client
            .batch_execute(
                "CREATE TABLE big (id int PRIMARY KEY); \
                 INSERT INTO big SELECT generate_series(1, 50000); ANALYZE big; \
                 CREATE TABLE small (id int); INSERT INTO small SELECT generate_series(1, 300);",
            )
            .await
            .unwrap();
        let run = WorkloadRun::new(db.conn().clone(), Recorder::new());
        let values: Vec<i64> = run
            .sample(&client, "big.id")
            .await
            .unwrap()
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(values.len() > 500, "{}", values.len());
        let above = values.iter().filter(|v| **v > 25_000).count();
        // Half of a uniform sample lies in the upper half: far from 0.
        assert!(above * 4 > values.len(), "{above} of {}", values.len());
        assert!(values.iter().any(|v| *v > 45_000) && values.iter().any(|v| *v < 5_000));
        let small = run.sample(&client, "small.id").await.unwrap();
        assert_eq!(small.len(), 300);
    }

    #[test]
    fn generated_text_fits_the_column_and_arrays_quote_their_element() {
        assert_eq!(capped(&ParamSource::Text(8), Some(2)), ParamSource::Text(2));
        assert_eq!(capped(&ParamSource::Text(8), None), ParamSource::Text(8));
        assert_eq!(
            capped(&ParamSource::Int([1, 9]), Some(2)),
            ParamSource::Int([1, 9])
        );
        assert_eq!(array_of("42"), r#"{"42"}"#);
        assert_eq!(array_of(r#"a"b\c"#), r#"{"a\"b\\c"}"#);
    }
}
