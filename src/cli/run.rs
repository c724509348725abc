//! `rehearse run`: rehearse scenario files and write reports.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::{BackendArgs, fail};
use crate::exit::Exit;
use crate::provision::RunId;
use crate::rehearsal::{Plan, ServerPool};
use crate::report::{
    ReportFormat, ReportTarget, ReportTargets, RunReport, SCHEMA_VERSION, Verdict, parse_targets,
    write_json,
};
use crate::scenario::{Scenario, discover};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Scenario files or folders (default: scenarios/).
    #[arg(value_name = "SCENARIO", default_value = "scenarios")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
    /// Reports to write, comma-separated FORMAT=PATH items, e.g. json=report.json.
    #[arg(long, value_parser = parse_targets)]
    report: Option<ReportTargets>,
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
    let run_id = RunId::new();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = Instant::now();
    let mut reports = Vec::new();
    let mut servers = ServerPool::default();
    for plan in &plans {
        let scenario = &plan.scenario;
        if !quiet {
            eprintln!("rehearse: {} ({})", scenario.name, scenario.path.display());
        }
        let options = crate::provision::ProvisionOptions {
            run_id: run_id.clone(),
            ..args.backend.options(scenario.backend)
        };
        let report = servers.rehearse(plan, &options).await;
        print_summary(&report);
        reports.push(report);
    }
    if let Err(e) = servers.shutdown().await {
        return fail(&format!("cleanup failed: {e}"), Exit::Infrastructure);
    }
    let report = RunReport {
        schema_version: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        started_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        scenarios: reports,
    };
    for target in args.report.iter().flat_map(|targets| &targets.0) {
        if let Err(e) = write_report(&report, target) {
            return fail(
                &format!("writing {}: {e}", target.path.display()),
                Exit::Infrastructure,
            );
        }
    }
    report.exit()
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERROR",
    }
}

/// One line per scenario, then its findings and reasons, indented.
fn print_summary(report: &crate::report::ScenarioReport) {
    let error = report
        .error
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    println!("{:<5} {}{error}", verdict_word(report.verdict), report.name);
    for finding in &report.findings {
        println!(
            "      {:?} {}: {}",
            finding.severity, finding.check, finding.message
        );
    }
    for reason in &report.reasons {
        println!("      fails because {reason}");
    }
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
                Ok(plan) => plans.push(plan),
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
    match target.format {
        ReportFormat::Json => write_json(report, &mut file)?,
    }
    std::io::Write::flush(&mut file)
}
