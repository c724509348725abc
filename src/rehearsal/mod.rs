//! The rehearsal itself: replicas, app workloads and the lock sampler running
//! against a provisioned database, all emitting events into the timeline.
//!
//! [`Plan::prepare`] reads everything a scenario names (no database), so bad
//! input is reported before anything starts. [`rehearse_scenario`] then runs
//! the pipeline: provision, a template with the baseline applied (built once
//! per content hash), a target clone and a reference clone, the replicas,
//! the checks, and the verdict against the scenario's expectations.

pub mod races;
pub mod rollout;

use std::time::{Duration, Instant};

pub use races::{
    FaultConfig, RaceConfig, RaceOutcome, RehearsalError, run_races, run_races_recorded,
    run_races_with_reference, run_races_with_reference_recorded, run_reference,
};

use crate::findings::{check_locks_within, check_race, check_rollout, judge_with_locks};
use crate::locks;
use crate::migrate::{
    MigrateError, Migration, MigrationSet, RunnerKind, apply_serial_in, apply_tool_baseline,
};
use crate::progress::StageProgress;
use crate::provision::{Backend, Postgres, ProvisionOptions};
use crate::report::{ScenarioReport, StageReport, Verdict};
use crate::scenario::Scenario;
use crate::seed::{SeedError, SeedOptions, SeedSpec, seed_database};

/// A scenario with its files read: ready to rehearse, nothing run yet.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenario: Scenario,
    /// Applied before seeding: what production runs today.
    pub baseline: Vec<Migration>,
    /// Rehearsed: what the rollout will apply.
    pub pending: Vec<Migration>,
    /// The seeds file, parsed (`[seed] spec`).
    pub seed_spec: Option<SeedSpec>,
}

/// A scenario's files cannot be used: bad input, found before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Migrations(#[from] MigrateError),
    #[error(transparent)]
    Seed(#[from] SeedError),
}

impl Plan {
    /// Reads and splits the scenario's migrations and parses its seeds file.
    pub fn prepare(scenario: Scenario) -> Result<Plan, PlanError> {
        let mut scenario = scenario;
        let set = MigrationSet::load(&scenario.migrations.dir, scenario.migrations.layout)?;
        // A user's tool keeps the bookkeeping of the layout detected here.
        scenario.replicas.layout = set.layout;
        if let Some(migrator) = scenario.rollout.as_mut().and_then(|r| r.migrator.as_mut()) {
            migrator.layout = set.layout;
        }
        let (baseline, pending) = set.split_at(scenario.migrations.baseline.as_deref())?;
        let seed_spec = match scenario.seed.as_ref().and_then(|seed| seed.spec.as_ref()) {
            Some(path) => Some(SeedSpec::load(path)?),
            None => None,
        };
        let seed_spec = crate::seed::attach_stats(seed_spec, scenario.seed.as_ref())?;
        Ok(Plan {
            scenario,
            baseline,
            pending,
            seed_spec,
        })
    }

    /// A hash of everything that goes into the template database: the
    /// baseline's statements, the bookkeeping of the runner that applied
    /// them, and the seed settings.
    #[must_use]
    pub fn template_key(&self) -> String {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!("{:?}\n", self.scenario.replicas.runner));
        // Whose bookkeeping table the baseline is recorded in.
        hasher.update(format!("{:?}\n", self.scenario.replicas.layout));
        // A user's tool's baseline: its own command, or the layout's table.
        if let Some(tool) = self.scenario.replicas.tool() {
            hasher.update(format!("{:?} {:?}\n", tool.layout, tool.baseline_command));
        }
        for migration in &self.baseline {
            hasher.update(format!("{}\n", migration.version));
            for statement in &migration.statements {
                hasher.update(statement.sql.as_bytes());
                hasher.update(b"\n");
            }
        }
        if let Some(seed) = &self.scenario.seed {
            hasher.update(format!("{seed:?}"));
            if let Some(spec) = seed.spec.as_ref().and_then(|p| std::fs::read(p).ok()) {
                hasher.update(spec);
            }
            if let Some(stats) = seed.stats.as_ref().and_then(|p| std::fs::read(p).ok()) {
                hasher.update(stats);
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Connections a rehearsal of this plan may hold at once: every racing
    /// replica's (one or two for the built-in runners, a small pool for a
    /// user's tool), every rollout replica's clients (one more replica
    /// while a deploy replaces one), and the harness's own (admin, sampler,
    /// snapshots, the compatibility check, the reserved superuser slots).
    #[must_use]
    pub fn connections_needed(&self) -> u32 {
        let scenario = &self.scenario;
        let per_replica = match scenario.replicas.runner {
            RunnerKind::Command | RunnerKind::Container => PROCESS_RUNNER_CONNECTIONS,
            _ => 2,
        };
        let races = scenario.replicas.count.saturating_mul(per_replica);
        let rollout = scenario.rollout.as_ref().map_or(0, |rollout| {
            let clients = scenario.workloads.iter().map(|w| w.clients).max();
            (rollout.config.replicas + 1)
                .saturating_mul(clients.unwrap_or(0))
                .saturating_add(per_replica)
        });
        HARNESS_CONNECTIONS
            .saturating_add(races)
            .saturating_add(rollout)
    }

    /// `max_connections` for a server this process starts for the plan:
    /// the options' (default [`crate::provision::DEFAULT_MAX_CONNECTIONS`]),
    /// raised to what the plan needs, in steps of 50 so that scenarios of
    /// about the same size share a server.
    #[must_use]
    pub fn server_max_connections(&self, options: &ProvisionOptions) -> u32 {
        let needed = self.connections_needed();
        if needed <= options.max_connections {
            options.max_connections
        } else {
            needed.div_ceil(50).saturating_mul(50)
        }
    }
}

/// A user's migration tool may open a small pool of its own.
const PROCESS_RUNNER_CONNECTIONS: u32 = 4;
/// Admin, sampler, snapshot and compatibility connections, plus Postgres's
/// three `superuser_reserved_connections`.
const HARNESS_CONNECTIONS: u32 = 16;

/// Fails, before anything runs, when the server cannot take the plan's
/// connections (a server the user named, or one started smaller), instead
/// of replicas failing halfway with `too many clients`.
async fn check_connection_room(plan: &Plan, postgres: &Postgres) -> Result<(), String> {
    let client = postgres
        .conn()
        .connect("rehearse-admin")
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::int4, \
                    current_setting('superuser_reserved_connections')::int4",
            &[],
        )
        .await
        .map_err(|e| format!("reading max_connections: {e}"))?;
    let (max, reserved): (i32, i32) = (row.get(0), row.get(1));
    let room = u32::try_from(max - reserved).unwrap_or(0);
    let total = plan.connections_needed();
    // `total` counts three reserved slots, as Postgres's default does.
    let needed = total.saturating_sub(3);
    if needed > room {
        return Err(format!(
            "{}: this scenario may hold about {needed} connections at once ([replicas] count, \
             [rollout] replicas times the workloads' clients, and the harness's own), but the \
             server takes {room} (max_connections {max}, {reserved} reserved): pass \
             --max-connections {total} or more, or raise max_connections on the server you named",
            plan.scenario.path.display()
        ));
    }
    Ok(())
}

/// Records the stages of one scenario as they run, and shows them.
struct Stages {
    done: Vec<StageReport>,
    progress: StageProgress,
}

/// The stages every rehearsal runs: baseline, clone, replicas or rollout,
/// locks, findings (a server start is one more).
const STAGES: u64 = 5;

impl Stages {
    fn begin(&self, stage: &str) {
        self.progress.begin(stage);
    }

    fn record(&mut self, stage: &str, started: Instant, summary: String) {
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.progress.record(stage, duration_ms, &summary);
        self.done.push(StageReport {
            stage: stage.to_string(),
            duration_ms,
            summary,
        });
    }
}

/// Rehearses one scenario on a Postgres provisioned for it, and cleans up.
pub async fn rehearse_scenario(plan: &Plan, options: &ProvisionOptions) -> ScenarioReport {
    let mut servers = ServerPool::default();
    let mut report = servers.rehearse(plan, options).await;
    if let Err(e) = servers.shutdown().await {
        report.verdict = Verdict::Error;
        report.error.get_or_insert(format!("cleanup failed: {e}"));
    }
    report
}

/// The servers of one `rehearse run`: one per backend and major version,
/// started on first use and shared by the scenarios through template
/// clones (a second scenario costs a clone, not a server start).
#[derive(Default)]
pub struct ServerPool {
    servers: Vec<(PoolKey, Result<Postgres, String>)>,
    progress: bool,
}

/// Backend, major version and `max_connections`: scenarios that need a
/// bigger server get one of their own, the others share.
type PoolKey = (crate::provision::Backend, Option<u32>, u32);

impl ServerPool {
    /// Shows each scenario's stages as a progress bar on stderr (only on a
    /// terminal and never under CI; see [`crate::progress`]).
    #[must_use]
    pub fn with_progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// Rehearses `plan` on the pool's server for its backend and version.
    pub async fn rehearse(&mut self, plan: &Plan, options: &ProvisionOptions) -> ScenarioReport {
        let scenario = &plan.scenario;
        let mut report = ScenarioReport::new(&scenario.name, &scenario.path);
        let progress = StageProgress::new(self.progress, &scenario.name, STAGES);
        let options = ProvisionOptions {
            pg_major: options.pg_major.or(scenario.postgres),
            max_connections: plan.server_max_connections(options),
            // A new server comes from a cache entry holding this plan's
            // template, when there is one.
            cached_template: Some(plan.template_key()),
            ..options.clone()
        };
        let key = (options.backend, options.pg_major, options.max_connections);
        let index = match self.servers.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                progress.add_stage();
                progress.begin(&format!("starting Postgres ({})", options.backend));
                let started = Instant::now();
                let server = Postgres::start(&options).await.map_err(|e| e.to_string());
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                match &server {
                    Ok(postgres) => progress.record("provision", elapsed_ms, &postgres.describe()),
                    Err(e) => progress.record("provision", elapsed_ms, &format!("failed: {e}")),
                }
                if let Ok(postgres) = &server {
                    // Printed above the bars, not through them.
                    crate::progress::bars().suspend(|| {
                        for note in postgres.notes() {
                            eprintln!("rehearse: {note}");
                        }
                    });
                    report.stages.push(StageReport {
                        stage: "provision".into(),
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                        summary: postgres.describe(),
                    });
                }
                self.servers.push((key, server));
                self.servers.len() - 1
            }
        };
        let report = match &self.servers[index].1 {
            Ok(postgres) => rehearse_with(plan, postgres, report, progress.clone()).await,
            Err(e) => {
                report.error = Some(e.clone());
                report
            }
        };
        progress.finish();
        report
    }

    /// Stops every server, reporting the first cleanup failure.
    pub async fn shutdown(self) -> Result<(), crate::provision::ProvisionError> {
        let mut first_error = None;
        for (_, server) in self.servers {
            if let Ok(postgres) = server
                && let Err(e) = postgres.shutdown().await
            {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Rehearses one scenario on an existing server (its templates and clones
/// are made there): what `rehearse run` does after provisioning, and what a
/// `cargo test` using a shared server calls directly.
pub async fn rehearse_on(
    plan: &Plan,
    postgres: &Postgres,
    report: ScenarioReport,
) -> ScenarioReport {
    rehearse_with(plan, postgres, report, StageProgress::hidden()).await
}

async fn rehearse_with(
    plan: &Plan,
    postgres: &Postgres,
    report: ScenarioReport,
    progress: StageProgress,
) -> ScenarioReport {
    let mut report = report;
    report.expect = plan.scenario.expect.clone();
    report.backend = Some(postgres.backend().to_string());
    report.postgres_version = Some(postgres.version().to_string());
    let mut stages = Stages {
        done: std::mem::take(&mut report.stages),
        progress,
    };
    let result = run_stages(plan, postgres, &mut stages, &mut report).await;
    report.stages = stages.done;
    match result {
        Ok(()) => {}
        Err(e) => {
            report.verdict = Verdict::Error;
            report.error = Some(e);
        }
    }
    report
}

async fn run_stages(
    plan: &Plan,
    postgres: &Postgres,
    stages: &mut Stages,
    report: &mut ScenarioReport,
) -> Result<(), String> {
    check_connection_room(plan, postgres).await?;
    let config = &plan.scenario.replicas;

    // The template: what production has today, baseline schema and data.
    // Built once per content hash, so another rehearsal of the same scenario
    // starts from a clone instead of re-seeding.
    stages.begin(match &plan.scenario.seed {
        Some(_) => "baseline and seed",
        None => "baseline",
    });
    let started = Instant::now();
    let baseline = plan.baseline.clone();
    let runner = config.runner;
    let layout = config.layout;
    let tool = config.tool();
    let seed = plan.scenario.seed.as_ref().map(|seed| {
        let options = SeedOptions {
            seed: seed.seed,
            scale: seed.scale,
            hostile: seed.hostile,
            // The seeder's per-table bars, under the scenario's.
            progress: stages.progress.shown(),
        };
        (plan.seed_spec.clone(), options)
    });
    let mut seeded_rows = None;
    let seeded = &mut seeded_rows;
    let seed_log = stages.progress.clone();
    // The baseline gets the scenario's `[replicas] timeout_s` as a whole:
    // a baseline migration that never ends must not hang the run. The
    // template build drops the half-built database WITH (FORCE), which
    // also ends the statement still running on the server.
    let baseline_limit = Duration::from_secs(plan.scenario.replicas.timeout_s);
    let template = postgres
        .template(&plan.template_key(), |conn| async move {
            let apply = async {
                match &tool {
                    // The user's tool must find the baseline already applied.
                    Some(tool) => apply_tool_baseline(&conn, tool, &baseline).await,
                    // A built-in runner keeps the layout's tool's table too.
                    None => apply_serial_in(&conn, &runner, layout, &baseline).await,
                }
            };
            tokio::time::timeout(baseline_limit, apply)
                .await
                .map_err(|_| {
                    format!(
                        "baseline migrations did not finish within {} s (`[replicas] timeout_s`)",
                        baseline_limit.as_secs()
                    )
                })?
                .map_err(|e| e.to_string())?;
            if let Some((spec, options)) = seed {
                let report = seed_database(&conn, spec.as_ref(), &options)
                    .await
                    .map_err(|e| format!("seeding: {e}"))?;
                for table in &report.tables {
                    seed_log.seeded(crate::progress::Seeded {
                        table: &table.name,
                        rows: table.rows,
                        duration_ms: table.duration_ms,
                        rows_per_sec: table.rows_per_sec,
                    });
                }
                *seeded = Some(report.total_rows);
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| e.to_string())?;
    let seeded = match (seeded_rows, &plan.scenario.seed) {
        (Some(rows), _) => format!(" and {rows} seeded rows"),
        (None, Some(_)) => " and seed data".to_string(),
        (None, None) => String::new(),
    };
    stages.record(
        "baseline",
        started,
        format!(
            "{} baseline migration(s){seeded} in template {} ({})",
            plan.baseline.len(),
            template.name,
            if template.built {
                "built"
            } else if postgres.template_from_cache(&plan.template_key()) {
                "restored from the template cache"
            } else {
                "reused"
            }
        ),
    );

    stages.begin("clone");
    let started = Instant::now();
    let target = postgres
        .clone_database(&template, None)
        .await
        .map_err(|e| e.to_string())?;
    // The serial reference run only makes sense for a replica race.
    let reference = match plan.scenario.rollout {
        Some(_) => None,
        None => Some(
            postgres
                .clone_database(&template, None)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    stages.record(
        "clone",
        started,
        match &reference {
            Some(reference) => format!(
                "target {} and reference {}",
                target.dbname, reference.dbname
            ),
            None => format!("target {}", target.dbname),
        },
    );
    let result = rehearse_clones(
        plan,
        postgres,
        &template,
        &target,
        reference.as_ref(),
        stages,
        report,
    )
    .await;
    // Clones are dropped now rather than with the server: on the url
    // backend and a shared test server they would otherwise pile up.
    for clone in std::iter::once(&target).chain(reference.as_ref()) {
        postgres
            .drop_database(&clone.dbname)
            .await
            .map_err(|e| e.to_string())?;
    }
    result
}

/// The rehearsal proper on prepared clones: the replica race, or the
/// rollout when the scenario has one, watched by the lock sampler; then the
/// per-statement lock trace, the checks and the verdict.
async fn rehearse_clones(
    plan: &Plan,
    postgres: &Postgres,
    template: &crate::provision::Template,
    target: &crate::provision::ConnInfo,
    reference: Option<&crate::provision::ConnInfo>,
    stages: &mut Stages,
    report: &mut ScenarioReport,
) -> Result<(), String> {
    stages.begin(match plan.scenario.rollout {
        Some(_) => "rollout",
        None => "replicas",
    });
    let started = Instant::now();
    // Locks: the sampler watches the target during the rehearsal.
    let sampler = locks::sampler::start(
        target,
        locks::SamplerOptions::default()
            .with_interval(plan.scenario.locks.sample_interval())
            .with_catalog(plan.scenario.locks.catalog),
    )
    .await
    .map_err(|e| e.to_string())?;
    // The timeline's clock starts right after the sampler's; the gap between
    // the two origins is measured, not assumed, so that attribution by time
    // and the report's lock bars line up with the timeline's events.
    let recorder = crate::timeline::Recorder::new();
    let offset_us = sampler.offset_from(recorder.origin());
    let mut findings;
    let timeline;
    if let Some(spec) = &plan.scenario.rollout {
        // Old and new code side by side through the rollout plan.
        let outcome = rollout::run_rollout(
            target,
            &spec.config,
            &spec.steps,
            &plan.scenario.workloads,
            &plan.pending,
            spec.migrator.as_ref(),
            recorder,
        )
        .await;
        let samples = sampler.stop().await.map_err(|e| e.to_string())?;
        let outcome = outcome?;
        stages.record(
            "rollout",
            started,
            format!(
                "{} phase(s), {} execution(s), {} breakage(s)",
                outcome.traffic.phases.len(),
                outcome.executions.len(),
                outcome.compat.breakages.len()
            ),
        );
        findings = check_rollout(&outcome.compat, &outcome.traffic, &outcome.timeline);
        // `[replicas]` set the migrators: their race checks, next to the
        // traffic they caused.
        if let Some(race) = outcome.race {
            findings.extend(check_race(&race));
            report.race = Some(race);
        }
        timeline = (outcome.timeline, samples);
        report.compat = Some(outcome.compat);
        report.traffic = Some(outcome.traffic);
        report.executions = outcome.executions;
    } else {
        // Roles are server-wide: those the race's migrations create must not
        // make the reference run fail with "role already exists".
        let mut shared_roles = String::new();
        // On a user's server (url backend) they are also dropped at cleanup.
        let roles_before = if reference.is_some() || postgres.backend() == Backend::Url {
            Some(postgres.role_names().await.map_err(|e| e.to_string())?)
        } else {
            None
        };
        let outcome = async {
            let raced =
                run_races_recorded(target, &plan.pending, &plan.scenario.replicas, recorder).await;
            // Without a reference run (or when the race failed) nothing
            // is set aside: the race's roles are claimed as they are.
            if let Some(before) = &roles_before
                && (reference.is_none() || raced.is_err())
            {
                postgres
                    .claim_new_roles(before)
                    .await
                    .map_err(|e| RehearsalError::Inspect(e.to_string()))?;
            }
            let mut outcome = raced?;
            if let (Some(reference), Some(before)) = (reference, &roles_before) {
                let left = postgres
                    .set_aside_new_roles(before)
                    .await
                    .map_err(|e| RehearsalError::Inspect(e.to_string()))?;
                if !left.is_empty() {
                    shared_roles = format!(
                        ", role(s) {} created by the race left in place on a server this run \
                         does not own (the reference run shares them)",
                        left.join(", ")
                    );
                }
                // What the reference run creates is the run's too: on a
                // user's server it is dropped at cleanup.
                let before_reference = postgres
                    .role_names()
                    .await
                    .map_err(|e| RehearsalError::Inspect(e.to_string()))?;
                let reference_outcome =
                    run_reference(reference, &plan.pending, &plan.scenario.replicas).await;
                postgres
                    .claim_new_roles(&before_reference)
                    .await
                    .map_err(|e| RehearsalError::Inspect(e.to_string()))?;
                outcome.reference = Some(reference_outcome?);
            }
            Ok::<_, RehearsalError>(outcome)
        }
        .await;
        let samples = sampler.stop().await.map_err(|e| e.to_string())?;
        let outcome = outcome.map_err(|e| e.to_string())?;
        stages.record(
            "replicas",
            started,
            format!(
                "{} replica(s), runner {}, {} pending migration(s), {} events{shared_roles}",
                outcome.replicas,
                outcome.runner,
                plan.pending.len(),
                outcome.timeline.events.len()
            ),
        );
        // Synchronous, and it grows with the statements: on the blocking
        // pool, so a signal can drop this future while it runs.
        let (outcome, race_findings) = tokio::task::spawn_blocking(move || {
            let findings = check_race(&outcome);
            (outcome, findings)
        })
        .await
        .map_err(|e| format!("post-race checks: {e}"))?;
        findings = race_findings;
        timeline = (outcome.timeline.clone(), samples);
        report.race = Some(outcome);
    }
    let (timeline, samples) = timeline;

    stages.begin("locks");
    let started = Instant::now();
    let sampled = locks::analyse(
        &samples,
        &plan.pending,
        Some(locks::TimelineRef {
            timeline: &timeline,
            offset_us,
        }),
    );
    // The trace runs the pending statements on a third clone, dropped after.
    let traced = postgres
        .clone_database(template, None)
        .await
        .map_err(|e| e.to_string())?;
    // Bounded by the scenario's timeout_s, like the replicas.
    let trace_options = locks::TraceOptions::bounded(std::time::Duration::from_secs(
        plan.scenario.replicas.timeout_s,
    ));
    let trace = locks::trace_database(&traced, &plan.pending, &trace_options).await;
    postgres
        .drop_database(&traced.dbname)
        .await
        .map_err(|e| e.to_string())?;
    let trace_note = trace
        .as_ref()
        .err()
        .map_or_else(String::new, |e| format!(", {e}"));
    let mut lock_report = locks::LockReport::new(&plan.pending, trace.ok(), Some(sampled));
    locks::lint::allow(&mut lock_report.lint, &plan.scenario.locks.allow);
    stages.record(
        "locks",
        started,
        format!(
            "{} samples, trace of {} statement(s){trace_note}",
            samples.samples.len(),
            lock_report.trace.as_ref().map_or(0, |t| t.statements.len())
        ),
    );

    stages.begin("findings");
    let started = Instant::now();
    findings.extend(check_locks_within(
        &lock_report,
        plan.scenario.expect.lock_budget(),
    ));
    let judgement = judge_with_locks(&findings, Some(&lock_report), &plan.scenario.expect);
    stages.record(
        "findings",
        started,
        format!("{} finding(s)", findings.len()),
    );
    report.conclude(findings, judgement);
    report.locks = Some(lock_report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Plan {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name);
        Plan::prepare(Scenario::load(&path).unwrap()).unwrap()
    }

    #[test]
    fn a_server_is_sized_to_its_scenario() {
        let options = ProvisionOptions::default();
        // 8 built-in replicas, two connections each, and the harness's 16.
        let race = example("naive-8-replicas");
        assert_eq!(race.connections_needed(), 8 * 2 + 16);
        assert_eq!(race.server_max_connections(&options), 100);
        // A larger --max-connections wins.
        let wide = options.clone().with_max_connections(500);
        assert_eq!(race.server_max_connections(&wide), 500);
        // 64 replicas of a user's tool, a small pool each: 272, in steps of 50.
        let mut tool = race.clone();
        tool.scenario.replicas.count = 64;
        tool.scenario.replicas.runner = RunnerKind::Command;
        assert_eq!(tool.connections_needed(), 64 * 4 + 16);
        assert_eq!(tool.server_max_connections(&options), 300);
        // A rollout: (2 replicas + 1 being replaced) x 2 clients, the
        // migration job, the default 4 racing replicas, the harness.
        let mut rollout = example("expand-contract-rename");
        assert_eq!(rollout.connections_needed(), 3 * 2 + 2 + 4 * 2 + 16);
        for workload in &mut rollout.scenario.workloads {
            workload.clients = 64;
        }
        rollout.scenario.rollout.as_mut().unwrap().config.replicas = 16;
        assert_eq!(rollout.connections_needed(), 17 * 64 + 2 + 4 * 2 + 16);
        assert_eq!(rollout.server_max_connections(&options), 1150);
    }
}
