//! Reading the statistics: three catalog queries in one read-only
//! transaction, whatever the number of tables.
//!
//! Privileges (PostgreSQL 15 `system_views.sql`): `pg_class`, `pg_index`,
//! `pg_attribute` and `pg_get_indexdef` are readable by every role, but the
//! `pg_stats` view filters on `has_column_privilege(..., 'select')` and
//! hides tables whose row-level security is active. So the capture needs
//! SELECT on the tables (or membership in `pg_read_all_data`), although it
//! never reads a row; `pg_read_all_stats` alone does not reveal `pg_stats`.
//! Sizes come from `relpages`, not `pg_total_relation_size`, so the
//! capture takes no lock on a user table and cannot queue behind a
//! migration's ACCESS EXCLUSIVE.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::synth::{KEPT_CATEGORIES, STRING_CATEGORY, stand_ins};
use super::{
    ColumnStats, FORMAT, IndexStats, StatsError, StatsSnapshot, TableStats, VERSION, ValueKind,
};

// --- SQL -------------------------------------------------------------------

/// Refuse every write for the whole session, then a read-only snapshot
/// transaction (manual, "SET TRANSACTION": READ ONLY disallows writes to
/// any table that is not temporary). The timeouts bound every statement;
/// the capture takes no relation lock, so lock_timeout is belt and braces.
/// UTC and ISO dates make timestamp bounds parseable the same everywhere.
const READ_ONLY_SESSION: &str = "SET default_transaction_read_only = on;
     SET TimeZone = 'UTC';
     SET DateStyle = 'ISO, YMD';
     SET statement_timeout = '120s';
     SET lock_timeout = '2s';
     BEGIN ISOLATION LEVEL REPEATABLE READ;
     SET TRANSACTION READ ONLY";

const SERVER: &str = "SELECT current_setting('server_version'), current_database(), \
     current_user::text, current_setting('block_size')::int8";

/// User tables, partitioned tables and materialized views.
const TABLES: &str = "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text,
        c.reltuples::float8, c.relpages::int8,
        coalesce((SELECT t.relpages FROM pg_class t WHERE t.oid = c.reltoastrelid), 0)::int8
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    AND ($1::text IS NULL OR n.nspname = $1)
  ORDER BY 2, 3";

const INDEXES: &str = "SELECT i.indrelid::int8, ic.relname::text, pg_get_indexdef(i.indexrelid),
        ic.relpages::int8, i.indisunique, i.indisprimary
   FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
  WHERE i.indrelid = ANY($1::int8[]::oid[])
  ORDER BY 1, 2";

/// Every live column with its `pg_stats` entry (own rows first; a
/// partitioned table has only the inherited ones) and whether the role may
/// see it there.
const COLUMNS: &str =
    "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod),
        t.typcategory::text, a.attnotnull,
        has_column_privilege(a.attrelid, a.attnum, 'SELECT')
          AND NOT (c.relrowsecurity AND row_security_active(c.oid)),
        s.null_frac::float8, s.n_distinct::float8, s.avg_width, s.correlation::float8,
        s.most_common_freqs::float8[], s.most_common_vals::text::text[],
        s.histogram_bounds::text::text[], s.attname IS NOT NULL
   FROM pg_attribute a
   JOIN pg_class c ON c.oid = a.attrelid
   JOIN pg_namespace n ON n.oid = c.relnamespace
   JOIN pg_type t ON t.oid = a.atttypid
   LEFT JOIN LATERAL (
        SELECT * FROM pg_stats s
         WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
         ORDER BY s.inherited LIMIT 1) s ON true
  WHERE a.attrelid = ANY($1::int8[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
  ORDER BY 1, a.attnum";

// ---------------------------------------------------------------------------

/// What to capture.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Only this schema; all user schemas when `None`.
    pub schema: Option<String>,
    /// Keep text-like sample values instead of replacing them.
    pub keep_values: bool,
}

/// Makes `client`'s session refuse writes and opens a read-only
/// transaction; the caller ends it with `ROLLBACK`.
pub async fn read_only_session(client: &Client) -> Result<(), StatsError> {
    client
        .batch_execute(READ_ONLY_SESSION)
        .await
        .map_err(|e| StatsError::query("starting a read-only transaction", &e))
}

/// Captures the statistics of the database `client` is connected to.
pub async fn capture(
    client: &Client,
    options: &CaptureOptions,
) -> Result<StatsSnapshot, StatsError> {
    read_only_session(client).await?;
    let result = capture_in_transaction(client, options).await;
    // Read-only: nothing to keep; a failed rollback means a lost connection.
    let _ = client.batch_execute("ROLLBACK").await;
    result
}

#[expect(clippy::cast_sign_loss, reason = "page counts are never negative")]
async fn capture_in_transaction(
    client: &Client,
    options: &CaptureOptions,
) -> Result<StatsSnapshot, StatsError> {
    let server = client
        .query_one(SERVER, &[])
        .await
        .map_err(|e| StatsError::query("reading the server settings", &e))?;
    let role: String = server.get(2);
    let block_size = server.get::<_, i64>(3) as u64;
    let rows = client
        .query(TABLES, &[&options.schema])
        .await
        .map_err(|e| StatsError::query("listing tables", &e))?;
    let mut tables: BTreeMap<i64, (TableStats, u64)> = BTreeMap::new();
    for row in &rows {
        let reltuples: f64 = row.get(4);
        let pages = row.get::<_, i64>(5) as u64;
        let toast_pages = row.get::<_, i64>(6) as u64;
        tables.insert(
            row.get(0),
            (
                TableStats {
                    schema: row.get(1),
                    name: row.get(2),
                    kind: row.get(3),
                    rows: (reltuples >= 0.0).then_some(reltuples),
                    pages,
                    total_bytes: 0,
                    index_bytes: 0,
                    indexes: Vec::new(),
                    columns: Vec::new(),
                },
                (pages + toast_pages) * block_size,
            ),
        );
    }
    let oids: Vec<i64> = tables.keys().copied().collect();
    let indexes = client
        .query(INDEXES, &[&oids])
        .await
        .map_err(|e| StatsError::query("listing indexes", &e))?;
    for row in &indexes {
        if let Some((table, _)) = tables.get_mut(&row.get::<_, i64>(0)) {
            let pages = row.get::<_, i64>(3) as u64;
            table.index_bytes += pages * block_size;
            table.indexes.push(IndexStats {
                name: row.get(1),
                definition: row.get(2),
                pages,
                unique: row.get(4),
                primary: row.get(5),
            });
        }
    }
    let columns = client
        .query(COLUMNS, &[&oids])
        .await
        .map_err(|e| StatsError::query("reading pg_stats", &e))?;
    let mut hidden: Vec<String> = Vec::new();
    for row in &columns {
        let Some((table, _)) = tables.get_mut(&row.get::<_, i64>(0)) else {
            continue;
        };
        let visible: bool = row.get(5);
        if !visible {
            let name = format!("{}.{}", table.schema, table.name);
            if !hidden.contains(&name) {
                hidden.push(name);
            }
            continue;
        }
        table.columns.push(column_stats(row, options.keep_values));
    }
    if !hidden.is_empty() {
        let more = hidden.len().saturating_sub(5);
        hidden.truncate(5);
        let mut tables = hidden.join(", ");
        if more > 0 {
            tables.push_str(&format!(" and {more} more"));
        }
        return Err(StatsError::Privilege { role, tables });
    }
    Ok(StatsSnapshot {
        format: FORMAT.to_owned(),
        version: VERSION,
        captured_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        server_version: server.get(0),
        database: server.get(1),
        values_kept: options.keep_values,
        block_size,
        tables: tables
            .into_values()
            .map(|(mut t, heap_bytes)| {
                t.total_bytes = heap_bytes + t.index_bytes;
                t
            })
            .collect(),
    })
}

fn column_stats(row: &tokio_postgres::Row, keep_values: bool) -> ColumnStats {
    let category: String = row.get(3);
    let analyzed: bool = row.get(13);
    let mcv: Vec<String> = row.get::<_, Option<Vec<String>>>(11).unwrap_or_default();
    let histogram: Vec<String> = row.get::<_, Option<Vec<String>>>(12).unwrap_or_default();
    let histogram_lengths = histogram.iter().map(|v| v.chars().count()).collect();
    let values = if keep_values || KEPT_CATEGORIES.contains(&category.as_str()) {
        ValueKind::Original
    } else if category == STRING_CATEGORY {
        ValueKind::Synthetic
    } else {
        ValueKind::Omitted
    };
    let (most_common_vals, histogram_bounds) = match values {
        ValueKind::Original => (mcv, histogram),
        ValueKind::Synthetic => (stand_ins(&mcv, Some('m')), stand_ins(&histogram, None)),
        ValueKind::Omitted => (Vec::new(), Vec::new()),
    };
    ColumnStats {
        name: row.get(1),
        type_name: row.get(2),
        category,
        not_null: row.get(4),
        analyzed,
        null_frac: row.get::<_, Option<f64>>(6).unwrap_or(0.0),
        n_distinct: row.get::<_, Option<f64>>(7).unwrap_or(0.0),
        avg_width: row.get::<_, Option<i32>>(8).unwrap_or(0),
        correlation: row.get(9),
        most_common_freqs: row.get::<_, Option<Vec<f64>>>(10).unwrap_or_default(),
        most_common_vals,
        histogram_bounds,
        histogram_lengths,
        values,
    }
}
