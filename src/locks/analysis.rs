//! From samples to impact: who held which lock for how long, who waited
//! behind whom, the lock queue, and blocked-backend-seconds. Pure: tested
//! from hand-built samples.
//!
//! A lock seen in consecutive samples is one episode; an episode seen from
//! `from_us` to `to_us` is counted as held `to_us - from_us + interval`
//! (a lock seen in one sample was held for about one interval).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::mode::{LockMode, LockType};
use super::sampler::{Backend, SAMPLER_APPLICATION_NAME, Sample, Samples};
use super::trace::Trace;
use crate::migrate::Migration;
use crate::timeline::{Actor, EventKind, Timeline};

/// Who a backend is, from its `application_name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Holder {
    Replica(u32),
    Job,
    /// An application workload (or any other client), by name.
    App(String),
}

impl Holder {
    #[must_use]
    pub fn from_application_name(name: &str) -> Holder {
        if let Some(n) = name
            .strip_prefix("rehearse-replica-")
            .and_then(|n| n.parse().ok())
        {
            Holder::Replica(n)
        } else if name == "rehearse-job" {
            Holder::Job
        } else {
            Holder::App(name.to_string())
        }
    }

    /// Whether this is a migration runner (replica or job).
    #[must_use]
    pub fn is_migration(&self) -> bool {
        matches!(self, Holder::Replica(_) | Holder::Job)
    }

    fn actor(&self) -> Option<Actor> {
        match self {
            Holder::Replica(n) => Some(Actor::Replica(*n)),
            Holder::Job => Some(Actor::Job),
            Holder::App(_) => None,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Replica(n) => write!(f, "replica {n}"),
            Holder::Job => f.write_str("the migration job"),
            Holder::App(name) if name.is_empty() => f.write_str("an unnamed client"),
            Holder::App(name) => write!(f, "{name}"),
        }
    }
}

/// A pending migration statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRef {
    pub version: String,
    pub index: usize,
    pub line: usize,
}

/// One granted table lock, held continuously.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub relation: String,
    pub mode: LockMode,
    pub holder: Holder,
    pub pid: i32,
    pub from_us: u64,
    pub to_us: u64,
    pub hold_us: u64,
}

/// Per relation and mode: max and total hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationLocks {
    pub relation: String,
    pub mode: LockMode,
    pub holders: Vec<Holder>,
    pub max_hold_us: u64,
    pub total_hold_us: u64,
}

/// Who blocked a waiting backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub pid: i32,
    pub holder: Holder,
    /// The blocker was itself waiting: a queued request ahead (the
    /// lock-queue effect), not a held lock.
    pub queued: bool,
}

/// One lock request that waited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    pub pid: i32,
    pub holder: Holder,
    pub locktype: LockType,
    pub mode: LockMode,
    pub relation: Option<String>,
    pub from_us: u64,
    pub to_us: u64,
    pub wait_us: u64,
    /// Blockers when the wait was first seen.
    pub blocked_by: Vec<Blocker>,
    /// The migration statement that caused the wait, when a migration
    /// backend was among the blockers (held or queued).
    pub statement: Option<StatementRef>,
    /// The migration statement that took the lock this wait conflicts with,
    /// from the per-statement trace (the blocker may be running a later
    /// statement of the same transaction by then).
    #[serde(default)]
    pub lock_taken_by: Option<StatementRef>,
    pub query: String,
}

impl Wait {
    /// Whether this wait sat behind a queued request rather than a held lock.
    #[must_use]
    pub fn behind_queue(&self) -> bool {
        self.blocked_by.iter().any(|b| b.queued)
    }
}

/// Backends waiting at one moment (recorded when the count changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePoint {
    pub at_us: u64,
    pub waiting: u32,
}

/// What the sampler's samples say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LockAnalysis {
    pub samples: usize,
    pub missed_samples: u64,
    pub interval_us: u64,
    pub sample_rate_per_second: f64,
    pub holds: Vec<Hold>,
    pub relations: Vec<RelationLocks>,
    pub waits: Vec<Wait>,
    pub queue: Vec<QueuePoint>,
    /// Waiting sessions x seconds: the figure that best predicts
    /// user-visible impact.
    pub blocked_backend_seconds: f64,
    /// Sampler time minus timeline time, in microseconds: every `*_us` here
    /// counts from the sampler's start, so a sample at `at_us` happened at
    /// `at_us - timeline_offset_us` on the timeline. `None` when analysed
    /// without a timeline (and in reports written before it was recorded).
    #[serde(default)]
    pub timeline_offset_us: Option<i64>,
    /// Holds on the migration tools' own bookkeeping tables (and their
    /// sequences and indexes), kept apart from [`LockAnalysis::relations`]:
    /// no application query touches them, so they are never the worst lock.
    #[serde(default)]
    pub bookkeeping: Vec<RelationLocks>,
    /// Granted locks left out of `holds`: on relations the rehearsal itself
    /// created (nobody else can see them until commit, REFERENCE.md,
    /// "Observing locks") or on system catalogs.
    #[serde(default)]
    pub hidden_holds: usize,
}

/// The bookkeeping tables of the runners and tools the harness knows
/// (REFERENCE.md, "How real migration tools behave"), unqualified.
pub const BOOKKEEPING_TABLES: [&str; 11] = [
    "rehearse_naive_migrations",
    "schema_migrations",
    "flyway_schema_history",
    "ar_schema_migrations",
    "_sqlx_migrations",
    "__diesel_schema_migrations",
    "refinery_schema_history",
    "alembic_version",
    "_yoyo_migration",
    "databasechangelog",
    "databasechangeloglock",
];

/// Whether `relation` (`schema.table`) is a migration tool's bookkeeping.
#[must_use]
pub fn is_bookkeeping(relation: &str) -> bool {
    let table = relation.rsplit('.').next().unwrap_or(relation);
    BOOKKEEPING_TABLES.contains(&table)
}

/// Oids below this are the system's own (`FirstNormalObjectId`).
const FIRST_NORMAL_OID: u32 = 16_384;

/// Where a sampled lock row's relation belongs: `Some(table)` for a relation
/// that existed when sampling began, folded into its table (an index,
/// toast table or owned sequence into the table it belongs to); `None`
/// for one the rehearsal created or a system catalog. Without a record of
/// the existing relations (older recordings), the row's own name, catalogs
/// still left out.
fn place(row: &super::sampler::LockRow, samples: &Samples) -> Option<String> {
    let relation = row.relation.as_ref()?;
    if samples.catalog
        && (row.oid.is_some_and(|oid| oid < FIRST_NORMAL_OID)
            || relation.starts_with("pg_catalog."))
    {
        return Some(relation.clone());
    }
    match (&samples.existing, row.oid) {
        (Some(existing), Some(oid)) => existing.get(&oid).cloned(),
        (_, Some(oid)) if oid < FIRST_NORMAL_OID => None,
        _ if relation.starts_with("pg_catalog.") => None,
        _ => Some(relation.clone()),
    }
}

impl LockAnalysis {
    /// Fills [`Wait::lock_taken_by`] from the per-statement trace: for a
    /// wait on a relation behind a migration, the first traced statement
    /// (of the migration the wait is attributed to, when it is) that
    /// acquired a lock on that relation in a mode the waiter's conflicts
    /// with.
    pub fn attribute_to_trace(&mut self, trace: &Trace) {
        for wait in &mut self.waits {
            let Some(relation) = &wait.relation else {
                continue;
            };
            if !wait.blocked_by.iter().any(|b| b.holder.is_migration()) {
                continue;
            }
            let version = wait.statement.as_ref().map(|s| s.version.as_str());
            wait.lock_taken_by = trace
                .statements
                .iter()
                .filter(|s| version.is_none_or(|v| v == s.version))
                .find(|s| {
                    s.acquired.iter().any(|l| {
                        l.relation.as_ref() == Some(relation) && l.mode.conflicts_with(wait.mode)
                    })
                })
                .map(|s| StatementRef {
                    version: s.version.clone(),
                    index: s.index,
                    line: s.line,
                });
        }
    }

    /// A sampler time on the timeline's clock (clamped at its zero); the
    /// sampler's own time when the offset is unknown.
    #[must_use]
    pub fn timeline_us(&self, sampler_us: u64) -> u64 {
        let offset = self.timeline_offset_us.unwrap_or(0);
        let at = i64::try_from(sampler_us)
            .unwrap_or(i64::MAX)
            .saturating_sub(offset);
        u64::try_from(at).unwrap_or(0)
    }

    /// Longest ACCESS EXCLUSIVE hold, per relation.
    #[must_use]
    pub fn max_access_exclusive(&self) -> Option<&RelationLocks> {
        self.relations
            .iter()
            .filter(|r| r.mode == LockMode::AccessExclusive)
            .max_by_key(|r| r.max_hold_us)
    }

    /// Longest wait of an application (not a migration runner).
    #[must_use]
    pub fn max_app_wait_us(&self) -> u64 {
        self.waits
            .iter()
            .filter(|w| !w.holder.is_migration())
            .map(|w| w.wait_us)
            .max()
            .unwrap_or(0)
    }

    /// Waits that sat behind a queued request: the lock-queue effect.
    pub fn queued_waits(&self) -> impl Iterator<Item = &Wait> {
        self.waits.iter().filter(|w| w.behind_queue())
    }
}

/// Where the sampler's clock stands against the timeline's.
#[derive(Debug, Clone, Copy)]
pub struct TimelineRef<'a> {
    pub timeline: &'a Timeline,
    /// Sampler time minus timeline time, in microseconds.
    pub offset_us: i64,
}

type EpisodeKey = (
    i32,
    LockType,
    Option<String>,
    Option<String>,
    LockMode,
    bool,
);

struct Episode {
    from_us: u64,
    last_us: u64,
    first_sample: usize,
}

/// Derives holds, waits, the queue and blocked-backend-seconds.
#[must_use]
pub fn analyse(
    samples: &Samples,
    pending: &[Migration],
    timeline: Option<TimelineRef<'_>>,
) -> LockAnalysis {
    let list = &samples.samples;
    let interval = samples.interval_us.max(1);
    let mut open: BTreeMap<EpisodeKey, Episode> = BTreeMap::new();
    let mut closed: Vec<(EpisodeKey, Episode)> = Vec::new();
    let mut queue: Vec<QueuePoint> = Vec::new();
    let mut blocked_us: f64 = 0.0;
    let mut hidden = std::collections::BTreeSet::new();
    for (i, sample) in list.iter().enumerate() {
        let mut present = std::collections::BTreeSet::new();
        for row in &sample.locks {
            if app_name(sample, row.pid) == Some(SAMPLER_APPLICATION_NAME) {
                continue;
            }
            let relation = match place(row, samples) {
                Some(table) => Some(table),
                // A wait is kept whatever it waits on; a hold on a relation
                // nobody else can see (or a catalog) blocks no application.
                None if row.relation.is_some() && row.granted => {
                    hidden.insert((row.pid, row.relation.clone(), row.mode));
                    continue;
                }
                None => row.relation.clone(),
            };
            let key = (
                row.pid,
                row.locktype,
                relation,
                row.object.clone(),
                row.mode,
                row.granted,
            );
            present.insert(key.clone());
            open.entry(key)
                .and_modify(|e| e.last_us = sample.at_us)
                .or_insert(Episode {
                    from_us: sample.at_us,
                    last_us: sample.at_us,
                    first_sample: i,
                });
        }
        let ended: Vec<EpisodeKey> = open
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in ended {
            if let Some(e) = open.remove(&key) {
                closed.push((key, e));
            }
        }
        let mut waiting: Vec<i32> = sample
            .locks
            .iter()
            .filter(|l| !l.granted)
            .map(|l| l.pid)
            .collect();
        waiting.sort_unstable();
        waiting.dedup();
        let count = u32::try_from(waiting.len()).unwrap_or(u32::MAX);
        if queue.last().map(|q| q.waiting) != Some(count) {
            queue.push(QueuePoint {
                at_us: sample.at_us,
                waiting: count,
            });
        }
        // A gap after missed samples counts only a few intervals: the
        // sampler did not see what happened in it.
        let dt = list
            .get(i + 1)
            .map_or(interval, |next| next.at_us.saturating_sub(sample.at_us))
            .min(interval * 4);
        #[expect(clippy::cast_precision_loss, reason = "seconds as a float")]
        {
            blocked_us += waiting.len() as f64 * dt as f64;
        }
    }
    closed.extend(open);

    let mut holds = Vec::new();
    let mut waits = Vec::new();
    for ((pid, locktype, relation, _object, mode, granted), e) in closed {
        let sample = &list[e.first_sample];
        let holder = Holder::from_application_name(app_name(sample, pid).unwrap_or(""));
        let span = e.last_us - e.from_us + interval;
        if granted {
            if let (LockType::Relation, Some(relation)) = (locktype, relation) {
                holds.push(Hold {
                    relation,
                    mode,
                    holder,
                    pid,
                    from_us: e.from_us,
                    to_us: e.last_us,
                    hold_us: span,
                });
            }
            continue;
        }
        let row = sample.locks.iter().find(|l| {
            l.pid == pid
                && !l.granted
                && l.mode == mode
                && (l.relation == relation || place(l, samples) == relation)
        });
        let blocked_by: Vec<Blocker> = row
            .map(|r| r.blocked_by.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|b| Blocker {
                pid: b,
                holder: Holder::from_application_name(app_name(sample, b).unwrap_or("")),
                queued: sample.locks.iter().any(|l| l.pid == b && !l.granted),
            })
            .collect();
        let statement = blocked_by
            .iter()
            .filter(|b| b.holder.is_migration())
            .find_map(|b| attribute(sample, b, pending, timeline, e.from_us));
        waits.push(Wait {
            pid,
            holder,
            locktype,
            mode,
            relation,
            from_us: e.from_us,
            to_us: e.last_us,
            wait_us: span,
            blocked_by,
            statement,
            lock_taken_by: None,
            query: query_of(sample, pid).to_string(),
        });
    }
    holds.sort_by_key(|h| (h.from_us, h.pid));
    waits.sort_by_key(|w| (w.from_us, w.pid));

    let (kept, tools): (Vec<Hold>, Vec<Hold>) = holds
        .into_iter()
        .partition(|h| !is_bookkeeping(&h.relation));
    let holds = kept;
    LockAnalysis {
        samples: list.len(),
        missed_samples: samples.missed,
        interval_us: samples.interval_us,
        sample_rate_per_second: samples.rate_per_second(),
        relations: per_relation(&holds),
        bookkeeping: per_relation(&tools),
        holds,
        waits,
        queue,
        blocked_backend_seconds: blocked_us / 1e6,
        timeline_offset_us: timeline.map(|t| t.offset_us),
        hidden_holds: hidden.len(),
    }
}

/// Per relation and mode: holders, longest and total hold.
fn per_relation(holds: &[Hold]) -> Vec<RelationLocks> {
    let mut relations: BTreeMap<(String, LockMode), RelationLocks> = BTreeMap::new();
    for h in holds {
        let r = relations
            .entry((h.relation.clone(), h.mode))
            .or_insert_with(|| RelationLocks {
                relation: h.relation.clone(),
                mode: h.mode,
                holders: Vec::new(),
                max_hold_us: 0,
                total_hold_us: 0,
            });
        if !r.holders.contains(&h.holder) {
            r.holders.push(h.holder.clone());
        }
        r.max_hold_us = r.max_hold_us.max(h.hold_us);
        r.total_hold_us += h.hold_us;
    }
    relations.into_values().collect()
}

fn backend(sample: &Sample, pid: i32) -> Option<&Backend> {
    sample.backends.iter().find(|b| b.pid == pid)
}

fn app_name(sample: &Sample, pid: i32) -> Option<&str> {
    backend(sample, pid).map(|b| b.application_name.as_str())
}

fn query_of(sample: &Sample, pid: i32) -> &str {
    backend(sample, pid).map_or("", |b| b.query.as_str())
}

fn normalise(sql: &str) -> String {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(';')
        .to_string()
}

/// The migration statement a blocking migration backend was running: by
/// its query text first (independent of clocks), else by the timeline's
/// StatementBegin/End events around the moment the wait began.
fn attribute(
    sample: &Sample,
    blocker: &Blocker,
    pending: &[Migration],
    timeline: Option<TimelineRef<'_>>,
    at_us: u64,
) -> Option<StatementRef> {
    let running = normalise(query_of(sample, blocker.pid));
    if !running.is_empty() {
        for m in pending {
            for (index, s) in m.statements.iter().enumerate() {
                let text = normalise(&s.sql);
                // pg_stat_activity shows at most 300 characters here, and a
                // runner may send several statements in one string.
                let prefix: String = text.chars().take(running.chars().count()).collect();
                if !text.is_empty() && (running.contains(&text) || prefix == running) {
                    return Some(StatementRef {
                        version: m.version.clone(),
                        index,
                        line: s.line,
                    });
                }
            }
        }
    }
    let t = timeline?;
    let actor = blocker.holder.actor()?;
    let at = i64::try_from(at_us).ok()? - t.offset_us;
    let mut current = None;
    for e in t.timeline.of(actor) {
        if i64::try_from(e.at_us).ok()? > at {
            break;
        }
        match &e.kind {
            EventKind::StatementBegin {
                version,
                index,
                line,
            } => {
                current = Some(StatementRef {
                    version: version.clone(),
                    index: *index,
                    line: *line,
                });
            }
            EventKind::StatementEnd { .. } => current = None,
            _ => {}
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::super::sampler::LockRow;
    use super::*;

    fn row(pid: i32, rel: &str, mode: LockMode, granted: bool, blocked_by: &[i32]) -> LockRow {
        LockRow {
            pid,
            locktype: LockType::Relation,
            mode,
            granted,
            relation: Some(rel.into()),
            oid: None,
            object: None,
            blocked_by: blocked_by.to_vec(),
        }
    }

    fn backends() -> Vec<Backend> {
        let b = |pid, app: &str, query: &str| Backend {
            pid,
            application_name: app.into(),
            query: query.into(),
        };
        vec![
            b(1, "report", "SELECT count(*) FROM t"),
            b(2, "rehearse-replica-0", "ALTER TABLE t ADD COLUMN c int"),
            b(3, "app-v1", "SELECT * FROM t WHERE id = 1"),
        ]
    }

    /// A long read holds ACCESS SHARE; the migration's ALTER queues; a later
    /// SELECT waits behind the queued ALTER (the lock-queue effect).
    fn lock_queue_samples() -> Samples {
        use LockMode::*;
        let s = |at_us, locks| Sample {
            at_us,
            locks,
            backends: backends(),
        };
        Samples {
            interval_us: 10_000,
            missed: 0,
            duration_us: 50_000,
            existing: None,
            catalog: false,
            samples: vec![
                s(0, vec![row(1, "public.t", AccessShare, true, &[])]),
                s(
                    10_000,
                    vec![
                        row(1, "public.t", AccessShare, true, &[]),
                        row(2, "public.t", AccessExclusive, false, &[1]),
                    ],
                ),
                s(
                    20_000,
                    vec![
                        row(1, "public.t", AccessShare, true, &[]),
                        row(2, "public.t", AccessExclusive, false, &[1]),
                        row(3, "public.t", AccessShare, false, &[2]),
                    ],
                ),
                s(
                    30_000,
                    vec![
                        row(2, "public.t", AccessExclusive, true, &[]),
                        row(3, "public.t", AccessShare, false, &[2]),
                    ],
                ),
                s(40_000, vec![row(3, "public.t", AccessShare, true, &[])]),
            ],
        }
    }

    fn pending() -> Vec<Migration> {
        vec![Migration {
            version: "0002".into(),
            description: String::new(),
            kind: crate::migrate::MigrationKind::Versioned,
            path: "0002.sql".into(),
            statements: vec![crate::migrate::Statement {
                sql: "ALTER TABLE t\n  ADD COLUMN c int;".into(),
                line: 3,
            }],
            transactional: true,
            down: None,
        }]
    }

    #[test]
    fn lock_queue_is_seen_and_attributed_to_the_statement() {
        let a = analyse(&lock_queue_samples(), &pending(), None);
        let queued: Vec<&Wait> = a.queued_waits().collect();
        assert_eq!(queued.len(), 1, "{a:#?}");
        assert_eq!(queued[0].holder, Holder::App("app-v1".into()));
        assert_eq!(queued[0].wait_us, 20_000);
        assert_eq!(
            queued[0].statement,
            Some(StatementRef {
                version: "0002".into(),
                index: 0,
                line: 3
            })
        );
        // The ALTER itself waited behind a held lock, not a queue.
        let alter = a.waits.iter().find(|w| w.pid == 2).unwrap();
        assert!(!alter.behind_queue());
        assert_eq!(alter.blocked_by[0].holder, Holder::App("report".into()));
        assert_eq!(a.max_app_wait_us(), 20_000);
    }

    #[test]
    fn holds_and_blocked_backend_seconds() {
        let a = analyse(&lock_queue_samples(), &[], None);
        let ae = a.max_access_exclusive().unwrap();
        assert_eq!(ae.relation, "public.t");
        assert_eq!(ae.max_hold_us, 10_000);
        assert_eq!(ae.holders, vec![Holder::Replica(0)]);
        let share = a
            .relations
            .iter()
            .find(|r| r.mode == LockMode::AccessShare)
            .unwrap();
        assert_eq!(share.total_hold_us, 30_000 + 10_000);
        // waiting: 0,1,2,1,0 backends x 10 ms
        assert!(
            (a.blocked_backend_seconds - 0.04).abs() < 1e-9,
            "{}",
            a.blocked_backend_seconds
        );
        let counts: Vec<u32> = a.queue.iter().map(|q| q.waiting).collect();
        assert_eq!(counts, [0, 1, 2, 1, 0]);
    }

    #[test]
    fn timeline_attributes_when_the_query_text_is_unknown() {
        let mut samples = lock_queue_samples();
        for s in &mut samples.samples {
            for b in &mut s.backends {
                b.query = String::new();
            }
        }
        let timeline = Timeline {
            events: vec![crate::timeline::Event {
                at_us: 5_000,
                actor: Actor::Replica(0),
                kind: EventKind::StatementBegin {
                    version: "0002".into(),
                    index: 0,
                    line: 3,
                },
            }],
        };
        let a = analyse(
            &samples,
            &[],
            Some(TimelineRef {
                timeline: &timeline,
                offset_us: 0,
            }),
        );
        let queued = a.queued_waits().next().unwrap();
        assert_eq!(queued.statement.as_ref().map(|s| s.line), Some(3));
    }

    #[test]
    fn sampler_times_map_onto_the_timeline() {
        let timeline = Timeline::default();
        let on = |offset_us| {
            analyse(
                &lock_queue_samples(),
                &[],
                Some(TimelineRef {
                    timeline: &timeline,
                    offset_us,
                }),
            )
        };
        // The timeline started 4 ms after the sampler.
        let a = on(4_000);
        assert_eq!(a.timeline_offset_us, Some(4_000));
        assert_eq!(a.timeline_us(30_000), 26_000);
        assert_eq!(a.timeline_us(1_000), 0, "before the timeline's zero");
        assert_eq!(on(-2_000).timeline_us(30_000), 32_000);
        let unknown = analyse(&lock_queue_samples(), &[], None);
        assert_eq!(unknown.timeline_offset_us, None);
        assert_eq!(unknown.timeline_us(30_000), 30_000);
        // Reports written before the offset was recorded still load.
        let mut old = serde_json::to_value(&unknown).unwrap();
        old.as_object_mut().unwrap().remove("timeline_offset_us");
        let back: LockAnalysis = serde_json::from_value(old).unwrap();
        assert_eq!(back, unknown);
    }

    /// Only relations that existed when sampling began can block: an index
    /// and a toast table fold into their table, a relation the migration
    /// created (named, or by bare oid after a rollback) and a catalog are
    /// left out, and the bookkeeping table is kept apart.
    #[test]
    fn holds_fold_into_existing_tables_and_new_relations_are_left_out() {
        use LockMode::*;
        let with_oid = |oid: u32, rel: &str, mode| LockRow {
            oid: Some(oid),
            ..row(2, rel, mode, true, &[])
        };
        let locks = vec![
            with_oid(20_000, "public.t", Share),
            with_oid(20_001, "public.t_pkey", Share),
            with_oid(20_002, "pg_toast.pg_toast_20000", Share),
            with_oid(30_000, "public.t_new_idx", AccessExclusive),
            with_oid(30_001, "30001", AccessExclusive),
            with_oid(1_259, "pg_catalog.pg_class", RowExclusive),
            with_oid(20_010, "public.rehearse_naive_migrations", AccessExclusive),
            with_oid(
                20_011,
                "public.rehearse_naive_migrations_id_seq",
                AccessExclusive,
            ),
        ];
        let existing = [
            (20_000, "public.t"),
            (20_001, "public.t"),
            (20_002, "public.t"),
            (20_010, "public.rehearse_naive_migrations"),
            (20_011, "public.rehearse_naive_migrations"),
        ];
        let samples = Samples {
            interval_us: 10_000,
            missed: 0,
            duration_us: 20_000,
            catalog: false,
            existing: Some(
                existing
                    .iter()
                    .map(|(o, n)| (*o, (*n).to_string()))
                    .collect(),
            ),
            samples: (0..2)
                .map(|i| Sample {
                    at_us: i * 10_000,
                    locks: locks.clone(),
                    backends: backends(),
                })
                .collect(),
        };
        let a = analyse(&samples, &[], None);
        let holds: Vec<(&str, LockMode)> = a
            .holds
            .iter()
            .map(|h| (h.relation.as_str(), h.mode))
            .collect();
        assert_eq!(holds, [("public.t", Share)], "{a:#?}");
        assert_eq!(a.holds[0].hold_us, 20_000);
        assert_eq!(a.relations.len(), 1);
        assert_eq!(a.bookkeeping.len(), 1);
        assert_eq!(
            a.bookkeeping[0].relation,
            "public.rehearse_naive_migrations"
        );
        assert_eq!(a.hidden_holds, 3);
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            !json.contains("30001") && !json.contains("pg_class"),
            "{json}"
        );
    }

    #[test]
    fn application_names_map_to_holders() {
        assert_eq!(
            Holder::from_application_name("rehearse-replica-7"),
            Holder::Replica(7)
        );
        assert_eq!(Holder::from_application_name("rehearse-job"), Holder::Job);
        assert!(!Holder::from_application_name("app-v2").is_migration());
    }
}

#[cfg(test)]
mod trace_attribution_tests {
    use super::super::trace::{HeldLock, TraceOutcome, TracedStatement};
    use super::*;

    fn traced(
        index: usize,
        line: usize,
        sql: &str,
        acquired: &[(LockMode, &str)],
    ) -> TracedStatement {
        TracedStatement {
            version: "0002".into(),
            index,
            line,
            sql: sql.into(),
            duration_us: 1_000,
            acquired: acquired
                .iter()
                .map(|(mode, relation)| HeldLock {
                    locktype: LockType::Relation,
                    mode: *mode,
                    relation: Some((*relation).into()),
                    relkind: Some("r".into()),
                    object: None,
                })
                .collect(),
            rewritten: Vec::new(),
            lock_timeout: "0".into(),
            outcome: TraceOutcome::Ran,
            ..TracedStatement::default()
        }
    }

    fn wait(relation: &str, mode: LockMode, blocker: Holder) -> Wait {
        Wait {
            pid: 10,
            holder: Holder::App("app-v1".into()),
            locktype: LockType::Relation,
            mode,
            relation: Some(relation.into()),
            from_us: 0,
            to_us: 100_000,
            wait_us: 100_000,
            blocked_by: vec![Blocker {
                pid: 2,
                holder: blocker,
                queued: false,
            }],
            // The blocker was sleeping in statement 3 when the wait began.
            statement: Some(StatementRef {
                version: "0002".into(),
                index: 2,
                line: 5,
            }),
            lock_taken_by: None,
            query: "SELECT 1".into(),
        }
    }

    #[test]
    fn waits_are_attributed_to_the_statement_that_took_the_lock() {
        let trace = Trace {
            statements: vec![
                traced(
                    0,
                    3,
                    "ALTER TABLE accounts ADD c int",
                    &[(LockMode::AccessExclusive, "public.accounts")],
                ),
                traced(
                    1,
                    4,
                    "CREATE INDEX ON orders (x)",
                    &[(LockMode::Share, "public.orders")],
                ),
                traced(2, 5, "SELECT pg_sleep(1)", &[]),
            ],
            ..Trace::default()
        };
        let mut analysis = LockAnalysis {
            waits: vec![
                wait("public.accounts", LockMode::AccessShare, Holder::Replica(0)),
                // SHARE does not conflict with a read: not this statement's doing.
                wait("public.orders", LockMode::AccessShare, Holder::Replica(0)),
                wait("public.orders", LockMode::RowExclusive, Holder::Replica(0)),
                // Blocked by an application, not a migration.
                wait(
                    "public.accounts",
                    LockMode::AccessShare,
                    Holder::App("batch".into()),
                ),
            ],
            ..LockAnalysis::default()
        };
        analysis.attribute_to_trace(&trace);
        let taken: Vec<Option<(usize, usize)>> = analysis
            .waits
            .iter()
            .map(|w| w.lock_taken_by.as_ref().map(|s| (s.index, s.line)))
            .collect();
        assert_eq!(taken, [Some((0, 3)), None, Some((1, 4)), None]);
    }
}
