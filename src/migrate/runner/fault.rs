//! Fault injection: terminate one replica's backend at a chosen statement.
//!
//! The statement is started; if it is a non-transactional one, the harness
//! first opens a REPEATABLE READ transaction (an app request in flight) so
//! a CREATE INDEX CONCURRENTLY waits for its snapshot and is killed in the
//! middle, leaving an INVALID index exactly as an interrupted deploy does.
//! Other statements are killed while running if they wait on a lock or run
//! longer than a short grace period, or right after they finish, before the
//! next statement or COMMIT.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::{ReplicaCtx, StepError, sql};
use crate::migrate::Migration;
use crate::timeline::{Actor, EventKind, FaultRecord};

/// How long the harness waits for a terminated backend to disappear.
const GONE_DEADLINE: Duration = Duration::from_secs(10);
/// A statement still running after this long is killed in the middle.
const MID_STATEMENT_GRACE: Duration = Duration::from_millis(100);
/// How long a `command` / `container` replica may take to connect.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

/// Where to strike, shared by all replicas of a race.
pub(crate) struct FaultHook {
    pub actor: Actor,
    pub version: String,
    pub index: usize,
    record: Mutex<Option<FaultRecord>>,
}

impl FaultHook {
    pub(crate) fn new(actor: Actor, version: String, index: usize) -> Self {
        Self {
            actor,
            version,
            index,
            record: Mutex::new(None),
        }
    }

    /// Whether this hook strikes `actor` as a whole process (`command`).
    pub(crate) fn targets_process(&self, actor: Actor) -> bool {
        actor == self.actor && self.record().is_none()
    }

    /// For `command`: waits until the replica's backend runs a query.
    /// Returns `false` if it never does within the deadline.
    pub(crate) async fn wait_until_active(&self, ctx: &ReplicaCtx) -> bool {
        let app = ctx.app_name();
        let Ok(admin) = ctx.conn.connect("rehearse-harness").await else {
            return false;
        };
        let deadline = Instant::now() + CONNECT_DEADLINE;
        while Instant::now() < deadline {
            let active = admin
                .query(sql::WAIT_EVENT_BY_APP, &[&app])
                .await
                .is_ok_and(|rows| !rows.is_empty());
            if active {
                return true;
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    /// For `command`, after the process was killed: terminates its backend
    /// and records the fault.
    pub(crate) async fn struck_process(&self, ctx: &ReplicaCtx) {
        let app = ctx.app_name();
        if let Ok(admin) = ctx.conn.connect("rehearse-harness").await {
            let _ = admin.query(sql::TERMINATE_BY_APP, &[&app]).await;
        }
        *self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(FaultRecord {
            replica: match self.actor {
                Actor::Replica(n) => n,
                _ => 0,
            },
            version: String::new(),
            index: 0,
            line: 0,
            transactional: false,
            mid_statement: true,
            process_killed: true,
        });
        ctx.emit(EventKind::Killed {
            version: String::new(),
            index: 0,
        });
    }

    pub(crate) fn targets(&self, actor: Actor, m: &Migration, index: usize) -> bool {
        actor == self.actor
            && m.version == self.version
            && index == self.index
            && self.record().is_none()
    }

    /// The fault, once it struck.
    pub(crate) fn record(&self) -> Option<FaultRecord> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn struck_actor(&self) -> Option<Actor> {
        self.record().map(|_| self.actor)
    }

    /// Runs statement `index` of `m` on `client` and terminates the backend
    /// during or right after it. Always returns the error the replica sees.
    pub(crate) async fn strike(
        &self,
        client: &Client,
        ctx: &ReplicaCtx,
        m: &Migration,
        index: usize,
    ) -> StepError {
        let line = m.statements.get(index).map_or(1, |s| s.line);
        let app = ctx.app_name();
        let killed = |message: String| StepError {
            version: Some(m.version.clone()),
            line: Some(line),
            sqlstate: None,
            message,
        };
        let admin = match ctx.conn.connect("rehearse-harness").await {
            Ok(c) => c,
            Err(e) => return killed(format!("fault injection could not connect: {e}")),
        };
        let blocker = if m.transactional {
            None
        } else {
            let b = ctx.conn.connect("rehearse-fault-blocker").await.ok();
            if let Some(b) = &b {
                let _ = b
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
                    .await;
            }
            b
        };
        let sql_text = m
            .statements
            .get(index)
            .map(|s| s.sql.clone())
            .unwrap_or_default();
        let exec = client.batch_execute(&sql_text);
        tokio::pin!(exec);
        let deadline = Instant::now() + MID_STATEMENT_GRACE;
        let mut finished = None;
        let mut mid_statement = false;
        loop {
            tokio::select! {
                r = &mut exec => { finished = Some(r); break; }
                () = tokio::time::sleep(POLL) => {
                    let waiting = admin
                        .query(sql::WAIT_EVENT_BY_APP, &[&app])
                        .await
                        .map(|rows| rows.iter().any(|r| r.get::<_, Option<String>>(0).as_deref() == Some("Lock")))
                        .unwrap_or(false);
                    if waiting || Instant::now() > deadline {
                        mid_statement = true;
                        break;
                    }
                }
            }
        }
        if finished.is_some() {
            ctx.emit(EventKind::StatementEnd {
                version: m.version.clone(),
                index,
                line,
            });
        }
        let _ = admin.query(sql::TERMINATE_BY_APP, &[&app]).await;
        let gone_by = Instant::now() + GONE_DEADLINE;
        while Instant::now() < gone_by {
            match admin.query_one(sql::COUNT_BY_APP, &[&app]).await {
                Ok(row) if row.get::<_, i64>(0) == 0 => break,
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(_) => break,
            }
        }
        if let Some(b) = blocker {
            let _ = b.batch_execute("ROLLBACK").await;
        }
        if finished.is_none() {
            let _ = tokio::time::timeout(GONE_DEADLINE, exec).await;
        }
        *self
            .record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(FaultRecord {
            replica: match self.actor {
                Actor::Replica(n) => n,
                _ => 0,
            },
            version: m.version.clone(),
            index,
            line,
            transactional: m.transactional,
            mid_statement,
            process_killed: false,
        });
        ctx.emit(EventKind::Killed {
            version: m.version.clone(),
            index,
        });
        killed(format!(
            "backend terminated by fault injection at {}",
            m.location(index)
        ))
    }
}
