//! Rollout plans: the deploy as steps over time, with each
//! version's app workload serving while migrations run, replicas are
//! replaced one at a time and the old code comes back on rollback.
//!
//! Every step is a phase; the clients record which phase each execution ran
//! in, the migration emits its statements into the same timeline, and every
//! schema state the plan reaches is probed with PREPARE for every version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::compat::{CompatReport, Phase, Probe, build_compat, probe};
use crate::migrate::runner::{FaultHook, ReplicaCtx, run_replica, sql};
use crate::migrate::{Migration, RunnerKind};
use crate::provision::ConnInfo;
use crate::rehearsal::RaceConfig;
pub use crate::scenario::rollout::{
    Migrator, PlanShorthand, RolloutConfig, RolloutSpec, Step, versions_of,
};
use crate::timeline::{Actor, EventKind, ExitStatus, RaceRecord, Recorder, Timeline};
use crate::workload::{
    ClientPool, Execution, TrafficReport, Workload, WorkloadRun, traffic_report,
};

/// What a rollout recorded.
#[derive(Debug, Clone)]
pub struct RolloutOutcome {
    pub compat: CompatReport,
    pub traffic: TrafficReport,
    pub timeline: Timeline,
    pub executions: Vec<Execution>,
    /// The migrators' own record when `[replicas]` set them (replicas
    /// racing at startup, or the job with its settings): what the race
    /// checks read, next to the traffic they caused.
    pub race: Option<RaceRecord>,
}

/// The fleet and the phases as the rollout moves through its steps.
struct Fleet {
    run: WorkloadRun,
    workloads: BTreeMap<String, Arc<Workload>>,
    slots: Vec<ClientPool>,
    phases: Vec<Phase>,
    state: usize,
}

impl Fleet {
    fn versions(&self) -> Vec<String> {
        self.slots.iter().map(|p| p.version.clone()).collect()
    }

    fn begin(&mut self, name: String, rollback: bool) {
        self.begin_phase(name, rollback, false);
    }

    /// Begins the phase in which `slots` will run `version`, before their
    /// new clients start: the new replica's first queries belong to it.
    fn begin_replacing(&mut self, name: String, rollback: bool, slots: &[usize], version: &str) {
        let mut fleet = self.versions();
        for &slot in slots {
            if slot < fleet.len() {
                fleet[slot] = version.to_string();
            } else {
                fleet.push(version.to_string());
            }
        }
        self.begin_with(name, rollback, false, fleet);
    }

    fn begin_phase(&mut self, name: String, rollback: bool, migrating: bool) {
        let fleet = self.versions();
        self.begin_with(name, rollback, migrating, fleet);
    }

    fn begin_with(&mut self, name: String, rollback: bool, migrating: bool, fleet: Vec<String>) {
        let now = self.run.recorder.now_us();
        if let Some(last) = self.phases.last_mut() {
            last.end_us = now;
        }
        let index = self.phases.len();
        self.phases.push(Phase {
            index,
            name: name.clone(),
            state: self.state,
            fleet,
            rollback,
            migrating,
            start_us: now,
            end_us: now,
        });
        self.run.phase.store(index, Ordering::Relaxed);
        self.run
            .recorder
            .emit(Actor::Harness, EventKind::Phase { index, name });
    }

    async fn replace(&mut self, slot: usize, version: &str) -> Result<(), String> {
        let workload = self
            .workloads
            .get(version)
            .ok_or_else(|| format!("no workload for version `{version}`"))?
            .clone();
        let pool = ClientPool::start(&self.run, &workload);
        if slot < self.slots.len() {
            let old = std::mem::replace(&mut self.slots[slot], pool);
            old.stop().await;
        } else {
            self.slots.push(pool);
        }
        Ok(())
    }

    async fn stop_all(&mut self) {
        for pool in std::mem::take(&mut self.slots) {
            pool.stop().await;
        }
    }

    /// Ends every client now, without waiting for its query (a rollout
    /// past its deadline).
    fn abort_all(&mut self) {
        for pool in std::mem::take(&mut self.slots) {
            pool.abort();
        }
    }
}

/// Runs the rollout on `target` (a clone with the baseline applied), every
/// event recorded into `recorder` (its origin is the timeline's zero).
pub async fn run_rollout(
    target: &ConnInfo,
    config: &RolloutConfig,
    steps: &[Step],
    workloads: &[Workload],
    pending: &[Migration],
    migrator: Option<&RaceConfig>,
    recorder: Recorder,
) -> Result<RolloutOutcome, String> {
    let migrate_steps = steps
        .iter()
        .filter(|s| matches!(s, Step::Migrate(_) | Step::Backfill { .. }))
        .count();
    if let Some(c) = migrator
        && matches!(c.runner, RunnerKind::Command | RunnerKind::Container)
        && migrate_steps > 1
    {
        return Err(format!(
            "runner `{}` applies the whole directory at once: a rollout with it can have one \
             `migrate` step, not {migrate_steps}",
            c.runner.name()
        ));
    }
    let run = WorkloadRun::new(target.clone(), recorder.clone());
    let all: Vec<Arc<Workload>> = run
        .prepare(workloads)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    // Printed above the progress bars, not through them.
    crate::progress::bars().suspend(|| {
        for w in &all {
            for q in w.queries.iter().filter(|q| q.weight == 0) {
                if let Some(note) = &q.note {
                    eprintln!(
                        "rehearse: {}: query `{}` is only prepared, not run live: {note}",
                        w.path.display(),
                        q.name
                    );
                }
            }
        }
    });
    let harness = target
        .connect("rehearse-harness")
        .await
        .map_err(|e| e.to_string())?;
    let mut states = vec!["baseline".to_string()];
    let mut probes: Vec<Probe> = probe(&harness, 0, &all).await;
    let mut fleet = Fleet {
        run: run.clone(),
        workloads: all.iter().map(|w| (w.version.clone(), w.clone())).collect(),
        slots: Vec::new(),
        phases: Vec::new(),
        state: 0,
    };
    let phase = Duration::from_millis(config.phase_ms);
    let mut next = 0usize;
    let deadline = Duration::from_secs(config.deadline_s);
    let steps_run = async {
        for step in steps {
            match step {
                Step::Serve(v) => {
                    let slots: Vec<usize> = (0..config.replicas as usize).collect();
                    fleet.begin_replacing(format!("serve {v}"), false, &slots, v);
                    for slot in slots {
                        fleet.replace(slot, v).await?;
                    }
                    tokio::time::sleep(phase).await;
                }
                Step::Migrate(upto) => {
                    let end = match upto.as_deref() {
                        None => pending.len(),
                        Some("+1") => (next + 1).min(pending.len()),
                        Some(v) => {
                            next + 1
                                + pending[next..]
                                    .iter()
                                    .position(|m| m.version == v)
                                    .ok_or_else(|| {
                                        format!("step `migrate {v}`: no pending migration {v} left")
                                    })?
                        }
                    };
                    let batch = &pending[next..end];
                    next = end;
                    if batch.is_empty() {
                        continue;
                    }
                    let label = batch
                        .iter()
                        .map(|m| m.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    fleet.begin_phase(format!("migrate {label}"), false, true);
                    if let Err(reason) = migrate(target, &harness, &recorder, migrator, batch).await
                    {
                        // A failed migration halts the rollout: no later step
                        // (deploy, contract) runs, as in production.
                        recorder.emit(Actor::Harness, EventKind::RolloutHalted { reason });
                        break;
                    }
                    fleet.state += 1;
                    states.push(format!("after {label}"));
                    fleet.begin(format!("serve after {label}"), false);
                    probes.extend(probe(&harness, fleet.state, &all).await);
                    tokio::time::sleep(phase).await;
                }
                Step::Backfill {
                    version,
                    batch,
                    pause_ms,
                } => {
                    let Some(m) = pending.get(next).filter(|m| m.version == *version) else {
                        return Err(format!(
                            "step `backfill {version}`: {version} is not the next pending migration"
                        ));
                    };
                    next += 1;
                    fleet.begin_phase(format!("backfill {version}"), false, true);
                    let lock_timeout = migrator.and_then(|c| c.lock_timeout_ms);
                    let run = Backfill {
                        batch: *batch,
                        pause: Duration::from_millis(*pause_ms),
                        lock_timeout_ms: lock_timeout,
                    };
                    match run.run(target, &recorder, m).await {
                        Ok(figures) => {
                            if let Some(phase) = fleet.phases.last_mut() {
                                phase.name = format!("backfill {version} ({figures})");
                            }
                        }
                        Err(reason) => {
                            recorder.emit(Actor::Harness, EventKind::RolloutHalted { reason });
                            break;
                        }
                    }
                    fleet.state += 1;
                    states.push(format!("after {version}"));
                    fleet.begin(format!("serve after {version}"), false);
                    probes.extend(probe(&harness, fleet.state, &all).await);
                    tokio::time::sleep(phase).await;
                }
                Step::Deploy { version, count } => {
                    let targets: Vec<usize> = (0..fleet.slots.len())
                        .filter(|&i| fleet.slots[i].version != *version)
                        .take(count.map_or(usize::MAX, |c| c as usize))
                        .collect();
                    let total = targets.len();
                    for (i, slot) in targets.into_iter().enumerate() {
                        fleet.begin_replacing(
                            format!("deploy {version} ({}/{total})", i + 1),
                            false,
                            &[slot],
                            version,
                        );
                        fleet.replace(slot, version).await?;
                        tokio::time::sleep(phase).await;
                    }
                }
                Step::Rollback(v) => {
                    let slots: Vec<usize> = (0..fleet.slots.len()).collect();
                    fleet.begin_replacing(format!("rollback to {v}"), true, &slots, v);
                    for slot in slots {
                        fleet.replace(slot, v).await?;
                    }
                    tokio::time::sleep(phase).await;
                }
            }
        }
        Ok::<(), String>(())
    };
    let result = tokio::time::timeout(deadline, steps_run).await;
    if let Some(last) = fleet.phases.last_mut() {
        last.end_us = recorder.now_us();
    }
    if result.is_err() {
        // Past the deadline: the migration's statements may still run (or
        // wait) server-side, and clients wait behind them. End them all now
        // rather than waiting out their statement timeouts.
        fleet.abort_all();
        terminate_rollout_backends(&harness).await;
    } else {
        fleet.stop_all().await;
    }
    match result {
        Err(_) => {
            return Err(format!(
                "rollout did not finish within deadline_s = {}: its migration and clients were \
                 stopped",
                config.deadline_s
            ));
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
    }

    let first = match steps.first() {
        Some(Step::Serve(v)) => v.clone(),
        _ => String::new(),
    };
    let last_state = states.len() - 1;
    let timeline = recorder.timeline();
    // After a halt, the schema later versions were written for was never
    // reached: they have no home state to be judged against.
    let halted = timeline
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::RolloutHalted { .. }));
    let home: BTreeMap<String, usize> = all
        .iter()
        .filter(|w| !halted || w.version == first)
        .map(|w| {
            (
                w.version.clone(),
                if w.version == first { 0 } else { last_state },
            )
        })
        .collect();
    let executions = run.executions();
    let compat = build_compat(states, home, &fleet.phases, &probes, &executions)?;
    let traffic = traffic_report(
        &fleet.phases,
        &executions,
        &timeline,
        config.stall_ms.saturating_mul(1000),
    );
    let race = match migrator {
        Some(c) => Some(race_record(&harness, c, pending, timeline.clone()).await),
        None => None,
    };
    Ok(RolloutOutcome {
        compat,
        traffic,
        timeline,
        executions,
        race,
    })
}

// Every backend of this rollout's database but the harness's own and the
// lock sampler's: migrators and app clients.
const TERMINATE_ROLLOUT: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
    WHERE datname = current_database() AND pid <> pg_backend_pid() \
      AND application_name LIKE 'rehearse-%' AND application_name <> 'rehearse-lock-sampler'";

async fn terminate_rollout_backends(harness: &tokio_postgres::Client) {
    let _ = harness.execute(TERMINATE_ROLLOUT, &[]).await;
}

/// What the migrators left, for the race checks: their timeline, the
/// bookkeeping, advisory locks still held and invalid indexes.
async fn race_record(
    harness: &tokio_postgres::Client,
    config: &RaceConfig,
    pending: &[Migration],
    timeline: Timeline,
) -> RaceRecord {
    use crate::migrate::snapshot;
    let replicas = match Migrator::of(config.runner) {
        Migrator::Job => 1,
        Migrator::StartupCoupled => config.count,
    };
    RaceRecord {
        runner: config.runner.name().to_string(),
        replicas,
        pending: pending.iter().map(|m| m.version.clone()).collect(),
        timeline,
        leaked_locks: snapshot::advisory_locks(harness)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|l| {
                l.application_name
                    .as_deref()
                    .is_some_and(|a| a.starts_with("rehearse-replica-") || a == "rehearse-job")
            })
            .collect(),
        invalid_indexes: snapshot::invalid_indexes(harness).await.unwrap_or_default(),
        bookkeeping: crate::migrate::tool_bookkeeping_state(
            harness,
            config.runner,
            config.layout,
            config.tool().as_ref(),
        )
        .await
        .unwrap_or_default(),
        ..RaceRecord::default()
    }
}

/// Performs one `migrate` step with the scenario's migrator: one job, or
/// `count` replicas migrating as they start (see [`Migrator`]). `Err`
/// (the rollout halts) when the job failed, or when no replica succeeded.
async fn migrate(
    target: &ConnInfo,
    harness: &tokio_postgres::Client,
    recorder: &Recorder,
    migrator: Option<&RaceConfig>,
    batch: &[Migration],
) -> Result<(), String> {
    let ctx = |actor: Actor, config: Option<&RaceConfig>| ReplicaCtx {
        actor,
        conn: target.clone(),
        recorder: recorder.clone(),
        lock_timeout: config
            .and_then(|c| c.lock_timeout_ms)
            .map(Duration::from_millis),
        hold_failed_connection: config.is_some_and(|c| c.hold_failed_connection),
        fault: None,
        command: config.map(|c| c.command.clone()).unwrap_or_default(),
        workdir: config.and_then(|c| c.workdir.clone()),
        container: config.and_then(|c| c.container.clone()),
        layout: config.map_or(crate::migrate::Layout::Auto, |c| c.layout),
    };
    let Some(config) = migrator else {
        // No `[replicas]`: one job applies the migrations in order.
        let ctx = ctx(Actor::Job, None);
        let end = run_replica(RunnerKind::Naive, &ctx, batch).await;
        return job_result(recorder, end.status);
    };
    let fault = |actor: Actor| {
        config.fault.as_ref().map(|f| {
            let process = matches!(config.runner, RunnerKind::Command | RunnerKind::Container);
            let all: Vec<(String, usize)> = batch
                .iter()
                .flat_map(|m| (0..m.statements.len()).map(move |i| (m.version.clone(), i)))
                .collect();
            // The user's tool is killed once it is seen running a query.
            let (version, index) = if process || all.is_empty() {
                (String::new(), 0)
            } else {
                match f.statement {
                    Some(i) => all[i.min(all.len() - 1)].clone(),
                    None => all[rand::random_range(0..all.len())].clone(),
                }
            };
            Arc::new(FaultHook::new(actor, version, index))
        })
    };
    let timeout = Duration::from_secs(config.timeout_s);
    match Migrator::of(config.runner) {
        Migrator::Job => {
            let mut ctx = ctx(Actor::Job, Some(config));
            ctx.fault = fault(Actor::Job);
            ctx.emit(EventKind::Started);
            let status = bounded(harness, &ctx, config.runner, batch, timeout).await;
            job_result(recorder, status)
        }
        Migrator::StartupCoupled => {
            let hook = config
                .fault
                .as_ref()
                .and_then(|f| fault(Actor::Replica(f.replica)));
            let mut tasks = Vec::new();
            for n in 0..config.count {
                let mut ctx = ctx(Actor::Replica(n), Some(config));
                ctx.fault = hook.clone();
                let jitter = config.jitter_ms;
                let kind = config.runner;
                let batch = batch.to_vec();
                tasks.push(async move {
                    if jitter > 0 {
                        // Start jitter is part of the scenario.
                        tokio::time::sleep(Duration::from_millis(rand::random_range(0..=jitter)))
                            .await;
                    }
                    ctx.emit(EventKind::Started);
                    bounded(harness, &ctx, kind, &batch, timeout).await
                });
            }
            let ends = futures_util::future::join_all(tasks).await;
            if ends.contains(&ExitStatus::Success) {
                Ok(())
            } else {
                Err(format!(
                    "none of the {} replicas migrating at startup succeeded",
                    config.count
                ))
            }
        }
    }
}

/// A batched backfill as the migration job runs it: each statement again
/// and again, each run its own transaction (autocommit), until it changes
/// no row. Row locks last one batch, not the whole backfill (REFERENCE.md,
/// "Large UPDATE backfills"). Every run is a statement in the timeline, so
/// the traffic report and the lock sampler show per-batch figures.
struct Backfill {
    batch: Option<u64>,
    pause: Duration,
    lock_timeout_ms: Option<u64>,
}

/// A backfill that never reaches zero rows is stopped here.
const MAX_BATCHES: u64 = 100_000;

/// What a backfill did, for the phase's name.
struct BackfillFigures {
    batches: u64,
    rows: u64,
    longest_us: u64,
}

impl std::fmt::Display for BackfillFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} batches, {} rows, longest batch {} ms",
            self.batches,
            self.rows,
            self.longest_us / 1_000
        )
    }
}

impl Backfill {
    async fn run(
        &self,
        target: &ConnInfo,
        recorder: &Recorder,
        m: &Migration,
    ) -> Result<BackfillFigures, String> {
        let actor = Actor::Job;
        let fail = |line: Option<usize>, e: &tokio_postgres::Error| {
            let message = crate::provision::describe_pg_error(e);
            recorder.emit(
                actor,
                EventKind::Failed {
                    version: Some(m.version.clone()),
                    line,
                    sqlstate: e
                        .code()
                        .map(|c| crate::timeline::SqlState::from_code(c.code())),
                    message: message.clone(),
                },
            );
            format!(
                "backfill {}{} failed during the rollout: {message}",
                m.version,
                line.map(|l| format!(" line {l}")).unwrap_or_default()
            )
        };
        let client = target
            .connect(&crate::migrate::application_name(actor))
            .await
            .map_err(|e| format!("backfill {}: connecting: {e}", m.version))?;
        if let Some(ms) = self.lock_timeout_ms {
            client
                .batch_execute(&format!("SET lock_timeout = {ms}"))
                .await
                .map_err(|e| fail(None, &e))?;
        }
        recorder.emit(actor, EventKind::Started);
        let started = recorder.now_us();
        let mut figures = BackfillFigures {
            batches: 0,
            rows: 0,
            longest_us: 0,
        };
        for (index, statement) in m.statements.iter().enumerate() {
            let sql = match self.batch {
                Some(n) => statement.sql.replace("{batch}", &n.to_string()),
                None => statement.sql.clone(),
            };
            for _ in 0..MAX_BATCHES {
                let (version, line) = (m.version.clone(), statement.line);
                recorder.emit(
                    actor,
                    EventKind::StatementBegin {
                        version: version.clone(),
                        index,
                        line,
                    },
                );
                let at = recorder.now_us();
                let result = client.execute(sql.as_str(), &[]).await;
                recorder.emit(
                    actor,
                    EventKind::StatementEnd {
                        version,
                        index,
                        line,
                    },
                );
                let changed = result.map_err(|e| fail(Some(line), &e))?;
                figures.batches += 1;
                figures.longest_us = figures.longest_us.max(recorder.now_us() - at);
                if changed == 0 {
                    break;
                }
                figures.rows += changed;
                tokio::time::sleep(self.pause).await;
            }
        }
        recorder.emit(
            actor,
            EventKind::Applied {
                version: m.version.clone(),
                duration_us: recorder.now_us() - started,
            },
        );
        recorder.emit(
            actor,
            EventKind::Exited {
                status: ExitStatus::Success,
                code: Some(0),
            },
        );
        Ok(figures)
    }
}

/// Runs one migrator, bounded by `timeout` (its backends terminated when
/// it runs over), and records how it exited.
async fn bounded(
    harness: &tokio_postgres::Client,
    ctx: &ReplicaCtx,
    kind: RunnerKind,
    batch: &[Migration],
    timeout: Duration,
) -> ExitStatus {
    let status = match tokio::time::timeout(timeout, run_replica(kind, ctx, batch)).await {
        // A connection a failed replica keeps open is closed here: the
        // rollout's later steps do not wait on it.
        Ok(end) => end.status,
        Err(_) => {
            let _ = harness
                .execute(sql::TERMINATE_BY_APP, &[&ctx.app_name()])
                .await;
            ExitStatus::TimedOut
        }
    };
    ctx.emit(EventKind::Exited { status, code: None });
    status
}

/// The job's outcome: `Err` with its failure, which halts the rollout.
fn job_result(recorder: &Recorder, status: ExitStatus) -> Result<(), String> {
    if status == ExitStatus::Success {
        return Ok(());
    }
    let timeline = recorder.timeline();
    let failure = timeline
        .of(Actor::Job)
        .filter_map(|e| match &e.kind {
            EventKind::Failed {
                version,
                line,
                message,
                ..
            } => Some(format!(
                "migration {}{} failed during the rollout: {message}",
                version.as_deref().unwrap_or("?"),
                line.map(|l| format!(" line {l}")).unwrap_or_default()
            )),
            _ => None,
        })
        .last();
    Err(failure.unwrap_or_else(|| format!("the migration job ended {status:?} during the rollout")))
}
