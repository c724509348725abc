//! `naive`: read the bookkeeping, apply what is missing, record it. No lock.
//!
//! This is what Django (`MigrationRecorder`), Alembic, diesel and refinery
//! do: the bookkeeping table is created with CREATE TABLE IF NOT EXISTS and
//! read once at start, so replicas starting together all see the same
//! pending list and all apply it. Expected under concurrency: 42P07 /
//! 42701 on DDL, 23505 on `pg_type` from racing CREATE TABLE IF NOT EXISTS,
//! and data migrations applied more than once.
//!
//! The table is the layout's own tool's (`tool_book.rs`), with what that
//! tool leaves after a failure; with no layout, `rehearse_naive_migrations`.

use super::{Bookkeeping, ReplicaCtx, ReplicaEnd, Strategy, apply_recorded, failed};
use crate::migrate::Migration;
use crate::timeline::EventKind;

pub(super) struct Naive;

impl Strategy for Naive {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd {
        let book = ctx.book(Bookkeeping::Naive);
        let client = match ctx.connect().await {
            Ok(c) => c,
            Err(e) => return failed(ctx, &e, None),
        };
        if let Err(e) = book.ensure(&client).await {
            return failed(ctx, &e, Some(client));
        }
        let applied = match book.applied(&client).await {
            Ok(a) => a,
            Err(e) => return failed(ctx, &e, Some(client)),
        };
        if let Some(e) = book.refusal(&applied) {
            return failed(ctx, &e, Some(client));
        }
        for m in migrations {
            if book.contains(&applied, m) {
                ctx.emit(EventKind::Skipped {
                    version: m.version.clone(),
                });
                continue;
            }
            if let Err(e) = apply_recorded(&client, ctx, book, m).await {
                return failed(ctx, &e, Some(client));
            }
        }
        ReplicaEnd::ok()
    }
}
