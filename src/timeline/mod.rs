//! The timeline: plain, serialisable, timestamped events of a rehearsal.
//!
//! Nothing here talks to Postgres. Findings and reports are built from these
//! values, so they can be tested from recorded or hand-built timelines.

mod record;
mod sqlstate;
mod state;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use record::{FaultRecord, FaultState, RaceRecord, ReferenceRun, RerunRecord};
pub use sqlstate::SqlState;
pub use state::{
    BookkeepingState, Column, Constraint, HeldAdvisoryLock, Index, SchemaSnapshot, Table,
    TableData, Trigger,
};

/// Who emitted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    /// Replica `n`, connected as `rehearse-replica-<n>`.
    Replica(u32),
    /// The one migration job of the `job` runner.
    Job,
    /// A serial re-run after an injected fault.
    Rerun,
    /// The harness itself (barrier, timeouts, fault injection).
    Harness,
}

/// Scope of an advisory lock (see the manual, "Advisory Locks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockScope {
    /// `pg_advisory_lock`: survives ROLLBACK, released by unlock or disconnect.
    Session,
    /// `pg_advisory_xact_lock`: released at the end of the transaction.
    Transaction,
}

/// How a replica ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitStatus {
    Success,
    Failure,
    /// Did not finish within the timeout; its backend was terminated.
    TimedOut,
    /// Killed by fault injection.
    Killed,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// Released by the barrier (after its jitter).
    Started,
    /// Asked for an advisory lock that may block.
    WaitingOnLock { key: i64, scope: LockScope },
    /// Got the advisory lock after waiting `waited_us`.
    LockAcquired {
        key: i64,
        scope: LockScope,
        waited_us: u64,
    },
    /// `pg_try_advisory_lock` returned false: another replica holds it.
    LockBusy { key: i64 },
    StatementBegin {
        version: String,
        index: usize,
        line: usize,
    },
    StatementEnd {
        version: String,
        index: usize,
        line: usize,
    },
    /// The migration's bookkeeping row was written (and committed).
    Applied { version: String, duration_us: u64 },
    /// Bookkeeping said the migration was already applied.
    Skipped { version: String },
    /// A statement, the bookkeeping or the connection failed.
    Failed {
        version: Option<String>,
        line: Option<usize>,
        sqlstate: Option<SqlState>,
        message: String,
    },
    /// Fault injection terminated this replica's backend (and process).
    Killed { version: String, index: usize },
    /// Captured output of a `command` replica, password redacted.
    Output { stream: String, text: String },
    /// The `job` runner's migration job failed: replicas were not started.
    RolloutHalted { reason: String },
    Exited {
        status: ExitStatus,
        code: Option<i32>,
    },
    /// A rollout phase began (index into the rollout's phases).
    Phase { index: usize, name: String },
}

/// One event; `at_us` counts microseconds since the rehearsal started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at_us: u64,
    pub actor: Actor,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Every event of a rehearsal, ordered by time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub events: Vec<Event>,
}

impl Timeline {
    /// Events of one actor, in order.
    pub fn of(&self, actor: Actor) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.actor == actor)
    }

    /// Every actor that emitted something, sorted.
    #[must_use]
    pub fn actors(&self) -> Vec<Actor> {
        let mut actors: Vec<Actor> = self.events.iter().map(|e| e.actor).collect();
        actors.sort();
        actors.dedup();
        actors
    }

    /// The exit status of `actor`, if it exited.
    #[must_use]
    pub fn exit_of(&self, actor: Actor) -> Option<ExitStatus> {
        self.of(actor).find_map(|e| match e.kind {
            EventKind::Exited { status, .. } => Some(status),
            _ => None,
        })
    }
}

/// Collects events from concurrent tasks with one shared clock.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    #[must_use]
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            events: Arc::default(),
        }
    }

    /// The instant `Event::at_us` counts from.
    #[must_use]
    pub fn origin(&self) -> Instant {
        self.start
    }

    /// Microseconds since the recorder started.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn emit(&self, actor: Actor, kind: EventKind) {
        let event = Event {
            at_us: self.now_us(),
            actor,
            kind,
        };
        // A poisoned lock only means another task panicked mid-push; the
        // events themselves are still whole.
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// The events so far, sorted by time (stable for equal timestamps).
    #[must_use]
    pub fn timeline(&self) -> Timeline {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        events.sort_by_key(|e| e.at_us);
        Timeline { events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_flat_and_round_trip() {
        let rec = Recorder::new();
        rec.emit(Actor::Replica(3), EventKind::Started);
        rec.emit(
            Actor::Replica(3),
            EventKind::Failed {
                version: Some("0002".into()),
                line: Some(4),
                sqlstate: Some(SqlState::DuplicateTable),
                message: "relation \"t\" already exists".into(),
            },
        );
        rec.emit(
            Actor::Replica(3),
            EventKind::Exited {
                status: ExitStatus::Failure,
                code: None,
            },
        );
        let timeline = rec.timeline();
        let json = serde_json::to_value(&timeline).unwrap();
        assert_eq!(json["events"][1]["event"], "failed");
        assert_eq!(json["events"][1]["sqlstate"], "42P07");
        assert_eq!(json["events"][1]["actor"]["replica"], 3);
        let back: Timeline = serde_json::from_value(json).unwrap();
        assert_eq!(back, timeline);
        assert_eq!(back.exit_of(Actor::Replica(3)), Some(ExitStatus::Failure));
        assert_eq!(back.actors(), vec![Actor::Replica(3)]);
    }
}
