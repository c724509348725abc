//! Bookkeeping tables of the reproduced tools: ensure, read, record.

use std::cmp::Ordering;

use tokio_postgres::Client;

use super::StepError;
use super::sql;
use super::tool_book::ToolBook;
use crate::migrate::Migration;
use crate::migrate::source::compare_versions;
use crate::timeline::BookkeepingState;

/// Which tool's bookkeeping a strategy keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bookkeeping {
    /// `rehearse_naive_migrations`: Django-like, a row per application, no
    /// unique constraint.
    Naive,
    /// `schema_migrations` of golang-migrate: current version + dirty flag.
    GolangMigrate,
    /// `flyway_schema_history`: one row per attempt with a success flag.
    Flyway,
    /// Rails' `schema_migrations` (named `ar_schema_migrations` here so it
    /// cannot clash with golang-migrate's table of the same name).
    Rails,
}

/// The table a built-in strategy keeps: its layout's own tool's (the lock
/// protocol stays the strategy's, the table and what a failure leaves in it
/// become the tool's), or for an unresolved layout (`auto`: callers that
/// know no layout, such as `rehearse provision`) the strategy's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Book {
    Own(Bookkeeping),
    Tool(ToolBook),
}

impl Book {
    /// golang-migrate's protocol: a single `(version, dirty)` row, marked
    /// dirty before a migration runs and clean after.
    pub(crate) fn is_golang(self) -> bool {
        matches!(
            self,
            Book::Own(Bookkeeping::GolangMigrate) | Book::Tool(ToolBook::GolangMigrate)
        )
    }

    pub(crate) async fn ensure(self, client: &Client) -> Result<(), StepError> {
        match self {
            Book::Own(b) => b.ensure(client).await,
            Book::Tool(t) => t.ensure(client).await,
        }
    }

    pub(crate) async fn applied(self, client: &Client) -> Result<Applied, StepError> {
        match self {
            Book::Own(b) => b.applied(client).await,
            Book::Tool(t) => {
                let state = t.state(client).await?;
                Ok(Applied {
                    versions: state.applied,
                    dirty: state.dirty,
                })
            }
        }
    }

    pub(crate) fn contains(self, applied: &Applied, m: &Migration) -> bool {
        let kind = if self.is_golang() {
            Bookkeeping::GolangMigrate
        } else {
            Bookkeeping::Naive
        };
        applied.contains(kind, m)
    }

    /// The error the tool stops with when its table marks a failed
    /// migration (each tool's message): golang-migrate's `dirty`, sqlx's
    /// and Flyway's `success = false`. The strategies' own tables other
    /// than golang-migrate's never refuse (as before).
    pub(crate) fn refusal(self, applied: &Applied) -> Option<StepError> {
        let v = applied.dirty.as_ref()?;
        let message = match self {
            Book::Own(Bookkeeping::GolangMigrate) | Book::Tool(ToolBook::GolangMigrate) => {
                format!("dirty database version {v}: fix and force version")
            }
            Book::Tool(ToolBook::Sqlx) => format!(
                "migration {v} is partially applied; fix and remove row from `_sqlx_migrations` table"
            ),
            Book::Tool(ToolBook::Flyway) => {
                format!("validate failed: detected failed migration to version {v}")
            }
            _ => return None,
        };
        Some(StepError {
            version: Some(v.clone()),
            line: None,
            sqlstate: None,
            message,
        })
    }

    /// Records `m` after its statements ran (inside its transaction when
    /// it has one). A failure (`success = false`, only for a migration run
    /// outside a transaction) leaves what the tool leaves: Flyway a failed
    /// row, golang-migrate its dirty row, the others nothing.
    pub(crate) async fn record(
        self,
        client: &Client,
        m: &Migration,
        started: std::time::Instant,
        success: bool,
    ) -> Result<(), StepError> {
        let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        match self {
            Book::Own(b) => b.record(client, m, ms, success).await,
            // Inside the caller's transaction: no BEGIN of its own.
            Book::Tool(ToolBook::GolangMigrate) => {
                let version = golang_version(m)?;
                let err = |e: tokio_postgres::Error| StepError::bookkeeping(&e);
                client
                    .batch_execute(sql::GOLANG_TRUNCATE)
                    .await
                    .map_err(err)?;
                client
                    .execute(sql::GOLANG_SET, &[&version, &!success])
                    .await
                    .map_err(err)?;
                Ok(())
            }
            Book::Tool(ToolBook::Flyway) if !success => {
                Bookkeeping::Flyway.record(client, m, ms, false).await
            }
            Book::Tool(_) if !success => Ok(()),
            Book::Tool(t) => t.record(client, m, started).await,
        }
    }
}

fn golang_version(m: &Migration) -> Result<i64, StepError> {
    m.numeric_version().ok_or_else(|| StepError {
        version: Some(m.version.clone()),
        line: None,
        sqlstate: None,
        message: format!(
            "version {} is not an integer, as golang-migrate requires",
            m.version
        ),
    })
}

/// What a runner reads before deciding what to apply.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub versions: Vec<String>,
    pub dirty: Option<String>,
}

impl Applied {
    pub(crate) fn contains(&self, kind: Bookkeeping, m: &Migration) -> bool {
        match kind {
            // golang-migrate keeps only the last version: everything up to
            // it counts as applied.
            Bookkeeping::GolangMigrate => self
                .versions
                .first()
                .is_some_and(|current| compare_versions(&m.version, current) != Ordering::Greater),
            _ => self
                .versions
                .iter()
                .any(|v| compare_versions(v, &m.version) == Ordering::Equal),
        }
    }
}

impl Bookkeeping {
    pub(crate) fn table(self) -> &'static str {
        match self {
            Bookkeeping::Naive => sql::NAIVE_TABLE,
            Bookkeeping::GolangMigrate => sql::GOLANG_TABLE,
            Bookkeeping::Flyway => sql::FLYWAY_TABLE,
            Bookkeeping::Rails => sql::RAILS_TABLE,
        }
    }

    pub(crate) async fn ensure(self, client: &Client) -> Result<(), StepError> {
        let text = match self {
            Bookkeeping::Naive => sql::NAIVE_ENSURE,
            Bookkeeping::GolangMigrate => sql::GOLANG_ENSURE,
            Bookkeeping::Flyway => sql::FLYWAY_ENSURE,
            Bookkeeping::Rails => sql::RAILS_ENSURE,
        };
        client
            .batch_execute(text)
            .await
            .map_err(|e| StepError::bookkeeping(&e))
    }

    pub(crate) async fn applied(self, client: &Client) -> Result<Applied, StepError> {
        let err = |e: tokio_postgres::Error| StepError::bookkeeping(&e);
        let mut out = Applied::default();
        match self {
            Bookkeeping::Naive | Bookkeeping::Rails => {
                let text = if self == Bookkeeping::Naive {
                    sql::NAIVE_APPLIED
                } else {
                    sql::RAILS_APPLIED
                };
                for row in client.query(text, &[]).await.map_err(err)? {
                    out.versions.push(row.get(0));
                }
            }
            Bookkeeping::GolangMigrate => {
                if let Some(row) = client
                    .query_opt(sql::GOLANG_CURRENT, &[])
                    .await
                    .map_err(err)?
                {
                    let version: i64 = row.get(0);
                    let dirty: bool = row.get(1);
                    out.versions.push(version.to_string());
                    if dirty {
                        out.dirty = Some(version.to_string());
                    }
                }
            }
            Bookkeeping::Flyway => {
                for row in client.query(sql::FLYWAY_APPLIED, &[]).await.map_err(err)? {
                    let version: Option<String> = row.get(0);
                    let success: bool = row.get(1);
                    let version = version.unwrap_or_default();
                    if success {
                        out.versions.push(version);
                    } else {
                        out.dirty = Some(version);
                    }
                }
            }
        }
        Ok(out)
    }

    /// golang-migrate's SetVersion: truncate and insert in one transaction.
    pub(crate) async fn set_golang_version(
        client: &Client,
        m: &Migration,
        dirty: bool,
    ) -> Result<(), StepError> {
        let version = golang_version(m)?;
        let err = |e: tokio_postgres::Error| StepError::bookkeeping(&e);
        client.batch_execute("BEGIN").await.map_err(err)?;
        let result = async {
            client.batch_execute(sql::GOLANG_TRUNCATE).await?;
            client.execute(sql::GOLANG_SET, &[&version, &dirty]).await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = result {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(err(e));
        }
        Ok(())
    }

    /// Records `m` as applied (inside the migration's transaction when it
    /// has one). golang-migrate marks versions separately, see
    /// [`Bookkeeping::set_golang_version`].
    pub(crate) async fn record(
        self,
        client: &Client,
        m: &Migration,
        duration_ms: i32,
        success: bool,
    ) -> Result<(), StepError> {
        let err = |e: tokio_postgres::Error| StepError::bookkeeping(&e);
        match self {
            Bookkeeping::Naive => {
                client
                    .execute(sql::NAIVE_RECORD, &[&m.version, &m.description])
                    .await
                    .map_err(err)?;
            }
            Bookkeeping::Rails => {
                client
                    .execute(sql::RAILS_RECORD, &[&m.version])
                    .await
                    .map_err(err)?;
            }
            Bookkeeping::Flyway => {
                let script = m.path.file_name().map(|n| n.to_string_lossy().into_owned());
                let script = script.unwrap_or_default();
                client
                    .execute(
                        sql::FLYWAY_RECORD,
                        &[&m.version, &m.description, &script, &duration_ms, &success],
                    )
                    .await
                    .map_err(err)?;
            }
            Bookkeeping::GolangMigrate => Self::set_golang_version(client, m, !success).await?,
        }
        Ok(())
    }

    /// The state of the table after a run, for findings.
    pub(crate) async fn state(self, client: &Client) -> Result<BookkeepingState, StepError> {
        let present: bool = client
            .query_one(sql::TABLE_EXISTS, &[&self.table()])
            .await
            .map_err(|e| StepError::bookkeeping(&e))?
            .get(0);
        let mut state = BookkeepingState {
            table: Some(self.table().to_string()),
            present,
            ..Default::default()
        };
        if present {
            let applied = self.applied(client).await?;
            state.applied = applied.versions;
            state.dirty = applied.dirty;
        }
        Ok(state)
    }
}
