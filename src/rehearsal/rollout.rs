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

use serde::{Deserialize, Serialize};

use crate::compat::{CompatReport, Phase, Probe, build_compat, probe};
use crate::migrate::runner::{FaultHook, ReplicaCtx, run_replica, sql};
use crate::migrate::{Migration, RunnerKind};
use crate::provision::ConnInfo;
use crate::rehearsal::RaceConfig;
use crate::timeline::{Actor, EventKind, ExitStatus, RaceRecord, Recorder, Timeline};
use crate::workload::{
    ClientPool, Execution, TrafficReport, Workload, WorkloadRun, traffic_report,
};

/// Shorthands for the common plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanShorthand {
    /// serve from -> migrate (all) -> deploy to.
    MigrateThenDeploy,
    /// serve from -> deploy to -> migrate (all).
    DeployThenMigrate,
    /// serve from -> migrate the first pending (expand) -> deploy to ->
    /// migrate the rest (contract).
    ExpandContract,
}

/// The `[rollout]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default)]
    pub plan: Option<PlanShorthand>,
    /// Explicit steps: `serve <v>`, `migrate [<version>]`,
    /// `deploy <v> [<replicas>]`, `rollback <v>`.
    #[serde(default)]
    pub steps: Vec<String>,
    /// The version serving before the rollout (shorthands).
    #[serde(default = "default_from")]
    pub from: String,
    /// The version being deployed (shorthands).
    #[serde(default = "default_to")]
    pub to: String,
    /// Shorthands: end by rolling back to `from`.
    #[serde(default)]
    pub rollback: bool,
    /// App replicas; each runs its version's `clients`.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// How long each serving phase lasts.
    #[serde(default = "default_phase_ms")]
    pub phase_ms: u64,
    /// An execution at least this slow is a stall.
    #[serde(default = "default_stall_ms")]
    pub stall_ms: u64,
    /// Bound on the whole rollout.
    #[serde(default = "default_deadline_s")]
    pub deadline_s: u64,
}

fn default_from() -> String {
    "old".into()
}
fn default_to() -> String {
    "new".into()
}
fn default_replicas() -> u32 {
    2
}
fn default_phase_ms() -> u64 {
    1000
}
fn default_stall_ms() -> u64 {
    1000
}
fn default_deadline_s() -> u64 {
    120
}

/// A checked `[rollout]` section: its settings and expanded steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    pub config: RolloutConfig,
    pub steps: Vec<Step>,
    /// The scenario's `[replicas]` section, when it has one: who performs
    /// the `migrate` steps (see [`Migrator`]). `None`: one migration job
    /// applying the migrations in order, with no lock and no settings.
    #[serde(default)]
    pub migrator: Option<RaceConfig>,
}

/// Who performs a rollout's `migrate` steps, from `[replicas] runner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrator {
    /// One gated job (`job`, `command`, `container`): the deploy waits for
    /// it, and a failure halts the rollout.
    Job,
    /// `count` new replicas each migrate as they start (`naive`,
    /// `session-advisory-lock`, `xact-advisory-lock`, `try-lock`), racing
    /// each other while the old version serves.
    StartupCoupled,
}

impl Migrator {
    #[must_use]
    pub fn of(runner: RunnerKind) -> Migrator {
        match runner {
            RunnerKind::Job | RunnerKind::Command | RunnerKind::Container => Migrator::Job,
            _ => Migrator::StartupCoupled,
        }
    }

    /// `[replicas]` keys that mean nothing for this migrator in a rollout:
    /// accepting them would rehearse something other than what the file
    /// says. Returns the key and why.
    #[must_use]
    pub fn unused_key(self, config: &RaceConfig, keys: &[String]) -> Option<(String, String)> {
        let has = |k: &str| keys.iter().any(|key| key == k);
        if config.fault.as_ref().is_some_and(|f| f.rerun) {
            // A fault halts the rollout (the deploy does not go on past a
            // failed migration); nothing re-runs it.
            return Some((
                "fault".into(),
                "`replicas.fault.rerun` does not apply in a rollout: the fault halts it; \
                 set `rerun = false`"
                    .into(),
            ));
        }
        match self {
            Migrator::Job => {
                for key in ["count", "jitter_ms", "hold_failed_connection"] {
                    if has(key) {
                        return Some((
                            key.to_string(),
                            format!(
                                "`replicas.{key}` does not apply in a rollout with runner `{}`: one \
                                 job performs the `migrate` steps (a startup-coupled runner such as \
                                 `naive` races `count` replicas instead)",
                                config.runner.name()
                            ),
                        ));
                    }
                }
                if config.fault.as_ref().is_some_and(|f| f.replica != 0) {
                    return Some((
                        "fault".into(),
                        "`replicas.fault.replica` must be 0 in a rollout with one migration job"
                            .into(),
                    ));
                }
                None
            }
            Migrator::StartupCoupled => ["command", "workdir", "container"]
                .into_iter()
                .find(|k| has(k))
                .map(|key| {
                    (
                        key.to_string(),
                        format!(
                            "`replicas.{key}` applies only to runner `command` or `container`, \
                             not `{}`",
                            config.runner.name()
                        ),
                    )
                }),
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Every replica runs this version.
    Serve(String),
    /// Apply pending migrations up to this version (all when `None`) while
    /// the fleet serves.
    Migrate(Option<String>),
    /// Replace replicas with this version one at a time (`count` of them,
    /// all when `None`).
    Deploy { version: String, count: Option<u32> },
    /// Every replica back to this version at once.
    Rollback(String),
    /// The next pending migration, `version`, is a batched backfill: each
    /// of its statements runs again and again, each run in its own
    /// transaction, until it changes no row, `pause_ms` apart. `{batch}`
    /// in a statement is replaced by `batch` (the rows per run).
    Backfill {
        version: String,
        batch: Option<u64>,
        pause_ms: u64,
    },
}

impl RolloutConfig {
    /// The steps, shorthand expanded; errors name the offending step.
    pub fn steps(&self) -> Result<Vec<Step>, (Option<usize>, String)> {
        if self.replicas == 0 || self.replicas > 16 {
            return Err((None, "`rollout.replicas` must be 1-16".into()));
        }
        if self.phase_ms == 0 || self.phase_ms > 600_000 {
            return Err((None, "`rollout.phase_ms` must be 1-600000".into()));
        }
        let mut steps = match (&self.plan, self.steps.is_empty()) {
            (Some(_), false) => {
                return Err((
                    None,
                    "`rollout`: give either `plan` or `steps`, not both".into(),
                ));
            }
            (None, true) => return Err((None, "`rollout` needs `plan` or `steps`".into())),
            (Some(plan), true) => {
                let (from, to) = (self.from.clone(), self.to.clone());
                let deploy = Step::Deploy {
                    version: to,
                    count: None,
                };
                match plan {
                    PlanShorthand::MigrateThenDeploy => {
                        vec![Step::Serve(from.clone()), Step::Migrate(None), deploy]
                    }
                    PlanShorthand::DeployThenMigrate => {
                        vec![Step::Serve(from.clone()), deploy, Step::Migrate(None)]
                    }
                    PlanShorthand::ExpandContract => vec![
                        Step::Serve(from.clone()),
                        Step::Migrate(Some("+1".into())),
                        deploy,
                        Step::Migrate(None),
                    ],
                }
            }
            (None, false) => {
                let mut steps = Vec::new();
                for (i, text) in self.steps.iter().enumerate() {
                    steps.push(parse_step(text).map_err(|e| (Some(i), e))?);
                }
                steps
            }
        };
        if self.plan.is_some() && self.rollback {
            steps.push(Step::Rollback(self.from.clone()));
        }
        if !matches!(steps.first(), Some(Step::Serve(_))) {
            return Err((Some(0), "the first step must be `serve <version>`".into()));
        }
        Ok(steps)
    }
}

fn parse_step(text: &str) -> Result<Step, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["serve", v] => Ok(Step::Serve((*v).into())),
        ["migrate"] => Ok(Step::Migrate(None)),
        ["migrate", v] => Ok(Step::Migrate(Some((*v).into()))),
        ["deploy", v] => Ok(Step::Deploy {
            version: (*v).into(),
            count: None,
        }),
        ["deploy", v, n] => match n.parse() {
            Ok(count) if count > 0 => Ok(Step::Deploy {
                version: (*v).into(),
                count: Some(count),
            }),
            _ => Err(format!(
                "step `{text}`: replica count must be a positive number"
            )),
        },
        ["rollback", v] => Ok(Step::Rollback((*v).into())),
        ["backfill", v, options @ ..] => {
            let (mut batch, mut pause_ms) = (None, 0);
            for option in options {
                let value = |key: &str| {
                    option
                        .strip_prefix(key)
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|n| *n > 0 || key == "pause_ms=")
                };
                if let Some(n) = value("batch=") {
                    batch = Some(n);
                } else if let Some(n) = value("pause_ms=") {
                    pause_ms = n;
                } else {
                    return Err(format!(
                        "step `{text}`: `{option}` is not `batch=<rows>` or `pause_ms=<ms>`"
                    ));
                }
            }
            Ok(Step::Backfill {
                version: (*v).into(),
                batch,
                pause_ms,
            })
        }
        _ => Err(format!(
            "step `{text}` is not one of `serve <version>`, `migrate [<version>]`, \
             `deploy <version> [<replicas>]`, `rollback <version>`, \
             `backfill <version> [batch=<rows>] [pause_ms=<ms>]`"
        )),
    }
}

/// The versions a list of steps runs.
#[must_use]
pub fn versions_of(steps: &[Step]) -> Vec<String> {
    let mut versions = Vec::new();
    for step in steps {
        let v = match step {
            Step::Serve(v) | Step::Rollback(v) | Step::Deploy { version: v, .. } => v,
            Step::Migrate(_) | Step::Backfill { .. } => continue,
        };
        if !versions.contains(v) {
            versions.push(v.clone());
        }
    }
    versions
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> RolloutConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn shorthands_expand() {
        let steps = config("plan = \"expand-contract\"\nrollback = true\n")
            .steps()
            .unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Serve("old".into()),
                Step::Migrate(Some("+1".into())),
                Step::Deploy {
                    version: "new".into(),
                    count: None
                },
                Step::Migrate(None),
                Step::Rollback("old".into()),
            ]
        );
        assert_eq!(versions_of(&steps), vec!["old", "new"]);
    }

    #[test]
    fn explicit_steps_parse_and_errors_name_the_step() {
        let steps =
            config("steps = [\"serve v1\", \"deploy v2 1\", \"migrate 0005\", \"rollback v1\"]\n")
                .steps()
                .unwrap();
        assert_eq!(steps.len(), 4);
        let (at, e) = config("steps = [\"serve v1\", \"launch v2\"]\n")
            .steps()
            .unwrap_err();
        assert_eq!(at, Some(1));
        assert!(e.contains("launch v2"), "{e}");
        let steps = config("steps = [\"serve v1\", \"backfill 0003 batch=500 pause_ms=20\"]\n")
            .steps()
            .unwrap();
        assert_eq!(
            steps[1],
            Step::Backfill {
                version: "0003".into(),
                batch: Some(500),
                pause_ms: 20
            }
        );
        let (at, e) = config("steps = [\"serve v1\", \"backfill 0003 size=5\"]\n")
            .steps()
            .unwrap_err();
        assert_eq!(at, Some(1));
        assert!(e.contains("`size=5`"), "{e}");
        let (at, _) = config("steps = [\"migrate\"]\n").steps().unwrap_err();
        assert_eq!(at, Some(0));
        assert!(
            config("plan = \"deploy-then-migrate\"\nreplicas = 0\n")
                .steps()
                .is_err()
        );
    }
}
