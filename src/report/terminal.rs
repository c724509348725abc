//! The terminal report: one summary table for the run, then each scenario's
//! reasons and findings, worst first.
//!
//! Colour only when asked for ([`TerminalOptions::detect`] says when: a TTY,
//! no `NO_COLOR`, not CI). Progress bars during the run follow the same
//! rule and live in [`crate::progress`].

use std::io;

use anstyle::{AnsiColor, Style};

use super::redact::scrub;
use super::summary::{ScenarioSummary, human_us, verdict_word, worst_first};
use super::{RunReport, ScenarioReport, Verdict};
use crate::findings::Severity;

/// How the terminal report looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TerminalOptions {
    /// ANSI colours.
    pub color: bool,
    /// Only the table; no findings or reasons underneath.
    pub quiet: bool,
}

impl TerminalOptions {
    /// Colours on a TTY unless `NO_COLOR` (<https://no-color.org>) or `CI` is
    /// set; progress bars follow the same rule (see [`crate::progress`]).
    #[must_use]
    pub fn detect(quiet: bool) -> Self {
        TerminalOptions {
            color: interactive(&io::stdout()),
            quiet,
        }
    }
}

fn interactive(stream: &impl io::IsTerminal) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    stream.is_terminal() && !set("NO_COLOR") && !crate::testing::in_ci()
}

fn paint(options: TerminalOptions, style: Style, text: &str) -> String {
    if options.color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

fn verdict_style(verdict: Verdict) -> Style {
    let color = match verdict {
        Verdict::Pass => AnsiColor::Green,
        Verdict::Fail => AnsiColor::Red,
        Verdict::Error => AnsiColor::Magenta,
    };
    Style::new().bold().fg_color(Some(color.into()))
}

/// Columns of the summary table, one row per scenario.
const HEADER: [&str; 9] = [
    "VERDICT",
    "SCENARIO",
    "REPLICAS",
    "RACES",
    "WORST LOCK",
    "LONGEST LOCK WAIT",
    "SLOWEST STATEMENT",
    "WORST STALL",
    "BREAKAGES",
];

/// The cells of one row (also used by the Markdown table).
pub(crate) fn row(summary: &ScenarioSummary) -> [String; 9] {
    let dash = || "-".to_string();
    [
        verdict_word(summary.verdict).to_string(),
        scrub(&summary.name),
        match (&summary.runner, summary.replicas) {
            (Some(runner), Some(n)) => format!("{n} {runner}"),
            _ => dash(),
        },
        if summary.replicas.is_none() {
            dash()
        } else if summary.most_applications > 1 {
            format!("applied {}x", summary.most_applications)
        } else {
            "none".to_string()
        },
        summary
            .worst_lock
            .as_ref()
            .map_or_else(dash, |(us, lock)| format!("{} {lock}", human_us(*us))),
        summary.longest_lock_wait_us.map_or_else(dash, human_us),
        summary
            .slowest_statement
            .as_ref()
            .map_or_else(dash, |(us, at)| format!("{} ({at})", human_us(*us))),
        summary
            .worst_stall
            .as_ref()
            .map_or_else(dash, |(us, query)| format!("{} ({query})", human_us(*us))),
        if summary.failing_checks.is_empty() {
            if summary.verdict == Verdict::Error {
                dash()
            } else {
                "0".into()
            }
        } else {
            summary
                .failing_checks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    ]
}

/// Writes the whole run: the table, then the details of each scenario.
pub fn write_terminal(
    report: &RunReport,
    options: TerminalOptions,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let scenarios = worst_first(&report.scenarios);
    let rows: Vec<[String; 9]> = scenarios
        .iter()
        .map(|s| row(&ScenarioSummary::of(s)))
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = HEADER
        .iter()
        .zip(widths)
        .map(|(h, w)| format!("{h:<w$}"))
        .collect();
    writeln!(
        out,
        "{}",
        paint(options, Style::new().bold(), header.join("  ").trim_end())
    )?;
    for (row, scenario) in rows.iter().zip(&scenarios) {
        let mut cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        cells[0] = paint(options, verdict_style(scenario.verdict), &cells[0]);
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    if !options.quiet {
        for scenario in &scenarios {
            write_details(scenario, options, out)?;
        }
    }
    let count = |v: Verdict| report.scenarios.iter().filter(|s| s.verdict == v).count();
    writeln!(
        out,
        "\n{} passed, {} failed, {} errors in {}",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
        human_us(report.duration_ms.saturating_mul(1_000))
    )
}

/// A scenario's error, reasons and findings, indented under its name;
/// nothing for a clean pass.
fn write_details(
    scenario: &ScenarioReport,
    options: TerminalOptions,
    out: &mut impl io::Write,
) -> io::Result<()> {
    if scenario.error.is_none() && scenario.reasons.is_empty() && scenario.findings.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n{} {}",
        paint(
            options,
            verdict_style(scenario.verdict),
            verdict_word(scenario.verdict)
        ),
        paint(options, Style::new().bold(), &scrub(&scenario.name))
    )?;
    if let Some(error) = &scenario.error {
        writeln!(out, "  error: {}", scrub(error))?;
    }
    for reason in &scenario.reasons {
        writeln!(out, "  fails because {}", scrub(reason))?;
    }
    for finding in &scenario.findings {
        let (word, color) = match finding.severity {
            Severity::Error => ("error", AnsiColor::Red),
            Severity::Warning => ("warning", AnsiColor::Yellow),
            Severity::Info => ("info", AnsiColor::Blue),
        };
        let tolerated = if scenario.expect.findings.contains(&finding.check) {
            " (expected)"
        } else if scenario.expect.allow.contains(&finding.check) {
            " (allowed)"
        } else {
            ""
        };
        writeln!(
            out,
            "  {} {}{tolerated}: {}",
            paint(
                options,
                Style::new().fg_color(Some(color.into())),
                &format!("{word:<7}")
            ),
            finding.check,
            scrub(&finding.message)
        )?;
    }
    Ok(())
}
