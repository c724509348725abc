//! Provisioning: a throwaway Postgres on one of three backends.

mod conn;

pub use conn::ConnInfo;

/// Errors of the provisioning stage. Messages are lowercase, carry the
/// identifying values and never a password.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("{0}")]
    Other(String),
}

/// One line describing a Postgres error: SQLSTATE and message when the server
/// sent one, the client-side cause otherwise.
#[must_use]
pub fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}
