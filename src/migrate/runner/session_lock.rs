//! `session-advisory-lock`: a blocking `pg_advisory_lock` held across the
//! whole run, as sqlx and golang-migrate take it.
//!
//! - The key is sqlx's: `0x3d32ad9e * crc32(database name)`
//!   (`sqlx-postgres/src/migrate.rs`, `generate_lock_id`), so every replica
//!   of one database contends for the same lock and waits without limit
//!   unless `lock_timeout` is set.
//! - Bookkeeping is the layout's tool's (see `tool_book.rs`): for
//!   golang-migrate `schema_migrations (version, dirty)`, marked dirty
//!   before a migration runs and clean after, so a failure leaves it dirty
//!   and later runs refuse; for sqlx or dbmate a row per success and
//!   nothing for the failed one, so the next run retries. With no layout,
//!   golang-migrate's.
//! - On failure the lock is not released explicitly (sqlx returns the error
//!   without unlocking): it goes away when the connection closes, which an
//!   app that keeps running with its pool never does.
//! - The lock is requested by a plain SELECT, which holds a snapshot while
//!   it waits; CREATE INDEX CONCURRENTLY in the lock holder waits for that
//!   snapshot, the known deadlock of this protocol.

use std::time::Instant;

use tokio_postgres::Client;

use super::{
    Bookkeeping, ReplicaCtx, ReplicaEnd, StepError, Strategy, apply_recorded, failed, sql,
};
use crate::migrate::Migration;
use crate::timeline::{EventKind, LockScope};

pub(super) struct SessionLock;

/// sqlx's lock id for a database.
pub(crate) fn sqlx_lock_id(database: &str) -> i64 {
    0x3d32_ad9e * i64::from(super::crc32(database.as_bytes()))
}

impl Strategy for SessionLock {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd {
        let client = match ctx.connect().await {
            Ok(c) => c,
            Err(e) => return failed(ctx, &e, None),
        };
        let key = sqlx_lock_id(&ctx.conn.dbname);
        if let Err(e) = lock(&client, ctx, key).await {
            return failed(ctx, &e, Some(client));
        }
        match locked_run(&client, ctx, migrations).await {
            Ok(()) => {
                let _ = client.execute(sql::ADVISORY_UNLOCK, &[&key]).await;
                ReplicaEnd::ok()
            }
            Err(e) => failed(ctx, &e, Some(client)),
        }
    }
}

/// Takes the blocking session lock, emitting the wait.
pub(super) async fn lock(client: &Client, ctx: &ReplicaCtx, key: i64) -> Result<(), StepError> {
    let scope = LockScope::Session;
    ctx.emit(EventKind::WaitingOnLock { key, scope });
    let started = Instant::now();
    client
        .execute(sql::ADVISORY_LOCK, &[&key])
        .await
        .map_err(|e| StepError::bookkeeping(&e))?;
    ctx.emit(EventKind::LockAcquired {
        key,
        scope,
        waited_us: super::elapsed_us(started),
    });
    Ok(())
}

/// golang-migrate's `Up` under the lock: refuse a dirty database, then for
/// each newer version: dirty, run, clean.
pub(super) async fn locked_run(
    client: &Client,
    ctx: &ReplicaCtx,
    migrations: &[Migration],
) -> Result<(), StepError> {
    let book = ctx.book(Bookkeeping::GolangMigrate);
    book.ensure(client).await?;
    let applied = book.applied(client).await?;
    if let Some(e) = book.refusal(&applied) {
        return Err(e);
    }
    for m in migrations {
        if book.contains(&applied, m) {
            ctx.emit(EventKind::Skipped {
                version: m.version.clone(),
            });
            continue;
        }
        apply_recorded(client, ctx, book, m).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_id_is_stable_and_per_database() {
        assert_eq!(
            sqlx_lock_id("app"),
            0x3d32_ad9e * i64::from(crate::migrate::runner::crc32(b"app"))
        );
        assert_ne!(sqlx_lock_id("app"), sqlx_lock_id("app2"));
        assert!(sqlx_lock_id("app") > 0);
    }
}
