//! Timing the pending migrations' statements on a seeded database, one
//! size at a time, and turning the timings of several sizes into
//! forecasts.
//!
//! Each migration runs as its tool applies it: in its own transaction when
//! transactional, statement by statement otherwise. A statement's lock is
//! held from its start until the transaction commits, so its hold is its
//! own duration plus every later statement's of the same migration (the
//! commit counts toward the last one).

use std::collections::BTreeMap;
use std::time::Instant;

use tokio_postgres::Client;

use super::{
    Estimate, ForecastReport, Sample, StatementForecast, StatementKind, fit, target_table,
};
use crate::migrate::Migration;
use crate::provision::describe_pg_error;

/// Parallel plans and builds at every size, as at production's.
const PARALLEL_AT_EVERY_SIZE: &str =
    "SET min_parallel_table_scan_size = 0; SET min_parallel_index_scan_size = 0";

/// One statement's timing at one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub migration: String,
    pub index: usize,
    pub sql: String,
    pub transactional: bool,
    /// Rows of the statement's table before the migrations ran.
    pub rows: f64,
    pub duration_us: f64,
}

/// Exact row count of `table` (as written in the statement); 0 when the
/// table does not exist yet.
async fn rows_of(client: &Client, table: &str) -> f64 {
    // to_regclass resolves the name as the migration would, without
    // failing on a table the migrations create.
    let sql = "SELECT CASE WHEN to_regclass($1) IS NULL THEN 0::int8 ELSE \
               (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', \
               to_regclass($1)), false, true, '')))[1]::text::int8 END";
    client
        .query_one(sql, &[&table])
        .await
        .map_or(0.0, |row| row.get::<_, i64>(0) as f64)
}

/// Applies `migrations` on `client`'s database, timing every statement.
pub async fn time_statements(
    client: &Client,
    migrations: &[Migration],
) -> Result<Vec<Timing>, String> {
    let mut rows: BTreeMap<String, f64> = BTreeMap::new();
    for migration in migrations {
        for statement in &migration.statements {
            if let Some(table) = target_table(&statement.sql)
                && !rows.contains_key(&table)
            {
                let n = rows_of(client, &table).await;
                rows.insert(table, n);
            }
        }
    }
    // Production's tables are big enough for parallel workers (index
    // builds, scans); the small sizes timed here are not, unless told:
    // without this the curve changes shape between the sizes and the
    // forecast (manual, "Parallel Query" and
    // max_parallel_maintenance_workers).
    client
        .batch_execute(PARALLEL_AT_EVERY_SIZE)
        .await
        .map_err(|e| format!("setting up the session: {}", describe_pg_error(&e)))?;
    let mut out = Vec::new();
    for migration in migrations {
        let run = |sql: &'static str| async move {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{sql}: {}", describe_pg_error(&e)))
        };
        if migration.transactional {
            run("BEGIN").await?;
        }
        for (index, statement) in migration.statements.iter().enumerate() {
            let started = Instant::now();
            if let Err(e) = client.batch_execute(&statement.sql).await {
                if migration.transactional {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(format!(
                    "{}: {}",
                    migration.location(index),
                    describe_pg_error(&e)
                ));
            }
            let mut duration_us = started.elapsed().as_secs_f64() * 1e6;
            if migration.transactional && index + 1 == migration.statements.len() {
                let started = Instant::now();
                run("COMMIT").await?;
                duration_us += started.elapsed().as_secs_f64() * 1e6;
            }
            let table = target_table(&statement.sql);
            out.push(Timing {
                migration: migration.version.clone(),
                index,
                sql: statement.sql.clone(),
                transactional: migration.transactional,
                rows: table.and_then(|t| rows.get(&t).copied()).unwrap_or(0.0),
                duration_us,
            });
        }
        if migration.transactional && migration.statements.is_empty() {
            run("COMMIT").await?;
        }
    }
    Ok(out)
}

/// Fits the timings of several sizes (one `Vec` per size, the same
/// statements in the same order) and forecasts each statement at the
/// production rows `production(table)` gives.
#[must_use]
pub fn forecast(
    scenario: &str,
    source: &str,
    sizes: &[Vec<Timing>],
    production: &dyn Fn(&str) -> Option<f64>,
) -> ForecastReport {
    let Some(first) = sizes.first() else {
        return ForecastReport {
            scenario: scenario.to_owned(),
            source: source.to_owned(),
            statements: Vec::new(),
        };
    };
    let mut statements: Vec<StatementForecast> = Vec::new();
    for (i, timing) in first.iter().enumerate() {
        let kind = StatementKind::of(&timing.sql);
        let table = target_table(&timing.sql);
        let samples: Vec<Sample> = sizes
            .iter()
            .filter_map(|size| size.get(i))
            .map(|t| Sample {
                rows: t.rows,
                duration_us: t.duration_us,
            })
            .collect();
        let rows = table.as_deref().and_then(production).unwrap_or(0.0);
        let fitted = fit(&samples, kind).filter(|_| rows > 0.0);
        statements.push(StatementForecast {
            migration: timing.migration.clone(),
            statement: timing.sql.lines().next().unwrap_or("").trim().to_owned(),
            kind,
            lock: kind.lock(&timing.sql),
            table,
            rows,
            duration: fitted.map(|f| f.at(rows)),
            samples,
            fit: fitted,
            hold: None,
        });
    }
    // A lock is held until commit: add the later statements of the same
    // transactional migration.
    for i in 0..statements.len() {
        let Some(own) = statements[i].duration else {
            continue;
        };
        let mut hold = own;
        if first[i].transactional {
            for j in i + 1..statements.len() {
                if statements[j].migration != statements[i].migration {
                    break;
                }
                if let Some(d) = statements[j].duration {
                    hold = Estimate {
                        point_us: hold.point_us + d.point_us,
                        low_us: hold.low_us + d.low_us,
                        high_us: hold.high_us + d.high_us,
                    };
                }
            }
        }
        statements[i].hold = Some(hold);
    }
    ForecastReport {
        scenario: scenario.to_owned(),
        source: source.to_owned(),
        statements,
    }
}
