//! Errors of the seeding stage.

use std::path::Path;

/// Everything that can go wrong while seeding. Messages are lowercase and name
/// the place: `file:line:col` and field for spec errors, table and column for
/// schema problems, SQLSTATE for database errors.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The seeds file could not be read.
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    /// The seeds file is malformed or asks for something the schema cannot hold.
    #[error("{location}: {field}: {message}")]
    Spec {
        /// `file:line:col` of the offending value.
        location: String,
        /// Dotted path of the field, e.g. `tables.orders.columns.status`.
        field: String,
        message: String,
    },
    /// The schema cannot be filled without help from a spec (an unsupported
    /// type on a NOT NULL column, a cycle of NOT NULL foreign keys, ...).
    #[error("table {table}: {message}")]
    Schema { table: String, message: String },
    /// A connection could not be opened.
    #[error("{0}")]
    Connect(String),
    /// A statement failed.
    #[error("{context}: {message}")]
    Database {
        /// What was being done, naming the table or column.
        context: String,
        /// Server message followed by `(SQLSTATE)`, or the client-side cause.
        message: String,
        /// The SQLSTATE when the server sent one.
        sqlstate: Option<String>,
    },
}

impl SeedError {
    /// True for errors in what the user gave us (the spec, the schema, the
    /// flags), false for database and infrastructure failures.
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        match self {
            SeedError::Read { .. } | SeedError::Spec { .. } | SeedError::Schema { .. } => true,
            SeedError::Connect(_) => false,
            // Integrity (23) and data (22) violations during load mean the schema
            // holds a constraint the generator could not satisfy: the spec must say
            // more, which is the user's to fix.
            SeedError::Database { sqlstate, .. } => sqlstate
                .as_deref()
                .is_some_and(|code| code.starts_with("23") || code.starts_with("22")),
        }
    }

    pub(crate) fn db(context: impl Into<String>, error: &tokio_postgres::Error) -> SeedError {
        SeedError::Database {
            context: context.into(),
            message: crate::provision::describe_pg_error(error),
            sqlstate: error.as_db_error().map(|db| db.code().code().to_owned()),
        }
    }

    pub(crate) fn schema(table: impl Into<String>, message: impl Into<String>) -> SeedError {
        SeedError::Schema {
            table: table.into(),
            message: message.into(),
        }
    }
}

/// `file:line:col` for a byte offset into `text`.
pub(crate) fn location(origin: &Path, text: &str, offset: usize) -> String {
    let (line, column) = crate::scenario::line_column(text, offset);
    format!("{}:{line}:{column}", origin.display())
}
