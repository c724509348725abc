//! The forecast at production size, for the terminal and as JSON. Pure.

use std::io;

use crate::forecast::{ForecastReport, human_duration, human_rows};

/// One line per statement ("CREATE INDEX on orders: SHARE held about ...")
/// with what it was fitted on, then the statements over `budget_ms`.
pub fn write_terminal(
    report: &ForecastReport,
    budget_ms: Option<u64>,
    out: &mut impl io::Write,
) -> io::Result<()> {
    writeln!(
        out,
        "forecast at production size ({}), scenario {}:",
        report.source, report.scenario
    )?;
    for statement in &report.statements {
        writeln!(out, "  {}", statement.describe())?;
        let fitted: Vec<String> = statement
            .samples
            .iter()
            .map(|s| {
                format!(
                    "{} rows {}",
                    human_rows(s.rows),
                    human_duration(s.duration_us)
                )
            })
            .collect();
        if let Some(fit) = statement.fit {
            writeln!(
                out,
                "      fitted on {} ({}, {}); migration {}",
                fitted.join(", "),
                if fit.n_log_n { "n log n" } else { "linear" },
                statement.kind.label(),
                statement.migration
            )?;
        }
    }
    if let Some(budget) = budget_ms {
        let over = report.forecast_exceeds(std::time::Duration::from_millis(budget));
        if over.is_empty() {
            writeln!(out, "no forecast lock hold over the {budget} ms budget")?;
        } else {
            for statement in over {
                writeln!(
                    out,
                    "OVER BUDGET (forecast, {budget} ms): {}",
                    statement.describe()
                )?;
            }
        }
    }
    Ok(())
}

/// The report as pretty JSON.
pub fn write_json(report: &ForecastReport, out: &mut impl io::Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

/// A Markdown section: one table row per statement.
pub fn write_markdown(report: &ForecastReport, out: &mut impl io::Write) -> io::Result<()> {
    writeln!(out, "## Forecast at production size\n")?;
    writeln!(out, "Production size from {}.\n", report.source)?;
    writeln!(
        out,
        "| migration | statement | lock | rows | hold (interval) | fitted on |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    for s in &report.statements {
        let hold = s.hold.map_or_else(
            || "too few sizes".to_owned(),
            |h| {
                format!(
                    "{} ({} - {})",
                    human_duration(h.point_us),
                    human_duration(h.low_us),
                    human_duration(h.high_us)
                )
            },
        );
        let sizes: Vec<String> = s.samples.iter().map(|x| human_rows(x.rows)).collect();
        writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} |",
            s.migration,
            s.statement.replace('|', "\\|").replace('`', "'"),
            s.lock.map_or("none", |m| m.sql_name()),
            human_rows(s.rows),
            hold,
            sizes.join(", ")
        )?;
    }
    Ok(())
}
