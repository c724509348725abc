//! SQLSTATE codes the harness reasons about, as an enum.
//!
//! Codes from the PostgreSQL manual, appendix A "PostgreSQL Error Codes".
//! Anything else is kept verbatim in [`SqlState::Other`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A SQLSTATE error code. Serialised as the five-character code.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SqlState {
    /// 42P07 duplicate_table: a concurrent `CREATE TABLE` won.
    DuplicateTable,
    /// 42701 duplicate_column: `ADD COLUMN` applied twice.
    DuplicateColumn,
    /// 42710 duplicate_object: index, constraint or type created twice.
    DuplicateObject,
    /// 23505 unique_violation, including the `pg_type` race of concurrent
    /// `CREATE TABLE IF NOT EXISTS`.
    UniqueViolation,
    /// 23502 not_null_violation.
    NotNullViolation,
    /// 40P01 deadlock_detected.
    DeadlockDetected,
    /// 55P03 lock_not_available: `lock_timeout` expired.
    LockNotAvailable,
    /// 25001 active_sql_transaction: e.g. `CREATE INDEX CONCURRENTLY` in a
    /// transaction block.
    ActiveSqlTransaction,
    /// 57014 query_canceled: `statement_timeout` or a cancel request.
    QueryCanceled,
    /// 57P01 admin_shutdown: the backend was terminated.
    AdminShutdown,
    /// 42P01 undefined_table.
    UndefinedTable,
    /// 42703 undefined_column.
    UndefinedColumn,
    /// Any other code, verbatim.
    Other(String),
}

impl SqlState {
    /// Parses a five-character code.
    #[must_use]
    pub fn from_code(code: &str) -> SqlState {
        match code {
            "42P07" => SqlState::DuplicateTable,
            "42701" => SqlState::DuplicateColumn,
            "42710" => SqlState::DuplicateObject,
            "23505" => SqlState::UniqueViolation,
            "23502" => SqlState::NotNullViolation,
            "40P01" => SqlState::DeadlockDetected,
            "55P03" => SqlState::LockNotAvailable,
            "25001" => SqlState::ActiveSqlTransaction,
            "57014" => SqlState::QueryCanceled,
            "57P01" => SqlState::AdminShutdown,
            "42P01" => SqlState::UndefinedTable,
            "42703" => SqlState::UndefinedColumn,
            other => SqlState::Other(other.to_string()),
        }
    }

    /// The five-character code.
    #[must_use]
    pub fn code(&self) -> &str {
        match self {
            SqlState::DuplicateTable => "42P07",
            SqlState::DuplicateColumn => "42701",
            SqlState::DuplicateObject => "42710",
            SqlState::UniqueViolation => "23505",
            SqlState::NotNullViolation => "23502",
            SqlState::DeadlockDetected => "40P01",
            SqlState::LockNotAvailable => "55P03",
            SqlState::ActiveSqlTransaction => "25001",
            SqlState::QueryCanceled => "57014",
            SqlState::AdminShutdown => "57P01",
            SqlState::UndefinedTable => "42P01",
            SqlState::UndefinedColumn => "42703",
            SqlState::Other(code) => code,
        }
    }
}

impl fmt::Display for SqlState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for SqlState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for SqlState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Ok(SqlState::from_code(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_serde() {
        for code in [
            "42P07", "42701", "23505", "40P01", "55P03", "25001", "XX000",
        ] {
            let state = SqlState::from_code(code);
            assert_eq!(state.code(), code);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{code}\""));
            assert_eq!(serde_json::from_str::<SqlState>(&json).unwrap(), state);
        }
        assert_eq!(
            SqlState::from_code("XX000"),
            SqlState::Other("XX000".into())
        );
    }
}
