//! Replica races: N replicas released together run the pending migrations
//! with one runner strategy, every step recorded in the timeline; then the
//! state they left is read. Verdicts are the findings' business.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Barrier;
use tokio_postgres::Client;

use crate::migrate::runner::{self, FaultHook, ReplicaCtx, ReplicaEnd, sql};
use crate::migrate::{Migration, RunnerKind, snapshot};
use crate::provision::ConnInfo;
pub use crate::scenario::replicas::{
    FaultConfig, InvalidRaceConfig, MAX_JITTER_MS, MAX_REPLICAS, RaceConfig,
};
use crate::timeline::{
    Actor, EventKind, ExitStatus, FaultState, RaceRecord, Recorder, ReferenceRun, RerunRecord,
};

/// What a race produced: the timeline plus the state it left.
pub type RaceOutcome = RaceRecord;

/// Errors of running a race. Replica failures are not errors: they are
/// events in the timeline.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    #[error("invalid [replicas] section: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Connect(String),
    #[error("cannot read the database state after the race: {0}")]
    Inspect(String),
}

impl From<InvalidRaceConfig> for RehearsalError {
    fn from(e: InvalidRaceConfig) -> Self {
        RehearsalError::InvalidConfig(e.0)
    }
}

/// How long the harness waits for terminated backends to go away.
const TERMINATE_DEADLINE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(5);

/// Terminates every backend of `app` and waits (bounded) until none is left.
async fn terminate(admin: &Client, app: &str) {
    let _ = admin.query(sql::TERMINATE_BY_APP, &[&app]).await;
    let deadline = Instant::now() + TERMINATE_DEADLINE;
    while Instant::now() < deadline {
        match admin.query_one(sql::COUNT_BY_APP, &[&app]).await {
            Ok(row) if row.get::<_, i64>(0) > 0 => tokio::time::sleep(POLL).await,
            _ => return,
        }
    }
}

fn base_ctx(actor: Actor, conn: &ConnInfo, recorder: &Recorder, config: &RaceConfig) -> ReplicaCtx {
    ReplicaCtx {
        actor,
        conn: conn.clone(),
        recorder: recorder.clone(),
        lock_timeout: config.lock_timeout_ms.map(Duration::from_millis),
        hold_failed_connection: config.hold_failed_connection,
        fault: None,
        command: config.command.clone(),
        workdir: config.workdir.clone(),
        container: config.container.clone(),
        layout: config.layout,
    }
}

/// Runs one actor with a timeout; on timeout its backends are terminated
/// (and a `command` child killed by dropping it). Emits `Exited`.
async fn run_bounded(
    kind: RunnerKind,
    ctx: &ReplicaCtx,
    migrations: &[Migration],
    timeout: Duration,
    admin: &Client,
) -> Option<Client> {
    run_bounded_with(ctx, timeout, admin, None, async {
        runner::run_replica(kind, ctx, migrations).await
    })
    .await
}

/// [`run_bounded`] for any actor's run. With `start`, the actor first
/// waits that long (start jitter, inside the timeout) and emits `Started`.
async fn run_bounded_with(
    ctx: &ReplicaCtx,
    timeout: Duration,
    admin: &Client,
    start: Option<Duration>,
    run: impl std::future::Future<Output = ReplicaEnd>,
) -> Option<Client> {
    let started = async {
        if let Some(delay) = start {
            if !delay.is_zero() {
                // Start jitter is part of the scenario, not synchronisation.
                tokio::time::sleep(delay).await;
            }
            ctx.emit(EventKind::Started);
        }
        run.await
    };
    let end = match tokio::time::timeout(timeout, started).await {
        Ok(end) => end,
        Err(_) => {
            terminate(admin, &ctx.app_name()).await;
            ReplicaEnd {
                status: ExitStatus::TimedOut,
                code: None,
                held: None,
            }
        }
    };
    ctx.emit(EventKind::Exited {
        status: end.status,
        code: end.code,
    });
    end.held
}

/// Picks the statement to strike: a 0-based index over all pending
/// statements, or a random one.
fn fault_target(
    pending: &[Migration],
    fault: &FaultConfig,
) -> Result<(String, usize), RehearsalError> {
    let all: Vec<(String, usize)> = pending
        .iter()
        .flat_map(|m| (0..m.statements.len()).map(move |i| (m.version.clone(), i)))
        .collect();
    if all.is_empty() {
        return Err(RehearsalError::InvalidConfig(
            "fault injection needs a pending statement".into(),
        ));
    }
    let index = match fault.statement {
        Some(i) if i < all.len() => i,
        Some(i) => {
            return Err(RehearsalError::InvalidConfig(format!(
                "fault.statement {i} is past the {} pending statements",
                all.len()
            )));
        }
        None => rand::random_range(0..all.len()),
    };
    Ok(all[index].clone())
}

/// Runs `pending` on `target` with `config.count` replicas released
/// together, then reads what they left: bookkeeping, advisory locks still
/// held, invalid indexes, schema and data of touched tables. With a fault
/// configured, one replica is terminated at a statement and the migrations
/// are re-run serially afterwards.
pub async fn run_races(
    target: &ConnInfo,
    pending: &[Migration],
    config: &RaceConfig,
) -> Result<RaceOutcome, RehearsalError> {
    run_races_recorded(target, pending, config, Recorder::new()).await
}

/// [`run_races`] into `recorder`: the timeline counts from its origin, so a
/// caller whose other clocks (the lock sampler's) started nearby can line
/// them up exactly.
pub async fn run_races_recorded(
    target: &ConnInfo,
    pending: &[Migration],
    config: &RaceConfig,
    recorder: Recorder,
) -> Result<RaceOutcome, RehearsalError> {
    config.validate()?;
    let admin = Arc::new(harness_connection(target).await?);
    let hook = match &config.fault {
        // The user's tool is killed once it is seen running a query.
        Some(f)
            if matches!(
                config.migrator_kind(),
                RunnerKind::Command | RunnerKind::Container
            ) =>
        {
            Some(Arc::new(FaultHook::new(
                Actor::Replica(f.replica),
                String::new(),
                0,
            )))
        }
        Some(f) => {
            let (version, index) = fault_target(pending, f)?;
            Some(Arc::new(FaultHook::new(
                Actor::Replica(f.replica),
                version,
                index,
            )))
        }
        None => None,
    };
    let pending_arc: Arc<Vec<Migration>> = Arc::new(pending.to_vec());
    let mut held: Vec<Client> = Vec::new();

    let tool = config.tool();
    let replicas_may_start = if config.runner == RunnerKind::Job {
        // The one gated job: the user's tool when given, else the built-in
        // migrator. Replicas start only after it exits 0.
        let ctx = base_ctx(Actor::Job, target, &recorder, config);
        let kind = config.migrator_kind();
        held.extend(
            run_bounded_with(
                &ctx,
                config.timeout(),
                &admin,
                Some(Duration::ZERO),
                async { runner::run_replica(kind, &ctx, pending).await },
            )
            .await,
        );
        let timeline = recorder.timeline();
        let ok = timeline.exit_of(Actor::Job) == Some(ExitStatus::Success);
        if !ok {
            let why = timeline.of(Actor::Job).find_map(|e| match &e.kind {
                EventKind::Failed { message, .. } => Some(message.clone()),
                _ => None,
            });
            recorder.emit(
                Actor::Harness,
                EventKind::RolloutHalted {
                    reason: match why {
                        Some(why) => format!("the migration job did not exit 0: {why}"),
                        None => "the migration job did not exit 0".into(),
                    },
                },
            );
        }
        ok
    } else {
        true
    };

    if replicas_may_start {
        let barrier = Arc::new(Barrier::new(config.count as usize));
        let mut tasks = Vec::new();
        for n in 0..config.count {
            let mut ctx = base_ctx(Actor::Replica(n), target, &recorder, config);
            ctx.fault = hook.clone();
            let barrier = barrier.clone();
            let pending = pending_arc.clone();
            let admin = admin.clone();
            let kind = config.runner;
            let timeout = config.timeout();
            let jitter = config.jitter_ms;
            // App replicas after the user's tool ran as the job check its
            // table; otherwise each replica runs the runner.
            let app_after = tool.clone().filter(|_| kind == RunnerKind::Job);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let delay = Duration::from_millis(if jitter > 0 {
                    rand::random_range(0..=jitter)
                } else {
                    0
                });
                run_bounded_with(&ctx, timeout, &admin, Some(delay), async {
                    match &app_after {
                        Some(tool) => runner::app_after_tool(&ctx, tool, &pending).await,
                        None => runner::run_replica(kind, &ctx, &pending).await,
                    }
                })
                .await
            }));
        }
        for (n, task) in (0..config.count).zip(tasks) {
            match task.await {
                Ok(Some(client)) => held.push(client),
                Ok(None) => {}
                // A panicking replica task is a harness bug; record it rather
                // than lose the replica from the timeline.
                Err(e) => {
                    let actor = Actor::Replica(n);
                    recorder.emit(
                        actor,
                        EventKind::Failed {
                            version: None,
                            line: None,
                            sqlstate: None,
                            message: format!("replica task ended abnormally: {e}"),
                        },
                    );
                    recorder.emit(
                        actor,
                        EventKind::Exited {
                            status: ExitStatus::Failure,
                            code: None,
                        },
                    );
                }
            }
        }
    }
    finish(target, &admin, pending, config, recorder, hook, held).await
}

/// How long the checks after a race wait for replica backends to exit.
const DISCONNECT_DEADLINE: Duration = Duration::from_secs(2);

/// Waits until at most `held` replica backends remain in this database
/// (the connections the harness keeps open on purpose), polling
/// `pg_stat_activity`, for at most [`DISCONNECT_DEADLINE`].
async fn wait_for_replicas_to_leave(admin: &Client, held: usize) {
    let held = i64::try_from(held).unwrap_or(i64::MAX);
    let deadline = Instant::now() + DISCONNECT_DEADLINE;
    loop {
        match admin.query_one(sql::COUNT_REPLICA_BACKENDS, &[]).await {
            Ok(row) if row.get::<_, i64>(0) > held && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => return,
        }
    }
}

/// Longest any harness query (catalog snapshot, checksums) may run: reading
/// a table a stuck session still locks must not hang the rehearsal.
const HARNESS_STATEMENT_TIMEOUT: &str = "SET statement_timeout = '30s'";

async fn harness_connection(conn: &ConnInfo) -> Result<Client, RehearsalError> {
    let client = conn
        .connect("rehearse-harness")
        .await
        .map_err(|e| RehearsalError::Connect(e.to_string()))?;
    client
        .batch_execute(HARNESS_STATEMENT_TIMEOUT)
        .await
        .map_err(|e| RehearsalError::Connect(crate::provision::describe_pg_error(&e)))?;
    Ok(client)
}

/// Reads the state after the race, drops held connections, re-runs after a
/// fault.
async fn finish(
    target: &ConnInfo,
    admin: &Client,
    pending: &[Migration],
    config: &RaceConfig,
    recorder: Recorder,
    hook: Option<Arc<FaultHook>>,
    held: Vec<Client>,
) -> Result<RaceOutcome, RehearsalError> {
    let inspect =
        |e: tokio_postgres::Error| RehearsalError::Inspect(crate::provision::describe_pg_error(&e));
    // A replica that exited has closed its connection, but its backend may
    // not have finished exiting yet (a session advisory lock is released
    // during backend exit): wait, bounded, for every replica backend
    // except the ones deliberately held open, so that only a real leak is
    // judged.
    wait_for_replicas_to_leave(admin, held.len()).await;
    // Read locks while failed replicas that keep their connection still
    // hold them: that is the leak an app with a pool would cause.
    let leaked_locks = snapshot::advisory_locks(admin).await.map_err(inspect)?;
    drop(held);
    let data_tables = snapshot::data_tables(pending);
    let tool = config.tool();
    let record = RaceRecord {
        runner: config.runner.name().to_string(),
        replicas: config.count,
        pending: pending.iter().map(|m| m.version.clone()).collect(),
        leaked_locks,
        invalid_indexes: snapshot::invalid_indexes(admin).await.map_err(inspect)?,
        bookkeeping: runner::tool_bookkeeping_state(
            admin,
            config.runner,
            config.layout,
            tool.as_ref(),
        )
        .await
        .map_err(|e| RehearsalError::Inspect(e.to_string()))?,
        schema: snapshot::schema_snapshot(admin).await.map_err(inspect)?,
        data: snapshot::table_data(admin, &data_tables).await,
        data_tables,
        timeline: recorder.timeline(),
        reference: None,
        fault: None,
    };
    let Some(fault) = hook.and_then(|h| h.record()) else {
        return Ok(record);
    };
    let mut record = record;
    let rerun = if config.fault.as_ref().is_some_and(|f| f.rerun) {
        let ctx = base_ctx(Actor::Rerun, target, &recorder, config);
        run_bounded(
            config.migrator_kind(),
            &ctx,
            pending,
            config.timeout(),
            admin,
        )
        .await;
        let timeline = recorder.timeline();
        let error = timeline.of(Actor::Rerun).find_map(|e| match &e.kind {
            EventKind::Failed { message, .. } => Some(message.clone()),
            _ => None,
        });
        let error = error.or_else(|| {
            (timeline.exit_of(Actor::Rerun) != Some(ExitStatus::Success))
                .then(|| "re-run did not finish".to_string())
        });
        record.timeline = timeline;
        Some(RerunRecord {
            error,
            schema: snapshot::schema_snapshot(admin).await.map_err(inspect)?,
            bookkeeping: runner::tool_bookkeeping_state(
                admin,
                config.runner,
                config.layout,
                tool.as_ref(),
            )
            .await
            .map_err(|e| RehearsalError::Inspect(e.to_string()))?,
            invalid_indexes: snapshot::invalid_indexes(admin).await.map_err(inspect)?,
        })
    } else {
        None
    };
    record.fault = Some(FaultState { fault, rerun });
    Ok(record)
}

/// Runs `pending` serially (one actor, same runner and bookkeeping) on
/// `reference`, an identical clone of the target made by the caller, and
/// reads its schema, data and bookkeeping for comparison.
pub async fn run_reference(
    reference: &ConnInfo,
    pending: &[Migration],
    config: &RaceConfig,
) -> Result<ReferenceRun, RehearsalError> {
    let admin = harness_connection(reference).await?;
    let recorder = Recorder::new();
    let serial = RaceConfig {
        hold_failed_connection: false,
        fault: None,
        ..config.clone()
    };
    let ctx = base_ctx(Actor::Rerun, reference, &recorder, &serial);
    run_bounded(
        config.migrator_kind(),
        &ctx,
        pending,
        config.timeout(),
        &admin,
    )
    .await;
    let timeline = recorder.timeline();
    let error = timeline.events.iter().find_map(|e| match &e.kind {
        EventKind::Failed { message, .. } => Some(message.clone()),
        EventKind::Exited {
            status: ExitStatus::TimedOut,
            ..
        } => Some("timed out".into()),
        _ => None,
    });
    let inspect =
        |e: tokio_postgres::Error| RehearsalError::Inspect(crate::provision::describe_pg_error(&e));
    Ok(ReferenceRun {
        error,
        schema: snapshot::schema_snapshot(&admin).await.map_err(inspect)?,
        data: snapshot::table_data(&admin, &snapshot::data_tables(pending)).await,
        bookkeeping: runner::tool_bookkeeping_state(
            &admin,
            config.runner,
            config.layout,
            config.tool().as_ref(),
        )
        .await
        .map_err(|e| RehearsalError::Inspect(e.to_string()))?,
    })
}

/// [`run_races`] on `target`, then [`run_reference`] on `reference` when
/// given, in one record.
pub async fn run_races_with_reference(
    target: &ConnInfo,
    reference: Option<&ConnInfo>,
    pending: &[Migration],
    config: &RaceConfig,
) -> Result<RaceOutcome, RehearsalError> {
    run_races_with_reference_recorded(target, reference, pending, config, Recorder::new()).await
}

/// [`run_races_with_reference`] with the race recorded into `recorder` (see
/// [`run_races_recorded`]).
pub async fn run_races_with_reference_recorded(
    target: &ConnInfo,
    reference: Option<&ConnInfo>,
    pending: &[Migration],
    config: &RaceConfig,
    recorder: Recorder,
) -> Result<RaceOutcome, RehearsalError> {
    let mut outcome = run_races_recorded(target, pending, config, recorder).await?;
    if let Some(reference) = reference {
        outcome.reference = Some(run_reference(reference, pending, config).await?);
    }
    Ok(outcome)
}
