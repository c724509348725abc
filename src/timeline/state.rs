//! Database state recorded after a rehearsal, as plain data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type` output, e.g. `character varying(20)`.
    pub data_type: String,
    pub not_null: bool,
    pub default: Option<String>,
}

/// A constraint, by name, with `pg_get_constraintdef` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub definition: String,
    pub validated: bool,
}

/// An index, by name, with `pg_get_indexdef` output and validity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub definition: String,
    pub valid: bool,
}

/// A trigger, by name, with `pg_get_triggerdef` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub definition: String,
}

/// One table (or partitioned table) in a user schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// In `attnum` order.
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub triggers: Vec<Trigger>,
}

/// The user-visible schema of a database: everything outside `pg_catalog`,
/// `information_schema` and `pg_toast`. Keys are `schema.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSnapshot {
    pub tables: BTreeMap<String, Table>,
    /// Enum types and their labels in sort order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Sequences and their data type (values differ between runs by design).
    pub sequences: BTreeMap<String, String>,
}

/// Row count and an order-independent checksum of one table's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableData {
    /// `schema.name`.
    pub table: String,
    pub rows: i64,
    /// md5 of the sorted text form of every row; `None` if unreadable.
    pub checksum: Option<String>,
}

/// An advisory lock still granted after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAdvisoryLock {
    pub key: i64,
    pub pid: i32,
    pub application_name: Option<String>,
}

/// What a runner's bookkeeping table says after a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookkeepingState {
    /// e.g. `schema_migrations`; `None` for tools whose table is unknown
    /// (the `command` runner).
    pub table: Option<String>,
    pub present: bool,
    /// Every recorded version, duplicates included, in recording order.
    pub applied: Vec<String>,
    /// The version flagged dirty / unsuccessful, if any.
    pub dirty: Option<String>,
}
