//! Everything a replica race leaves behind, in one serialisable record.

use serde::{Deserialize, Serialize};

use super::{BookkeepingState, HeldAdvisoryLock, SchemaSnapshot, TableData, Timeline};

/// A serial run of the same pending migrations on an identical clone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceRun {
    /// Set when the serial run itself failed (the migration is broken, not
    /// racy).
    pub error: Option<String>,
    pub schema: SchemaSnapshot,
    pub data: Vec<TableData>,
    pub bookkeeping: BookkeepingState,
}

/// Where fault injection struck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub replica: u32,
    pub version: String,
    /// 0-based statement index inside the migration.
    pub index: usize,
    pub line: usize,
    pub transactional: bool,
    /// Whether the statement was still running when the backend was
    /// terminated (rather than finished and waiting for the next one).
    pub mid_statement: bool,
    /// A `command` replica's process was killed: which statement it was
    /// running is unknown (`version` is empty).
    #[serde(default)]
    pub process_killed: bool,
}

/// A serial re-run of the migrations after the fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RerunRecord {
    pub error: Option<String>,
    pub schema: SchemaSnapshot,
    pub bookkeeping: BookkeepingState,
    pub invalid_indexes: Vec<String>,
}

/// Database state right after the faulted race, before any re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultState {
    pub fault: FaultRecord,
    pub rerun: Option<RerunRecord>,
}

/// The outcome of one replica race: timeline plus the state it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaceRecord {
    /// Name of the runner strategy (`naive`, `session-advisory-lock`, ...).
    pub runner: String,
    pub replicas: u32,
    /// Versions that were pending, in order.
    pub pending: Vec<String>,
    /// `schema.name` of tables the pending migrations write rows into.
    pub data_tables: Vec<String>,
    pub timeline: Timeline,
    /// Advisory locks granted in the target database after every replica
    /// finished (a failed replica's open connection may still hold one).
    pub leaked_locks: Vec<HeldAdvisoryLock>,
    pub invalid_indexes: Vec<String>,
    pub bookkeeping: BookkeepingState,
    pub schema: SchemaSnapshot,
    pub data: Vec<TableData>,
    pub reference: Option<ReferenceRun>,
    pub fault: Option<FaultState>,
}
