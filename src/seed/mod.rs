//! Seeding: fills a freshly migrated database with realistic generated data.
//!
//! The schema drives everything: [`introspect`] reads tables, types and
//! constraints from the catalog, a plan picks a generator per column (by type,
//! check constraints and column name) and a load order (foreign keys first,
//! cycles broken through nullable keys filled afterwards), and each table is
//! streamed into `COPY ... FROM STDIN (FORMAT binary)`. A [`SeedSpec`]
//! (`seeds/*.toml`) shapes the data: row counts, generators, distributions,
//! NULL fractions, hostile values. The same spec and seed always produce the
//! same data.

pub mod cli;
mod copy;
mod distribution;
mod error;
mod generate;
mod hostile;
mod plan;
mod rows;
mod schema;
mod spec;
mod sql;
mod stats;
mod value;

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

pub use cli::{SeedArgs, run_cli};
pub use error::SeedError;
pub use schema::{
    Bounds, Column, ColumnType, ForeignKey, Literal, Ordering, Schema, Table, introspect,
};
pub use spec::{MAX_ROWS, MAX_SCALE, SeedSpec};
pub use value::Value;

use crate::provision::ConnInfo;

/// Attaches the scenario's statistics snapshot (`[seed] stats`) to its
/// seeds file, or to an empty one when there is none.
pub fn attach_stats(
    spec: Option<SeedSpec>,
    seed: Option<&crate::scenario::SeedSpecRef>,
) -> Result<Option<SeedSpec>, SeedError> {
    let Some(path) = seed.and_then(|s| s.stats.as_ref()) else {
        return Ok(spec);
    };
    let snapshot = crate::stats::StatsSnapshot::load(path).map_err(|e| SeedError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let spec = spec.unwrap_or_else(SeedSpec::empty);
    Ok(Some(spec.with_stats(std::sync::Arc::new(snapshot))))
}

/// How to seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedOptions {
    /// Same seed, same spec, same schema: same data.
    pub seed: u64,
    /// Multiplies every row count (on top of the spec's own `scale`).
    pub scale: f64,
    /// Hostile values in every table and column.
    pub hostile: bool,
    /// Progress bars, shown only on a terminal and never under CI.
    pub progress: bool,
}

impl Default for SeedOptions {
    fn default() -> Self {
        SeedOptions {
            seed: 0,
            scale: 1.0,
            hostile: false,
            progress: true,
        }
    }
}

/// What was loaded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeedReport {
    pub seed: u64,
    pub scale: f64,
    pub hostile: bool,
    pub tables: Vec<TableReport>,
    pub total_rows: u64,
    pub duration_ms: u64,
}

/// One table's load.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TableReport {
    pub name: String,
    pub rows: u64,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
}

/// Fills every empty user table of the database (and every table the spec
/// lists) with generated rows. Runs in one transaction: on failure nothing
/// is left half-loaded and every index and foreign key is back in place.
pub async fn seed_database(
    conn: &ConnInfo,
    spec: Option<&SeedSpec>,
    options: &SeedOptions,
) -> Result<SeedReport, SeedError> {
    let started = Instant::now();
    let client = conn
        .connect("rehearse-seed")
        .await
        .map_err(|e| SeedError::Connect(e.to_string()))?;
    let empty = SeedSpec::empty();
    let spec = spec.unwrap_or(&empty);
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| SeedError::db("starting the seed transaction", &e))?;
    let result = seed_in_transaction(&client, spec, options).await;
    match result {
        Ok(mut report) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| SeedError::db("committing the seed transaction", &e))?;
            report.duration_ms = started.elapsed().as_millis() as u64;
            Ok(report)
        }
        Err(error) => {
            // The original error matters; a failed rollback only means the
            // connection is already gone.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

async fn seed_in_transaction(
    client: &tokio_postgres::Client,
    spec: &SeedSpec,
    options: &SeedOptions,
) -> Result<SeedReport, SeedError> {
    let schema = introspect(client).await?;
    let mut has_rows = HashMap::new();
    for table in &schema.tables {
        let row = client
            .query_one(&sql::has_rows(&table.qualified()), &[])
            .await
            .map_err(|e| SeedError::db(format!("counting rows of {}", table.display_name()), &e))?;
        has_rows.insert(table.oid, row.get::<_, bool>(0));
    }
    let mut plan = plan::build(&schema, spec, options, &has_rows)?;
    truncate_for_freeze(client, &schema, &mut plan).await?;
    let progress = crate::progress::allowed(options.progress);

    // Bulk-load order, as pg_restore does it: indexes, foreign keys and
    // (where nothing else references the table) primary and unique keys of
    // empty tables go first and come back after the data, built once.
    let mut aside = copy::SetAside::default();
    for table in &plan.tables {
        copy::set_aside(client, table, &mut aside).await?;
    }
    let unreferenced = keys_free_to_drop(&schema, &plan);
    for table in plan.tables.iter().filter(|t| unreferenced.contains(&t.oid)) {
        copy::set_aside_keys(client, table, &mut aside).await?;
    }
    let mut reports = Vec::new();
    let mut cache = copy::KeyCache::new();
    for table in plan.tables {
        reports.push(copy::load_table(client, table, options.seed, &mut cache, progress).await?);
    }
    for fk in &plan.deferred {
        copy::fill_deferred(client, fk, options.seed).await?;
    }
    copy::restore(client, &aside.keys).await?;
    copy::restore(client, &aside.indexes).await?;
    copy::restore(client, &aside.foreign_keys).await?;
    // Fresh statistics, as production has: plans during the rehearsal
    // should be the plans production would choose.
    for report in &reports {
        if let Some(table) = schema
            .tables
            .iter()
            .find(|t| t.display_name() == report.name)
        {
            client
                .batch_execute(&format!("ANALYZE {}", table.qualified()))
                .await
                .map_err(|e| SeedError::db(format!("analyzing {}", report.name), &e))?;
        }
    }

    let total_rows = reports.iter().map(|r| r.rows).sum();
    Ok(SeedReport {
        seed: options.seed,
        scale: spec.scale() * options.scale,
        hostile: options.hostile,
        tables: reports,
        total_rows,
        duration_ms: 0,
    })
}

/// Truncates the empty tables about to be loaded so that `COPY FREEZE` may
/// load them. A table qualifies when every table referencing it is also
/// truncated (`TRUNCATE` demands that) and it is not partitioned.
async fn truncate_for_freeze(
    client: &tokio_postgres::Client,
    schema: &Schema,
    plan: &mut plan::Plan,
) -> Result<(), SeedError> {
    let mut set: std::collections::BTreeSet<u32> = plan
        .tables
        .iter()
        .filter(|t| !t.had_rows)
        .map(|t| t.oid)
        .collect();
    loop {
        let before = set.len();
        let keep: Vec<u32> = set
            .iter()
            .copied()
            .filter(|oid| {
                schema.by_oid(*oid).is_some_and(|t| !t.partitioned)
                    && schema.tables.iter().all(|other| {
                        set.contains(&other.oid)
                            || other.foreign_keys.iter().all(|fk| fk.ref_table != *oid)
                    })
            })
            .collect();
        set = keep.into_iter().collect();
        if set.len() == before {
            break;
        }
    }
    if set.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = set
        .iter()
        .filter_map(|oid| schema.by_oid(*oid))
        .map(Table::qualified)
        .collect();
    client
        .batch_execute(&sql::truncate(&names))
        .await
        .map_err(|e| SeedError::db("emptying tables for a frozen load", &e))?;
    for table in &mut plan.tables {
        table.freeze = set.contains(&table.oid);
    }
    Ok(())
}

/// Empty tables being loaded whose every referencing foreign key comes from
/// an empty table being loaded (and so was dropped for the load): their keys
/// can be dropped too.
fn keys_free_to_drop(schema: &Schema, plan: &plan::Plan) -> std::collections::BTreeSet<u32> {
    let empty: std::collections::BTreeSet<u32> = plan
        .tables
        .iter()
        .filter(|t| !t.had_rows)
        .map(|t| t.oid)
        .collect();
    empty
        .iter()
        .copied()
        .filter(|oid| {
            schema.tables.iter().all(|other| {
                empty.contains(&other.oid)
                    || other.foreign_keys.iter().all(|fk| fk.ref_table != *oid)
            })
        })
        .collect()
}
