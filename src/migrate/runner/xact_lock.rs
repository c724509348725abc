//! `xact-advisory-lock`: `pg_advisory_xact_lock` per migration transaction,
//! Flyway's default on PostgreSQL (`flyway.postgresql.transactional.lock`).
//!
//! Each migration runs in a transaction that first takes the lock, then
//! re-reads `flyway_schema_history` (another replica may have applied it
//! meanwhile), then applies and records. A non-transactional migration
//! cannot run inside that transaction, so the lock is held by an open
//! transaction on a second connection of the same replica while the
//! statements run on the first; a failure there is recorded with
//! `success = false`, which Flyway refuses to go past until `repair`.
//!
//! The table is the layout's tool's (`tool_book.rs`) with what that tool
//! leaves after a failure (Flyway's own table when the layout is Flyway or
//! unresolved); the lock protocol stays Flyway's.
//!
//! Consequence, the CONCURRENTLY self-deadlock known from Flyway's default
//! transactional lock mode (`postgresql.transactional.lock = false` avoids it):
//! CREATE INDEX CONCURRENTLY waits for the snapshots of replicas queued on
//! the lock, while the lock's holder is an idle transaction PostgreSQL does
//! not see as waiting, so no deadlock is detected and the replicas hang
//! until the rehearsal's timeout.

use std::time::Instant;

use tokio_postgres::Client;

use super::{
    Bookkeeping, ReplicaCtx, ReplicaEnd, StepError, Strategy, elapsed_us, failed, run_statements,
    sql,
};
use crate::migrate::Migration;
use crate::timeline::{EventKind, LockScope};

pub(super) struct XactLock;

/// Flyway's lock number: a fixed base plus the Java `hashCode` of the
/// history table's qualified name.
pub(crate) fn flyway_lock_id() -> i64 {
    const BASE: i64 = 77_431_708_279_161;
    let hash = "\"public\".\"flyway_schema_history\""
        .encode_utf16()
        .fold(0i32, |h, c| {
            h.wrapping_mul(31).wrapping_add(i32::from(c as i16))
        });
    BASE + i64::from(hash)
}

async fn xact_lock(client: &Client, ctx: &ReplicaCtx, key: i64) -> Result<(), StepError> {
    let scope = LockScope::Transaction;
    ctx.emit(EventKind::WaitingOnLock { key, scope });
    let started = Instant::now();
    client
        .execute(sql::ADVISORY_XACT_LOCK, &[&key])
        .await
        .map_err(|e| StepError::bookkeeping(&e))?;
    ctx.emit(EventKind::LockAcquired {
        key,
        scope,
        waited_us: elapsed_us(started),
    });
    Ok(())
}

impl Strategy for XactLock {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd {
        let client = match ctx.connect().await {
            Ok(c) => c,
            Err(e) => return failed(ctx, &e, None),
        };
        let key = flyway_lock_id();
        for m in migrations {
            let result = if m.transactional {
                in_transaction(&client, ctx, key, m).await
            } else {
                beside_transaction(&client, ctx, key, m).await
            };
            if let Err(e) = result {
                return failed(ctx, &e, Some(client));
            }
        }
        ReplicaEnd::ok()
    }
}

async fn in_transaction(
    client: &Client,
    ctx: &ReplicaCtx,
    key: i64,
    m: &Migration,
) -> Result<(), StepError> {
    let book = ctx.book(Bookkeeping::Flyway);
    let err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
    client.batch_execute("BEGIN").await.map_err(err)?;
    let started = Instant::now();
    let result = async {
        xact_lock(client, ctx, key).await?;
        book.ensure(client).await?;
        let applied = book.applied(client).await?;
        if let Some(e) = book.refusal(&applied) {
            return Err(e);
        }
        if book.contains(&applied, m) {
            client.batch_execute("COMMIT").await.map_err(err)?;
            ctx.emit(EventKind::Skipped {
                version: m.version.clone(),
            });
            return Ok(());
        }
        run_statements(client, ctx, m).await?;
        book.record(client, m, started, true).await?;
        client.batch_execute("COMMIT").await.map_err(err)?;
        ctx.emit(EventKind::Applied {
            version: m.version.clone(),
            duration_us: elapsed_us(started),
        });
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn beside_transaction(
    client: &Client,
    ctx: &ReplicaCtx,
    key: i64,
    m: &Migration,
) -> Result<(), StepError> {
    let book = ctx.book(Bookkeeping::Flyway);
    let lock_conn = ctx.connect().await?;
    let err = |e: tokio_postgres::Error| StepError::from_pg(&e, Some(m), None);
    lock_conn.batch_execute("BEGIN").await.map_err(err)?;
    xact_lock(&lock_conn, ctx, key).await?;
    let started = Instant::now();
    book.ensure(client).await?;
    let applied = book.applied(client).await?;
    if let Some(e) = book.refusal(&applied) {
        let _ = lock_conn.batch_execute("COMMIT").await;
        return Err(e);
    }
    if book.contains(&applied, m) {
        ctx.emit(EventKind::Skipped {
            version: m.version.clone(),
        });
        let _ = lock_conn.batch_execute("COMMIT").await;
        return Ok(());
    }
    if book.is_golang() {
        let result = super::apply_dirty_marked(client, ctx, m).await;
        let _ = lock_conn.batch_execute("COMMIT").await;
        return result;
    }
    let result = run_statements(client, ctx, m).await;
    let success = result.is_ok();
    // Flyway records failed non-transactional migrations too; sqlx, dbmate,
    // diesel and refinery record nothing for them.
    let recorded = book.record(client, m, started, success).await;
    let _ = lock_conn.batch_execute("COMMIT").await;
    result?;
    recorded?;
    ctx.emit(EventKind::Applied {
        version: m.version.clone(),
        duration_us: elapsed_us(started),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn flyway_lock_id_is_stable() {
        assert_eq!(super::flyway_lock_id(), super::flyway_lock_id());
        assert!(super::flyway_lock_id() > 77_431_708_279_161 - i64::from(i32::MAX));
    }
}
