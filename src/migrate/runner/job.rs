//! `job`: a single migration job (a Kubernetes Job, a Helm pre-install hook,
//! a release-phase command) applies the migrations with golang-migrate's
//! protocol; replicas start only after it exits 0.
//!
//! This file is what each actor does: the job migrates, a replica only
//! starts and checks that every migration it expects is recorded. The
//! ordering (replicas after a successful job, none after a failed one) is
//! the race orchestration's.

use super::session_lock::{lock, locked_run, sqlx_lock_id};
use super::{Bookkeeping, ReplicaCtx, ReplicaEnd, StepError, Strategy, failed, sql};
use crate::migrate::Migration;
use crate::timeline::{Actor, EventKind};

pub(super) struct Job;

impl Strategy for Job {
    async fn run(&self, ctx: &ReplicaCtx, migrations: &[Migration]) -> ReplicaEnd {
        let client = match ctx.connect().await {
            Ok(c) => c,
            Err(e) => return failed(ctx, &e, None),
        };
        if is_app_replica(ctx) {
            return match check_applied(ctx, &client, migrations).await {
                Ok(()) => ReplicaEnd::ok(),
                Err(e) => failed(ctx, &e, None),
            };
        }
        let key = sqlx_lock_id(&ctx.conn.dbname);
        if let Err(e) = lock(&client, ctx, key).await {
            return failed(ctx, &e, Some(client));
        }
        let result = locked_run(&client, ctx, migrations).await;
        let _ = client.execute(sql::ADVISORY_UNLOCK, &[&key]).await;
        match result {
            Ok(()) => ReplicaEnd::ok(),
            Err(e) => failed(ctx, &e, Some(client)),
        }
    }
}

/// Replicas of a job rollout never migrate.
fn is_app_replica(ctx: &ReplicaCtx) -> bool {
    matches!(ctx.actor, Actor::Replica(_))
}

/// An app replica: every migration must already be recorded.
async fn check_applied(
    ctx: &ReplicaCtx,
    client: &tokio_postgres::Client,
    migrations: &[Migration],
) -> Result<(), StepError> {
    let book = ctx.book(Bookkeeping::GolangMigrate);
    let applied = book.applied(client).await?;
    for m in migrations {
        if book.contains(&applied, m) && applied.dirty.as_ref() != Some(&m.version) {
            ctx.emit(EventKind::Skipped {
                version: m.version.clone(),
            });
        } else {
            return Err(StepError {
                version: Some(m.version.clone()),
                line: None,
                sqlstate: None,
                message: format!(
                    "migration {} is not applied; the app would run on the old schema",
                    m.version
                ),
            });
        }
    }
    Ok(())
}

/// An app replica after a user's tool ran as the job: it starts, and finds
/// every pending migration in the tool's own table (the layout's tool).
pub(crate) async fn app_after_tool(
    ctx: &ReplicaCtx,
    tool: &super::ToolSetup,
    migrations: &[Migration],
) -> ReplicaEnd {
    let client = match ctx.connect().await {
        Ok(c) => c,
        Err(e) => return failed(ctx, &e, None),
    };
    let Some(book) = super::tool_book::ToolBook::for_layout(tool.layout) else {
        return ReplicaEnd::ok();
    };
    let state = match book.state(&client).await {
        Ok(s) => s,
        Err(e) => return failed(ctx, &e, None),
    };
    // golang-migrate keeps only the current version.
    let recorded =
        |m: &Migration| {
            if book == super::tool_book::ToolBook::GolangMigrate {
                state.applied.first().is_some_and(|c| {
                    crate::migrate::source::compare_versions(&m.version, c).is_le()
                }) && state.dirty.is_none()
            } else {
                state
                    .applied
                    .iter()
                    .any(|a| crate::migrate::source::compare_versions(a, &m.version).is_eq())
            }
        };
    for m in migrations {
        if recorded(m) {
            ctx.emit(EventKind::Skipped {
                version: m.version.clone(),
            });
        } else {
            let e = StepError {
                version: Some(m.version.clone()),
                line: None,
                sqlstate: None,
                message: format!(
                    "migration {} is not recorded in {}; the app would run on the old schema",
                    m.version,
                    book.table()
                ),
            };
            return failed(ctx, &e, None);
        }
    }
    ReplicaEnd::ok()
}
