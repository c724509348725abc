//! `try-lock`: `pg_try_advisory_lock`, failing at once when another replica
//! holds it: Rails (`ActiveRecord::ConcurrentMigrationError`, lock id
//! `2053462845 * crc32(database name)`) and node-pg-migrate.
//!
//! Under the lock each migration runs in its own transaction with its
//! `schema_migrations` row; the lock is released in an `ensure` block, on
//! failure too. `lock_timeout` bounds waits on table locks.

use super::{
    Bookkeeping, ReplicaCtx, ReplicaEnd, StepError, Strategy, apply_recorded, failed, sql,
};
use crate::migrate::Migration;
use crate::timeline::{EventKind, LockScope};

pub(super) struct TryLock;

/// Rails' `MIGRATOR_SALT * Zlib.crc32(database name)`.
pub(crate) fn rails_lock_id(database: &str) -> i64 {
    2_053_462_845 * i64::from(super::crc32(database.as_bytes()))
}

impl Strategy for TryLock {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd {
        let client = match ctx.connect().await {
            Ok(c) => c,
            Err(e) => return failed(ctx, &e, None),
        };
        let key = rails_lock_id(&ctx.conn.dbname);
        let got: bool = match client.query_one(sql::ADVISORY_TRY_LOCK, &[&key]).await {
            Ok(row) => row.get(0),
            Err(e) => return failed(ctx, &StepError::bookkeeping(&e), Some(client)),
        };
        if !got {
            ctx.emit(EventKind::LockBusy { key });
            let e = StepError {
                version: None,
                line: None,
                sqlstate: None,
                message:
                    "cannot run migrations because another migration process is currently running"
                        .into(),
            };
            return failed(ctx, &e, Some(client));
        }
        ctx.emit(EventKind::LockAcquired {
            key,
            scope: LockScope::Session,
            waited_us: 0,
        });
        let book = ctx.book(Bookkeeping::Rails);
        let result = async {
            book.ensure(&client).await?;
            let applied = book.applied(&client).await?;
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
                apply_recorded(&client, ctx, book, m).await?;
            }
            Ok::<(), StepError>(())
        }
        .await;
        let _ = client.execute(sql::ADVISORY_UNLOCK, &[&key]).await;
        match result {
            Ok(()) => ReplicaEnd::ok(),
            Err(e) => failed(ctx, &e, Some(client)),
        }
    }
}
