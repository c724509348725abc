//! `rehearse run`: rehearse scenario files and write reports.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::{BackendArgs, fail};
use crate::exit::Exit;
use crate::provision::RunId;
use crate::rehearsal::{Plan, ServerPool};
use crate::report::{
    JsonStream, ReportFormat, ReportTarget, ReportTargets, RunReport, SCHEMA_VERSION,
    ScenarioReport, TerminalOptions, parse_targets, write_terminal,
};
use crate::scenario::{Scenario, discover};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Scenario files or folders (default: scenarios/).
    #[arg(value_name = "SCENARIO", default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Reports to write, comma-separated FORMAT=PATH items; formats json,
    /// junit, md, html (e.g. junit=out/junit.xml,html=out/report.html).
    #[arg(long, value_parser = parse_targets)]
    report: Option<ReportTargets>,
    /// Run only shard K of N (1-based): the scenarios, sorted by path, whose
    /// index modulo N is K-1. Every scenario lands in exactly one shard.
    #[arg(long, value_name = "K/N", value_parser = Partition::parse)]
    partition: Option<Partition>,
    /// Lock budget in milliseconds for scenarios that set no `[expect]
    /// lock_budget_ms` (default 1000; docs/verdicts.md).
    #[arg(long, value_name = "MS")]
    lock_budget: Option<u64>,
    /// Neither restore templates from the persistent template cache nor
    /// save them to it.
    #[arg(long, env = "REHEARSE_NO_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
    no_cache: bool,
    #[command(flatten)]
    cache: super::cache::CacheArgs,
    /// Scenarios rehearsed at once, each worker on a Postgres of its own.
    /// More is faster, but the rehearsals then compete for CPU and disk and
    /// their lock and statement durations grow: keep 1 when the timings
    /// matter (docs/performance.md).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(1..=64)
    )]
    jobs: u16,
}

/// `--partition K/N`: a deterministic share of the scenarios for one of N
/// CI machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partition {
    /// 1-based.
    shard: usize,
    count: usize,
}

impl Partition {
    pub(crate) fn parse(text: &str) -> Result<Partition, String> {
        let bad = || format!("`{text}`: expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let shard: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if shard == 0 || count == 0 || shard > count {
            return Err(bad());
        }
        Ok(Partition { shard, count })
    }

    /// Whether the scenario at `index` (in path order) belongs to this shard.
    pub(crate) fn contains(self, index: usize) -> bool {
        index % self.count == self.shard - 1
    }
}

pub(crate) async fn run(args: RunArgs, quiet: bool) -> Exit {
    let plans = match load_all(&args.paths) {
        Ok(plans) => plans,
        Err(errors) => {
            for error in &errors {
                eprintln!("rehearse: error: {error}");
            }
            return Exit::BadInput;
        }
    };
    // A missing or malformed database url is bad input (exit 2, as in
    // every command), found before anything starts.
    for plan in &plans {
        if let Err(e) = args.backend.options(plan.scenario.backend).check_input() {
            return fail(&e, Exit::BadInput);
        }
    }
    let mut plans = plans;
    if let Some(ms) = args.lock_budget {
        for plan in &mut plans {
            plan.scenario.expect.lock_budget_ms.get_or_insert(ms);
        }
    }
    // Sorted by path so that every machine of a partitioned run agrees on
    // the indices, whatever order the paths were given in.
    plans.sort_by(|a, b| a.scenario.path.cmp(&b.scenario.path));
    if let Some(partition) = args.partition {
        plans = plans
            .into_iter()
            .enumerate()
            .filter(|(i, _)| partition.contains(*i))
            .map(|(_, plan)| plan)
            .collect();
        if !quiet {
            eprintln!(
                "rehearse: partition {}/{}: {} scenario(s)",
                partition.shard,
                partition.count,
                plans.len()
            );
        }
    }
    let template_cache = if args.no_cache {
        None
    } else {
        match args.cache.settings() {
            Ok(settings) => Some(settings),
            Err(e) => return fail(&e, Exit::BadInput),
        }
    };
    let run_id = RunId::new();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = Instant::now();
    // JSON reports are written as the scenarios finish, in their order.
    let mut json = Vec::new();
    for target in json_targets(args.report.as_ref()) {
        match open_stream(target, &run_id.to_string(), &started_at) {
            Ok(stream) => json.push((target, stream)),
            Err(e) => {
                return fail(
                    &format!("writing {}: {e}", target.path.display()),
                    Exit::Infrastructure,
                );
            }
        }
    }
    let streamed = std::sync::Mutex::new(Streamed {
        json,
        next: 0,
        error: None,
    });
    let jobs = usize::from(args.jobs).clamp(1, plans.len().max(1));
    // Workers take the next scenario from one queue; reports land in the
    // scenarios' order whatever order they finish in, so a parallel run's
    // reports match a sequential run's apart from timings.
    let queue = std::sync::Mutex::new(plans.iter().enumerate());
    let done: std::sync::Mutex<Vec<Option<ScenarioReport>>> =
        std::sync::Mutex::new(plans.iter().map(|_| None).collect());
    let worker = || async {
        // Progress bars of several scenarios at once would interleave: a
        // parallel run prints one line per finished scenario instead.
        let mut servers = ServerPool::default().with_progress(!quiet && jobs == 1);
        loop {
            let next = lock(&queue).next();
            let Some((index, plan)) = next else {
                break;
            };
            let scenario = &plan.scenario;
            let options = crate::provision::ProvisionOptions {
                run_id: run_id.clone(),
                template_cache: template_cache.clone(),
                ..args.backend.options(scenario.backend)
            };
            let report = servers.rehearse(plan, &options).await;
            if !quiet {
                eprintln!(
                    "rehearse: {} {}",
                    crate::report::summary_line(&report),
                    scenario.path.display()
                );
            }
            let mut done = lock(&done);
            done[index] = Some(report);
            lock(&streamed).write_ready(&done);
        }
        servers.shutdown().await
    };
    let cleanups = futures_util::future::join_all((0..jobs).map(|_| worker())).await;
    if let Some(Err(e)) = cleanups.into_iter().find(Result::is_err) {
        return fail(&format!("cleanup failed: {e}"), Exit::Infrastructure);
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let streamed = streamed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = streamed.error {
        return fail(&e, Exit::Infrastructure);
    }
    for (target, stream) in streamed.json {
        if let Err(e) = stream
            .finish(duration_ms)
            .and_then(|mut file| std::io::Write::flush(&mut file))
        {
            return fail(
                &format!("writing {}: {e}", target.path.display()),
                Exit::Infrastructure,
            );
        }
    }
    let reports: Vec<ScenarioReport> = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect();
    let report = RunReport {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        started_at,
        duration_ms,
        scenarios: reports,
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = write_terminal(&report, TerminalOptions::detect(quiet), &mut stdout) {
        return fail(&format!("writing to stdout: {e}"), Exit::Infrastructure);
    }
    for target in args.report.iter().flat_map(|targets| &targets.0) {
        if target.format == ReportFormat::Json {
            continue;
        }
        if let Err(e) = write_report(&report, target) {
            return fail(
                &format!("writing {}: {e}", target.path.display()),
                Exit::Infrastructure,
            );
        }
    }
    report.exit()
}

type JsonFile = JsonStream<std::io::BufWriter<std::fs::File>>;

/// The streamed reports and how far they got.
struct Streamed<'a> {
    json: Vec<(&'a ReportTarget, JsonFile)>,
    /// Index of the next scenario to write.
    next: usize,
    error: Option<String>,
}

impl Streamed<'_> {
    /// Writes every finished scenario whose predecessors are written.
    fn write_ready(&mut self, done: &[Option<ScenarioReport>]) {
        while let Some(Some(report)) = done.get(self.next) {
            for (target, stream) in &mut self.json {
                if let Err(e) = stream.scenario(report) {
                    self.error
                        .get_or_insert(format!("writing {}: {e}", target.path.display()));
                }
            }
            self.next += 1;
        }
    }
}

fn json_targets(targets: Option<&ReportTargets>) -> impl Iterator<Item = &ReportTarget> {
    targets
        .into_iter()
        .flat_map(|targets| &targets.0)
        .filter(|target| target.format == ReportFormat::Json)
}

fn open_stream(target: &ReportTarget, run_id: &str, started_at: &str) -> std::io::Result<JsonFile> {
    if let Some(parent) = target.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(&target.path)?);
    JsonStream::begin(
        file,
        SCHEMA_VERSION,
        env!("CARGO_PKG_VERSION"),
        run_id,
        started_at,
    )
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these locks.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Loads every scenario and its migrations, collecting all errors rather
/// than stopping at the first: bad input is reported before anything runs.
fn load_all(paths: &[PathBuf]) -> Result<Vec<Plan>, Vec<String>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        let files = match discover(path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        for file in files {
            match Scenario::load(&file)
                .map_err(|e| e.to_string())
                .and_then(|scenario| {
                    Plan::prepare(scenario).map_err(|e| format!("{}: {e}", file.display()))
                }) {
                Ok(plan) => {
                    for skipped in
                        crate::migrate::source::unmatched_files(&plan.scenario.migrations.dir)
                    {
                        eprintln!(
                            "rehearse: warning: {}: the name fits no migration layout \
                             (e.g. 0001_name.sql, V1__name.sql); it is not rehearsed",
                            skipped.display()
                        );
                    }
                    plans.push(plan);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors)
    }
}

fn write_report(report: &RunReport, target: &ReportTarget) -> std::io::Result<()> {
    if let Some(parent) = target.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(&target.path)?);
    target.format.write(report, &mut file)?;
    std::io::Write::flush(&mut file)
}

#[cfg(test)]
mod tests {
    use super::Partition;

    #[test]
    fn partitions_parse_and_cover_every_index_once() {
        assert!(Partition::parse("0/3").is_err());
        assert!(Partition::parse("4/3").is_err());
        assert!(Partition::parse("1/0").is_err());
        assert!(Partition::parse("x").unwrap_err().contains("K/N"));
        let shards: Vec<Partition> = (1..=3)
            .map(|k| Partition::parse(&format!("{k}/3")).unwrap())
            .collect();
        for index in 0..10 {
            let owners = shards.iter().filter(|p| p.contains(index)).count();
            assert_eq!(owners, 1, "index {index}");
        }
        assert!(shards[1].contains(4));
    }
}
