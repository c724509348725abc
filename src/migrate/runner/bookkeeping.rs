//! Bookkeeping tables of the reproduced tools: ensure, read, record.

use std::cmp::Ordering;

use tokio_postgres::Client;

use super::StepError;
use super::sql;
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
        let version = m.numeric_version().ok_or_else(|| StepError {
            version: Some(m.version.clone()),
            line: None,
            sqlstate: None,
            message: format!(
                "version {} is not an integer, as golang-migrate requires",
                m.version
            ),
        })?;
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
