//! Production statistics without production data.
//!
//! `rehearse stats capture` reads what shapes a migration's cost from the
//! catalog of a (production) database: per table the planner's row and page
//! estimates, sizes and index definitions; per column the `pg_stats` summary
//! (NULL fraction, distinct values, width, physical order, most common value
//! frequencies, histogram bounds). It never reads a row of a user table and
//! runs in a read-only transaction. Values that could be personal data are
//! replaced by synthetic stand-ins unless asked to keep them
//! ([`synth`]).
//!
//! The snapshot is plain, versioned JSON ([`StatsSnapshot`]): the seeder
//! shapes generated data after it (`[seed] stats`) and the forecast uses its
//! row counts as the production size.

mod capture;
pub mod synth;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use capture::{CaptureOptions, capture, read_only_session};

/// The `format` field of every snapshot file.
pub const FORMAT: &str = "rehearse-stats";
/// The current snapshot version; readers refuse newer ones.
pub const VERSION: u32 = 1;

/// A captured snapshot of one database's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u32,
    /// RFC 3339, UTC.
    pub captured_at: String,
    /// `server_version` of the source.
    pub server_version: String,
    /// Database name of the source.
    pub database: String,
    /// Whether text-like sample values are the originals (`--keep-values`).
    pub values_kept: bool,
    /// `block_size` of the source server, bytes.
    pub block_size: u64,
    pub tables: Vec<TableStats>,
}

/// One table (or partitioned table, or materialized view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    /// `r`, `p` (partitioned) or `m` (materialized view).
    pub kind: String,
    /// `pg_class.reltuples`: the planner's row estimate; `None` when the
    /// table was never vacuumed or analyzed (PostgreSQL 14+ stores -1).
    pub rows: Option<f64>,
    /// `pg_class.relpages` of the heap.
    pub pages: u64,
    /// Heap + TOAST + indexes, from `relpages` (no lock taken), bytes.
    pub total_bytes: u64,
    /// Indexes only, bytes.
    pub index_bytes: u64,
    pub indexes: Vec<IndexStats>,
    pub columns: Vec<ColumnStats>,
}

/// One index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexStats {
    pub name: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    pub pages: u64,
    pub unique: bool,
    pub primary: bool,
}

/// Which sample values a column's entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueKind {
    /// The originals: numbers, dates, times, booleans, enum labels (or any
    /// type with `--keep-values`).
    Original,
    /// Text replaced by stand-ins of the same length and order.
    Synthetic,
    /// Values of other types (uuid, inet, json, arrays, ...) left out.
    Omitted,
}

/// One column's `pg_stats` summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    /// `format_type` of the column.
    pub type_name: String,
    /// `pg_type.typcategory` (`N` numeric, `S` string, `D` date/time, ...).
    pub category: String,
    pub not_null: bool,
    /// Whether `pg_stats` has an entry (the table was analyzed).
    pub analyzed: bool,
    pub null_frac: f64,
    /// `pg_stats.n_distinct`: positive is a count, negative is minus the
    /// fraction of rows (`-1`: all distinct).
    pub n_distinct: f64,
    pub avg_width: i32,
    /// Statistical correlation between physical row order and value order.
    pub correlation: Option<f64>,
    pub most_common_freqs: Vec<f64>,
    /// Values in the order of `most_common_freqs`; empty when omitted.
    pub most_common_vals: Vec<String>,
    /// Sorted bounds of equal-population buckets; empty when omitted.
    pub histogram_bounds: Vec<String>,
    /// Character length of each histogram bound (kept when the values are
    /// replaced or omitted, so the width distribution survives).
    pub histogram_lengths: Vec<usize>,
    pub values: ValueKind,
}

impl StatsSnapshot {
    /// Reads a snapshot file; refuses other formats and newer versions.
    pub fn load(path: &Path) -> Result<StatsSnapshot, StatsError> {
        let text = std::fs::read_to_string(path).map_err(|e| StatsError::Read {
            path: path.display().to_string(),
            message: e.to_string().to_lowercase(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses snapshot text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<StatsSnapshot, StatsError> {
        let snapshot: StatsSnapshot =
            serde_json::from_str(text).map_err(|e| StatsError::Format {
                path: origin.display().to_string(),
                message: format!("line {} column {}: {e}", e.line(), e.column()),
            })?;
        if snapshot.format != FORMAT {
            return Err(StatsError::Format {
                path: origin.display().to_string(),
                message: format!("format is `{}`, expected `{FORMAT}`", snapshot.format),
            });
        }
        if snapshot.version > VERSION {
            return Err(StatsError::Format {
                path: origin.display().to_string(),
                message: format!(
                    "version {} is newer than this build understands ({VERSION})",
                    snapshot.version
                ),
            });
        }
        Ok(snapshot)
    }

    /// The table named `name` (`schema.name`, or a bare name in `public`
    /// or unambiguous).
    #[must_use]
    pub fn table(&self, name: &str) -> Option<&TableStats> {
        if let Some((schema, table)) = name.split_once('.') {
            return self
                .tables
                .iter()
                .find(|t| t.schema == schema && t.name == table);
        }
        let mut matches = self.tables.iter().filter(|t| t.name == name);
        let first = matches.next()?;
        match matches.next() {
            None => Some(first),
            Some(_) => self
                .tables
                .iter()
                .find(|t| t.name == name && t.schema == "public"),
        }
    }
}

impl TableStats {
    /// The column named `name`.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<&ColumnStats> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl ColumnStats {
    /// The number of distinct non-NULL values at `rows` rows.
    #[must_use]
    pub fn distinct_at(&self, rows: f64) -> f64 {
        if self.n_distinct < 0.0 {
            (-self.n_distinct * rows).max(1.0)
        } else {
            self.n_distinct.min(rows.max(1.0))
        }
    }
}

/// What can go wrong capturing or reading statistics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{what}: {message}")]
    Query { what: String, message: String },
    #[error(
        "role {role} may not read the column statistics of {tables}: pg_stats shows only \
         columns the role may SELECT (and hides tables under row-level security); grant \
         SELECT on them or the pg_read_all_data role (no row is read)"
    )]
    Privilege { role: String, tables: String },
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: not a statistics snapshot: {message}")]
    Format { path: String, message: String },
}

impl StatsError {
    pub(crate) fn query(what: impl Into<String>, error: &tokio_postgres::Error) -> StatsError {
        StatsError::Query {
            what: what.into(),
            message: crate::provision::describe_pg_error(error),
        }
    }

    /// Whether the user can fix it by changing the input or the grants.
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StatsError::Privilege { .. } | StatsError::Read { .. } | StatsError::Format { .. }
        )
    }
}
