//! Markdown for a pull-request comment: a verdict line, the summary table
//! worst first, then at most a few reasons per failing scenario. Short on
//! purpose: the HTML report carries the rest.

use std::io;

use super::redact::scrub;
use super::summary::{ScenarioSummary, worst_first};
use super::terminal::row;
use super::{RunReport, Verdict};

/// Reasons shown per scenario before "and N more".
const MAX_REASONS: usize = 5;

/// Writes the run as a Markdown comment.
pub fn write_markdown(report: &RunReport, out: &mut impl io::Write) -> io::Result<()> {
    let count = |v: Verdict| report.scenarios.iter().filter(|s| s.verdict == v).count();
    let (failed, errors) = (count(Verdict::Fail), count(Verdict::Error));
    let headline = if failed + errors == 0 {
        format!(
            ":white_check_mark: **rehearse**: all {} scenario(s) passed",
            report.scenarios.len()
        )
    } else {
        format!(
            ":x: **rehearse**: {failed} failed, {errors} could not run, {} passed",
            count(Verdict::Pass)
        )
    };
    writeln!(out, "{headline}\n")?;
    writeln!(
        out,
        "| Verdict | Scenario | Replicas | Races | Worst lock | Longest lock wait | Slowest statement | \
         Worst stall | Breakages |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|")?;
    let scenarios = worst_first(&report.scenarios);
    for scenario in &scenarios {
        let cells = row(&ScenarioSummary::of(scenario)).map(|c| cell(&c));
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    for scenario in scenarios.iter().filter(|s| s.verdict != Verdict::Pass) {
        writeln!(out, "\n**{}**", cell(&scenario.name))?;
        let mut lines: Vec<String> = scenario.error.iter().map(|e| scrub(e)).collect();
        lines.extend(scenario.reasons.iter().map(|r| scrub(r)));
        for line in lines.iter().take(MAX_REASONS) {
            writeln!(out, "- {}", one_line(line))?;
        }
        if lines.len() > MAX_REASONS {
            writeln!(out, "- and {} more", lines.len() - MAX_REASONS)?;
        }
    }
    Ok(())
}

/// Text safe inside a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    scrub(text).split_whitespace().collect::<Vec<_>>().join(" ")
}
