//! The bookkeeping of each layout's own tool, written exactly as that tool
//! writes it, so that the user's real tool, run afterwards, sees the
//! baseline as already applied.
//!
//! | layout | table | what a row holds |
//! |---|---|---|
//! | sqlx | `_sqlx_migrations` | version, description, success, SHA-384 of the file, execution time (ns) |
//! | golang-migrate | `schema_migrations` | the current version and `dirty` (one row) |
//! | dbmate | `schema_migrations` | the version string |
//! | diesel | `__diesel_schema_migrations` | version, run_on |
//! | Flyway | `flyway_schema_history` | rank, version, description, script, CRC-32 checksum, success |
//! | refinery | `refinery_schema_history` | version, name, applied_on, SipHash-1-3 checksum |

use std::hash::{Hash, Hasher};
use std::time::Instant;

use sha2::Digest;
use tokio_postgres::Client;

use super::{Bookkeeping, StepError, sql};
use crate::migrate::{Layout, Migration};
use crate::timeline::BookkeepingState;

/// A layout's own tool's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolBook {
    Sqlx,
    GolangMigrate,
    Dbmate,
    Diesel,
    Flyway,
    Refinery,
}

fn step(m: &Migration, message: String) -> StepError {
    StepError {
        version: Some(m.version.clone()),
        line: None,
        sqlstate: None,
        message,
    }
}

impl ToolBook {
    /// The tool of `layout`; `None` for `auto` (resolve it first).
    pub(crate) fn for_layout(layout: Layout) -> Option<ToolBook> {
        Some(match layout {
            Layout::Auto => return None,
            Layout::Sqlx => ToolBook::Sqlx,
            Layout::GolangMigrate => ToolBook::GolangMigrate,
            Layout::Dbmate => ToolBook::Dbmate,
            Layout::Diesel => ToolBook::Diesel,
            Layout::Flyway => ToolBook::Flyway,
            Layout::Refinery => ToolBook::Refinery,
        })
    }

    pub(crate) fn table(self) -> &'static str {
        match self {
            ToolBook::Sqlx => sql::SQLX_TABLE,
            ToolBook::GolangMigrate => sql::GOLANG_TABLE,
            ToolBook::Dbmate => sql::DBMATE_TABLE,
            ToolBook::Diesel => sql::DIESEL_TABLE,
            ToolBook::Flyway => sql::FLYWAY_TABLE,
            ToolBook::Refinery => sql::REFINERY_TABLE,
        }
    }

    pub(super) async fn ensure(self, client: &Client) -> Result<(), StepError> {
        let text = match self {
            ToolBook::Sqlx => sql::SQLX_ENSURE,
            ToolBook::GolangMigrate => sql::GOLANG_ENSURE,
            ToolBook::Dbmate => sql::DBMATE_ENSURE,
            ToolBook::Diesel => sql::DIESEL_ENSURE,
            ToolBook::Flyway => sql::FLYWAY_ENSURE,
            ToolBook::Refinery => sql::REFINERY_ENSURE,
        };
        client
            .batch_execute(text)
            .await
            .map_err(|e| StepError::bookkeeping(&e))
    }

    /// Records `m` as applied by this tool (inside the migration's
    /// transaction when it has one).
    pub(super) async fn record(
        self,
        client: &Client,
        m: &Migration,
        started: Instant,
    ) -> Result<(), StepError> {
        let err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
        let file = || {
            std::fs::read(&m.path)
                .map_err(|e| step(m, format!("cannot read {}: {e}", m.path.display())))
        };
        let number = || {
            m.numeric_version()
                .ok_or_else(|| step(m, format!("version {} is not an integer", m.version)))
        };
        match self {
            ToolBook::Sqlx => {
                let checksum = sha2::Sha384::digest(file()?).to_vec();
                let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
                client
                    .execute(
                        sql::SQLX_RECORD,
                        &[&number()?, &m.description, &checksum, &nanos],
                    )
                    .await
                    .map_err(err)?;
            }
            // golang-migrate keeps one row: set once, after the last one.
            ToolBook::GolangMigrate => {}
            ToolBook::Dbmate => {
                client
                    .execute(sql::DBMATE_RECORD, &[&m.version])
                    .await
                    .map_err(err)?;
            }
            ToolBook::Diesel => {
                client
                    .execute(sql::DIESEL_RECORD, &[&m.version])
                    .await
                    .map_err(err)?;
            }
            ToolBook::Flyway => {
                let text = String::from_utf8_lossy(&file()?).into_owned();
                let script = m.path.file_name().map(|n| n.to_string_lossy().into_owned());
                let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
                client
                    .execute(
                        sql::FLYWAY_RECORD_CHECKSUM,
                        &[
                            &m.version,
                            &m.description,
                            &script.unwrap_or_default(),
                            &flyway_checksum(&text),
                            &ms,
                        ],
                    )
                    .await
                    .map_err(err)?;
            }
            ToolBook::Refinery => {
                let version = i32::try_from(number()?).map_err(|_| {
                    step(
                        m,
                        format!("version {} does not fit refinery's int4", m.version),
                    )
                })?;
                let text = String::from_utf8_lossy(&file()?).into_owned();
                let applied_on =
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                let checksum = refinery_checksum(&m.description, version, &text).to_string();
                client
                    .execute(
                        sql::REFINERY_RECORD,
                        &[&version, &m.description, &applied_on, &checksum],
                    )
                    .await
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// Applies `migrations` with the statements the harness split and
    /// records each as this tool would: what the tool finds afterwards is
    /// what it leaves after applying them itself.
    pub(crate) async fn apply(
        self,
        client: &Client,
        migrations: &[Migration],
    ) -> Result<(), StepError> {
        self.ensure(client).await?;
        for m in migrations {
            let started = Instant::now();
            let err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
            if m.transactional {
                client.batch_execute("BEGIN").await.map_err(err)?;
            }
            let result = async {
                for s in &m.statements {
                    client
                        .batch_execute(&s.sql)
                        .await
                        .map_err(|e| StepError::from_pg(&e, Some(m), Some(s.line)))?;
                }
                self.record(client, m, started).await?;
                if m.transactional {
                    client.batch_execute("COMMIT").await.map_err(err)?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                if m.transactional {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(e);
            }
        }
        if self == ToolBook::GolangMigrate
            && let Some(last) = migrations.last()
        {
            Bookkeeping::set_golang_version(client, last, false).await?;
        }
        Ok(())
    }

    /// What the table says after a run, for findings.
    pub(crate) async fn state(self, client: &Client) -> Result<BookkeepingState, StepError> {
        if self == ToolBook::GolangMigrate {
            return Bookkeeping::GolangMigrate.state(client).await;
        }
        if self == ToolBook::Flyway {
            return Bookkeeping::Flyway.state(client).await;
        }
        let err = |e: tokio_postgres::Error| StepError::bookkeeping(&e);
        let present: bool = client
            .query_one(sql::TABLE_EXISTS, &[&self.table()])
            .await
            .map_err(err)?
            .get(0);
        let mut state = BookkeepingState {
            table: Some(self.table().to_string()),
            present,
            ..Default::default()
        };
        if !present {
            return Ok(state);
        }
        let text = match self {
            ToolBook::Sqlx => sql::SQLX_APPLIED,
            ToolBook::Dbmate => sql::DBMATE_APPLIED,
            ToolBook::Diesel => sql::DIESEL_APPLIED,
            ToolBook::Refinery => sql::REFINERY_APPLIED,
            ToolBook::GolangMigrate | ToolBook::Flyway => unreachable!("read above"),
        };
        for row in client.query(text, &[]).await.map_err(err)? {
            let version: String = row.get(0);
            // sqlx records a failed no-transaction migration with
            // success = false; `sqlx migrate run` then refuses ("dirty").
            if self == ToolBook::Sqlx && !row.get::<_, bool>(1) {
                state.dirty = Some(version);
            } else {
                state.applied.push(version);
            }
        }
        Ok(state)
    }
}

/// Flyway's checksum: CRC-32 over the file's lines without their line
/// breaks, a leading BOM dropped, as a signed int (Flyway
/// `ChecksumCalculator`).
pub(crate) fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut bytes = Vec::with_capacity(text.len());
    // Java's readLine ends a line at \n, \r or \r\n.
    for line in text.split('\n') {
        bytes.extend(line.split('\r').flat_map(str::bytes));
    }
    i32::from_ne_bytes(super::crc32(&bytes).to_ne_bytes())
}

/// refinery's checksum: SipHash-1-3 (zero keys) of the name, the version
/// and the SQL, through Rust's `Hash` (refinery_core `Migration::unapplied`).
pub(crate) fn refinery_checksum(name: &str, version: i32, sql: &str) -> u64 {
    let mut hasher = siphasher::sip::SipHasher13::new();
    name.hash(&mut hasher);
    version.hash(&mut hasher);
    sql.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksum_ignores_line_breaks_and_bom() {
        let unix = flyway_checksum("CREATE TABLE a (id int);\nSELECT 1;\n");
        assert_eq!(
            unix,
            flyway_checksum("\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n")
        );
        assert_eq!(
            unix,
            i32::from_ne_bytes(
                super::super::crc32(b"CREATE TABLE a (id int);SELECT 1;").to_ne_bytes()
            )
        );
    }

    #[test]
    fn every_concrete_layout_has_its_tools_table() {
        assert_eq!(ToolBook::for_layout(Layout::Auto), None);
        assert_eq!(
            ToolBook::for_layout(Layout::Sqlx).unwrap().table(),
            "_sqlx_migrations"
        );
        assert_eq!(
            ToolBook::for_layout(Layout::Dbmate).unwrap().table(),
            "schema_migrations"
        );
        assert_eq!(
            ToolBook::for_layout(Layout::Diesel).unwrap().table(),
            "__diesel_schema_migrations"
        );
        assert_ne!(
            refinery_checksum("a", 1, "x"),
            refinery_checksum("a", 2, "x")
        );
    }
}
