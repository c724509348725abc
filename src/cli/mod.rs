//! The `rehearse` command line: argument parsing, signal handling and exit
//! codes. Each subcommand lives in its own file and only calls the library.

mod bench;
mod cache;
mod doctor;
mod forecast;
mod gc;
mod provision;
mod run;
mod seed;
mod stats;
mod trace;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Exit;
use crate::provision::{Backend, ProvisionOptions};

/// Rehearse PostgreSQL schema migrations on a throwaway, seeded Postgres:
/// concurrent replicas, live traffic, locks and compatibility.
#[derive(Debug, Parser)]
#[command(name = "rehearse", version, about, long_about = None)]
pub struct Cli {
    /// Print nothing but errors and the final verdicts.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rehearse scenario files (a file, a scenario folder or a folder of them).
    Run(run::RunArgs),
    /// Time the pending migrations at several seed scales; compare with a baseline.
    Bench(bench::BenchArgs),
    /// Start a throwaway Postgres and keep it until Ctrl-C.
    Provision(provision::ProvisionArgs),
    /// Which backends work here, with versions, and why not.
    Doctor(doctor::DoctorArgs),
    /// Remove containers and local clusters left behind by killed runs.
    Gc(gc::GcArgs),
    /// Fill a database with generated data from a seeds file.
    Seed(crate::seed::SeedArgs),
    /// Trace the locks each statement of a migration takes, on a throwaway database.
    Trace(trace::TraceArgs),
    /// Production statistics without production data: `stats capture`.
    Stats(stats::StatsArgs),
    /// Forecast the pending migrations' lock holds at production size.
    Forecast(forecast::ForecastArgs),
    /// List or prune the persistent template cache.
    Cache(cache::CacheCommand),
}

/// Flags every command that provisions a Postgres shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct BackendArgs {
    /// Where the throwaway Postgres runs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// An existing server to create throwaway databases on (url backend).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Postgres major version (selects the Docker tag or local binaries).
    #[arg(long = "pg-version", value_name = "MAJOR")]
    pg_major: Option<u32>,
    /// Production-like durability (fsync on); slower, timings closer to production.
    #[arg(long)]
    durable: bool,
    /// Docker image to use instead of the pinned official `postgres` tag.
    #[arg(long, env = crate::provision::DOCKER_IMAGE_ENV)]
    docker_image: Option<String>,
    /// Directory holding initdb and postgres (local backend).
    #[arg(long, env = crate::provision::LOCAL_BIN_ENV)]
    pg_bin: Option<PathBuf>,
    /// Where local clusters are created (default /dev/shm, else the temp dir).
    #[arg(long, env = crate::provision::LOCAL_TMPDIR_ENV)]
    tmp_dir: Option<PathBuf>,
    /// Seconds to wait for a Postgres to start and answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    startup_timeout: u64,
    /// max_connections of a server this run starts (local, docker); `run`
    /// and `bench` raise it to what a scenario's replicas and clients need.
    /// Larger makes every lock sample dearer.
    #[arg(
        long,
        value_name = "N",
        default_value_t = crate::provision::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(10..=10_000)
    )]
    max_connections: u32,
}

impl BackendArgs {
    /// Provisioning options; an explicit `--backend` wins over a scenario's.
    pub(crate) fn options(&self, scenario_backend: Option<Backend>) -> ProvisionOptions {
        let backend = match (self.backend, scenario_backend) {
            (Backend::Auto, Some(from_scenario)) => from_scenario,
            (flag, _) => flag,
        };
        ProvisionOptions {
            backend,
            pg_major: self.pg_major,
            // Only the url and auto backends look at a URL: a DATABASE_URL in
            // the environment must not divert an explicit local or docker.
            database_url: match backend {
                Backend::Url | Backend::Auto => self.database_url.clone(),
                Backend::Local | Backend::Docker => None,
            },
            durable: self.durable,
            docker_image: self.docker_image.clone(),
            pg_bin_dir: self.pg_bin.clone(),
            tmp_dir: self.tmp_dir.clone(),
            startup_timeout: Duration::from_secs(self.startup_timeout),
            max_connections: self.max_connections,
            ..ProvisionOptions::default()
        }
    }
}

/// Entry point of the binary.
#[must_use]
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::BadInput
            } else {
                Exit::Pass
            }
            .into();
        }
    };
    // At least two workers, so the signal task runs while the command's
    // thread is busy (on a one-core machine the default is one).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rehearse: cannot start the async runtime: {e}");
            return Exit::Infrastructure.into();
        }
    };
    let (exit, signalled) = runtime.block_on(run_with_signals(cli));
    if signalled {
        // The user asked to stop: do not wait for blocking work the
        // aborted command left running (an initdb, a long analysis).
        runtime.shutdown_background();
    } else {
        runtime.shutdown_timeout(Duration::from_secs(10));
    }
    exit.into()
}

/// How long a signalled run may take to drop its command (every handle
/// cleans up in its `Drop`) before the process exits anyway. A command
/// busy in synchronous work cannot be dropped until it yields, and the
/// user asked to stop: what it still owns is then left to `rehearse gc`
/// (its owner is dead by then).
const SIGNAL_CLEANUP_LIMIT: Duration = Duration::from_secs(20);

/// Runs the command; on SIGINT or SIGTERM drops it (every handle cleans up
/// in its `Drop`) and returns 130 or 143. Returns whether a signal ended it.
///
/// Signals are received on a task of their own, which runs on another
/// worker thread even while the command's thread is busy: it arms a
/// watchdog that exits after [`SIGNAL_CLEANUP_LIMIT`], and a second signal
/// exits at once.
async fn run_with_signals(cli: Cli) -> (Exit, bool) {
    let (Ok(sigint), Ok(sigterm)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("rehearse: cannot install signal handlers");
        return (Exit::Infrastructure, false);
    };
    let quiet = cli.quiet;
    let (signalled_tx, mut signalled) = tokio::sync::watch::channel(None);
    let watcher = tokio::spawn(watch_signals(sigint, sigterm, signalled_tx));
    let exit = tokio::select! {
        exit = dispatch(cli) => {
            watcher.abort();
            return (exit, false);
        }
        Ok(exit) = signalled.wait_for(Option::is_some) => exit.unwrap_or(Exit::Interrupted),
    };
    // The command's future is dropped by now, and with it every Postgres
    // handle. A container whose start was cut short has no handle yet:
    // sweep what this process still owns.
    crate::provision::gc::collect_own().await;
    // Only claim what really happened: a failed cleanup printed its own
    // line already.
    if crate::provision::cleanup_incomplete() {
        eprintln!(
            "rehearse: stopped by signal; cleanup incomplete, run `rehearse gc` to finish it"
        );
    } else if !quiet {
        eprintln!("rehearse: stopped by signal, cleaned up");
    }
    (exit, true)
}

/// Waits for the first signal and reports it; then arms the watchdog and
/// exits on a second signal.
async fn watch_signals(
    mut sigint: tokio::signal::unix::Signal,
    mut sigterm: tokio::signal::unix::Signal,
    signalled: tokio::sync::watch::Sender<Option<Exit>>,
) {
    let exit = tokio::select! {
        _ = sigint.recv() => Exit::Interrupted,
        _ = sigterm.recv() => Exit::Terminated,
    };
    let _ = signalled.send(Some(exit));
    std::thread::spawn(move || {
        std::thread::sleep(SIGNAL_CLEANUP_LIMIT);
        eprintln!(
            "rehearse: stopped by signal; cleanup did not finish within {} s, run `rehearse gc` \
             to finish it",
            SIGNAL_CLEANUP_LIMIT.as_secs()
        );
        std::process::exit(i32::from(exit.code()));
    });
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    eprintln!("rehearse: second signal, exiting without finishing cleanup; run `rehearse gc`");
    std::process::exit(i32::from(exit.code()));
}

async fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Run(args) => run::run(args, cli.quiet).await,
        Command::Bench(args) => bench::bench(args, cli.quiet).await,
        Command::Provision(args) => provision::provision(args, cli.quiet).await,
        Command::Doctor(args) => doctor::doctor(args).await,
        Command::Gc(args) => gc::gc(args).await,
        Command::Seed(args) => seed::seed(args, cli.quiet).await,
        Command::Trace(args) => trace::trace(args, cli.quiet).await,
        Command::Stats(args) => stats::stats(args, cli.quiet).await,
        Command::Forecast(args) => forecast::forecast_command(args, cli.quiet).await,
        Command::Cache(args) => cache::cache(args),
    }
}

/// Prints an error on one line and returns its exit code.
pub(crate) fn fail(error: &dyn std::fmt::Display, exit: Exit) -> Exit {
    // Errors may quote a statement (a role's password) or a tool's output.
    eprintln!(
        "rehearse: error: {}",
        crate::report::redact::scrub(&error.to_string())
    );
    exit
}

pub(crate) fn provision_exit(error: &crate::provision::ProvisionError) -> Exit {
    if error.is_bad_input() {
        Exit::BadInput
    } else {
        Exit::Infrastructure
    }
}
