//! The terminal report: a compact summary, one line per scenario (verdict,
//! name, what its findings count, the worst issue in words), then each
//! scenario's figures and findings, worst first, wrapped to the terminal.
//!
//! Every line fits [`TerminalOptions::width`] display columns (measured with
//! `unicode-width`, so wide and combining characters count as the terminal
//! draws them). Control characters and bidirectional overrides from
//! scenario names, SQL or error messages are replaced, so no input can move
//! the cursor, recolour the terminal or reorder what it shows.
//!
//! Colour only when asked for ([`TerminalOptions::detect`] says when: a TTY,
//! no `NO_COLOR`, not CI). Progress bars during the run follow the same
//! rule and live in [`crate::progress`].

use std::io;

use anstyle::{AnsiColor, Style};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::redact::scrub;
use super::summary::{
    ScenarioSummary, Tolerance, findings_worst_first, human_us, reasons_without_finding,
    severity_word, tolerance, verdict_word, worst_first,
};
use super::{RunReport, ScenarioReport, Verdict};
use crate::findings::Severity;

/// Width when stdout is not a terminal and `COLUMNS` is not set: wide
/// enough for a CI log viewer, narrow enough for a side-by-side diff.
pub const DEFAULT_WIDTH: usize = 100;

/// Narrower terminals are drawn at this width (the summary's four columns
/// need at least this much to say anything).
pub const MIN_WIDTH: usize = 40;

/// Longest text of one finding or reason in the details, in display
/// columns; the rest is in the JSON and HTML reports.
const MAX_DETAIL_COLUMNS: usize = 1_200;

/// How the terminal report looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalOptions {
    /// ANSI colours.
    pub color: bool,
    /// Only the summary; no figures or findings underneath.
    pub quiet: bool,
    /// Display columns every line fits in (at least [`MIN_WIDTH`]).
    pub width: usize,
}

impl Default for TerminalOptions {
    fn default() -> Self {
        TerminalOptions {
            color: false,
            quiet: false,
            width: DEFAULT_WIDTH,
        }
    }
}

impl TerminalOptions {
    /// Colours on a TTY unless `NO_COLOR` (<https://no-color.org>) or `CI` is
    /// set; progress bars follow the same rule (see [`crate::progress`]).
    /// The width is the terminal's, else `COLUMNS`, else [`DEFAULT_WIDTH`].
    #[must_use]
    pub fn detect(quiet: bool) -> Self {
        TerminalOptions {
            color: interactive(&io::stdout()),
            quiet,
            width: detect_width(),
        }
    }

    /// The same options drawn `width` columns wide.
    #[must_use]
    pub fn with_width(self, width: usize) -> Self {
        TerminalOptions { width, ..self }
    }
}

fn detect_width() -> usize {
    let columns = terminal_size::terminal_size_of(io::stdout())
        .map(|(terminal_size::Width(w), _)| usize::from(w))
        .filter(|w| *w > 0)
        .or_else(|| {
            std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.trim().parse::<usize>().ok())
                .filter(|w| *w > 0)
        });
    columns.unwrap_or(DEFAULT_WIDTH)
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

fn severity_style(severity: Severity) -> Style {
    let color = match severity {
        Severity::Error => AnsiColor::Red,
        Severity::Warning => AnsiColor::Yellow,
        Severity::Info => AnsiColor::Blue,
    };
    Style::new().fg_color(Some(color.into()))
}

/// `text` with passwords scrubbed and made safe to print: line breaks and
/// tabs become spaces, other control characters and bidirectional
/// formatting characters become U+FFFD.
#[must_use]
pub fn printable(text: &str) -> String {
    scrub(text)
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            // Bidirectional embeddings, overrides and isolates (Unicode
            // TR 9, section 2) reorder what follows them on screen.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => '\u{fffd}',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

/// Display width of `text` as a terminal draws it.
fn width_of(text: &str) -> usize {
    UnicodeWidthStr::width(text)
}

/// `text` cut to at most `width` display columns, with `…` when cut.
#[must_use]
pub fn truncate(text: &str, width: usize) -> String {
    if width_of(text) <= width {
        return text.to_string();
    }
    let budget = width.saturating_sub(1);
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > budget {
            break;
        }
        used += w;
        out.push(c);
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// `text` padded with spaces to `width` display columns.
fn pad(text: &str, width: usize) -> String {
    let mut out = text.to_string();
    out.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(width_of(text)),
    ));
    out
}

/// `text` wrapped to `width` columns: the first line after `first`, the
/// others after `rest` (both plain spaces or words of known width).
fn wrap(text: &str, width: usize, first: &str, rest: &str) -> Vec<String> {
    let text = truncate(text, MAX_DETAIL_COLUMNS);
    let options = textwrap::Options::new(width)
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(true);
    textwrap::wrap(&text, options)
        .into_iter()
        // Belt and braces: textwrap measures with the same crate, but a
        // line must never exceed the width whatever it decides.
        .map(|line| truncate(&line, width))
        .collect()
}

/// The summary's four columns.
const HEADER: [&str; 4] = ["VERDICT", "SCENARIO", "FINDINGS", "WORST ISSUE"];
const GAP: usize = 2;
/// The findings column is cut beyond this width (its longest case,
/// `12 failing, 3 expected, 2 allowed, 4 warnings, 1 note`, is rare).
const MAX_FINDINGS_WIDTH: usize = 28;

/// The cells of one summary row, printable and unpadded.
fn cells(scenario: &ScenarioReport, summary: &ScenarioSummary) -> [String; 4] {
    [
        verdict_word(summary.verdict).to_string(),
        printable(&summary.name),
        if scenario.verdict == Verdict::Error && scenario.findings.is_empty() {
            "not run".into()
        } else {
            summary.counts.words()
        },
        printable(&summary.worst_issue),
    ]
}

/// Column widths that fit `width`: the verdict and findings columns as
/// wide as their content, the rest shared by the name and the worst issue
/// (the name gets at most half when both are long).
fn column_widths(rows: &[[String; 4]], width: usize) -> [usize; 4] {
    let widest = |i: usize| {
        rows.iter()
            .map(|r| width_of(&r[i]))
            .chain([HEADER[i].len()])
            .max()
            .unwrap_or(0)
    };
    let verdict = widest(0);
    // What is left after the verdict and the gaps goes to the other three;
    // the findings column never takes more than a third of it.
    let flexible = width.saturating_sub(verdict + 3 * GAP);
    let findings = widest(2).min(MAX_FINDINGS_WIDTH).min(flexible / 3);
    let room = flexible - findings;
    let (name_wanted, issue_wanted) = (widest(1), widest(3));
    let name = if name_wanted + issue_wanted <= room {
        name_wanted
    } else {
        name_wanted
            .min((room / 2).max(room.saturating_sub(issue_wanted)))
            .max(HEADER[1].len())
            .min(room)
    };
    [verdict, name, findings, room.saturating_sub(name)]
}

/// Writes the whole run: the summary, then the details of each scenario.
pub fn write_terminal(
    report: &RunReport,
    options: TerminalOptions,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let options = options.with_width(options.width.max(MIN_WIDTH));
    let scenarios = worst_first(&report.scenarios);
    let summaries: Vec<ScenarioSummary> =
        scenarios.iter().map(|s| ScenarioSummary::of(s)).collect();
    let rows: Vec<[String; 4]> = scenarios
        .iter()
        .zip(&summaries)
        .map(|(s, summary)| cells(s, summary))
        .collect();
    let widths = column_widths(&rows, options.width);
    let line = |row: &[String; 4], verdict: Option<Verdict>| {
        let fitted: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let cut = truncate(cell, w);
                let padded = if i + 1 == row.len() {
                    cut
                } else {
                    pad(&cut, w)
                };
                match (i, verdict) {
                    (0, Some(v)) => paint(options, verdict_style(v), &padded),
                    _ => padded,
                }
            })
            .collect();
        fitted.join(&" ".repeat(GAP)).trim_end().to_string()
    };
    let header = HEADER.map(String::from);
    writeln!(
        out,
        "{}",
        paint(options, Style::new().bold(), &line(&header, None))
    )?;
    for (row, scenario) in rows.iter().zip(&scenarios) {
        writeln!(out, "{}", line(row, Some(scenario.verdict)))?;
    }
    if !options.quiet {
        for (scenario, summary) in scenarios.iter().zip(&summaries) {
            write_details(scenario, summary, options, out)?;
        }
    }
    let count = |v: Verdict| report.scenarios.iter().filter(|s| s.verdict == v).count();
    let totals = format!(
        "{} passed, {} failed, {} could not run, in {}",
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Error),
        human_us(report.duration_ms.saturating_mul(1_000))
    );
    writeln!(out, "\n{}", truncate(&totals, options.width))
}

/// The figures of a scenario, as `label: value` items.
fn figures(summary: &ScenarioSummary) -> Vec<String> {
    let mut items = Vec::new();
    if let (Some(runner), Some(n)) = (&summary.runner, summary.replicas) {
        let applied_twice = summary.most_applications > 1;
        let mut found: Vec<String> = Vec::new();
        if applied_twice {
            found.push(format!("a version applied {}x", summary.most_applications));
        }
        found.extend(
            summary
                .race_checks
                .iter()
                .filter(|c| !(applied_twice && **c == crate::findings::CheckId::DoubleApplication))
                .map(ToString::to_string),
        );
        let races = if found.is_empty() {
            "no race found".to_string()
        } else {
            format!("raced: {}", found.join(", "))
        };
        items.push(format!("replicas: {n} {}, {races}", printable(runner)));
        if summary.failed_replicas > 0 {
            items.push(format!("failed replicas: {}", summary.failed_replicas));
        }
    }
    if let Some((us, lock)) = &summary.worst_lock {
        items.push(format!("worst lock: {} {}", human_us(*us), printable(lock)));
    }
    if let Some(us) = summary.longest_lock_wait_us {
        items.push(format!("longest migration-lock wait: {}", human_us(us)));
    }
    if let Some((us, at)) = &summary.slowest_statement {
        items.push(format!(
            "slowest statement: {} ({})",
            human_us(*us),
            printable(at)
        ));
    }
    if let Some((us, query)) = &summary.worst_stall {
        items.push(format!(
            "worst app stall: {} ({})",
            human_us(*us),
            printable(query)
        ));
    }
    items
}

/// A scenario's figures, error, reasons and findings, indented under its
/// name; nothing for a clean pass without figures.
fn write_details(
    scenario: &ScenarioReport,
    summary: &ScenarioSummary,
    options: TerminalOptions,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let figures = figures(summary);
    let reasons = reasons_without_finding(scenario);
    if scenario.error.is_none()
        && reasons.is_empty()
        && scenario.findings.is_empty()
        && figures.is_empty()
    {
        return Ok(());
    }
    let width = options.width;
    let verdict = verdict_word(scenario.verdict);
    let name = truncate(
        &printable(&scenario.name),
        width.saturating_sub(verdict.len() + 1),
    );
    writeln!(
        out,
        "\n{} {}",
        paint(options, verdict_style(scenario.verdict), verdict),
        paint(options, Style::new().bold(), &name)
    )?;
    if !figures.is_empty() {
        for line in wrap(&figures.join("; "), width, "  ", "    ") {
            writeln!(out, "{line}")?;
        }
    }
    if let Some(error) = &scenario.error {
        for line in wrap(&format!("error: {}", printable(error)), width, "  ", "    ") {
            writeln!(out, "{line}")?;
        }
    }
    for reason in reasons {
        for line in wrap(
            &format!("fails because {}", printable(reason)),
            width,
            "  ",
            "    ",
        ) {
            writeln!(out, "{line}")?;
        }
    }
    for finding in findings_worst_first(scenario) {
        let how = match tolerance(scenario, finding) {
            Tolerance::Expected => " (expected)",
            Tolerance::Allowed => " (allowed)",
            Tolerance::None if finding.severity == Severity::Error => " (fails)",
            // Warnings and notes never fail a scenario.
            Tolerance::None => "",
        };
        let word = format!("{:<7}", severity_word(finding.severity));
        let text = format!(
            "{word} {}{how}: {}",
            finding.check,
            printable(&finding.message)
        );
        for (i, line) in wrap(&text, width, "  ", "          ")
            .into_iter()
            .enumerate()
        {
            match line.strip_prefix(&format!("  {word}")) {
                Some(rest) if i == 0 => writeln!(
                    out,
                    "  {}{rest}",
                    paint(options, severity_style(finding.severity), &word)
                )?,
                _ => writeln!(out, "{line}")?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_every_width_whatever_the_content() {
        for width in MIN_WIDTH..=160 {
            for wanted in [0, 1, 7, 20, 30, 80, 500] {
                let long = "x".repeat(wanted);
                let rows = [[
                    "ERROR".to_string(),
                    long.clone(),
                    long.clone(),
                    long.clone(),
                ]];
                let widths = column_widths(&rows, width);
                let total: usize = widths.iter().sum::<usize>() + 3 * GAP;
                assert!(total <= width, "{widths:?} at {width} for {wanted}");
            }
        }
    }

    #[test]
    fn truncation_counts_display_columns() {
        assert_eq!(truncate("日本語", 4), "日…");
        assert_eq!(width_of(&truncate("日本語", 4)), 3);
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 0), "");
        assert_eq!(
            printable("a\u{1b}[2Jb\nc\u{202e}"),
            "a\u{fffd}[2Jb c\u{fffd}"
        );
    }
}
