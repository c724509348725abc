//! Markdown for a pull-request comment: a verdict line, a compact summary
//! table worst first, then one folded `<details>` block per scenario that
//! failed, could not run or has findings, listing its findings worst first
//! with the statement, the lock and the numbers each one is about.
//!
//! Everything that comes from a scenario (names, messages, SQL) is escaped:
//! text as Markdown with `<`, `>` and `&` as entities (a comment must never
//! carry raw HTML from its input), `|` escaped in tables, `@` as an entity
//! so a scenario name never mentions a user; SQL in fenced blocks whose fence
//! is longer than any run of backticks inside.

use std::io;

use super::redact::scrub;
use super::summary::{
    ScenarioSummary, Tolerance, findings_worst_first, reasons_without_finding, severity_word,
    tolerance, verdict_word, worst_first,
};
use super::{RunReport, ScenarioReport, Verdict};
use crate::findings::{Finding, Severity};

/// Findings listed per scenario before "and N more" (GitHub caps a comment
/// at 65,536 characters; the HTML report carries the rest).
const MAX_FINDINGS: usize = 12;
/// Reasons listed per scenario before "and N more".
const MAX_REASONS: usize = 5;
/// Characters of a message or a table cell before it is cut.
const MAX_TEXT: usize = 600;
/// Characters of the worst issue in the summary table.
const MAX_CELL: usize = 140;
/// Lines of SQL quoted per statement.
const MAX_SQL_LINES: usize = 15;
/// Scenarios listed in the summary table, worst first.
const MAX_ROWS: usize = 50;
/// Characters of details blocks, all scenarios together: GitHub refuses a
/// comment over 65,536 characters, and the table and headline come first.
const DETAILS_BUDGET: usize = 40_000;

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
    writeln!(out, "| Verdict | Scenario | Findings | Worst issue |")?;
    writeln!(out, "|---|---|---|---|")?;
    let scenarios = worst_first(&report.scenarios);
    for scenario in scenarios.iter().take(MAX_ROWS) {
        let summary = ScenarioSummary::of(scenario);
        writeln!(
            out,
            "| {} {} | {} | {} | {} |",
            verdict_icon(scenario.verdict),
            verdict_word(scenario.verdict),
            cell(&summary.name, MAX_CELL),
            counts(scenario, &summary),
            cell(&summary.worst_issue, MAX_CELL),
        )?;
    }
    if let Some(hidden) = scenarios.get(MAX_ROWS..) {
        let count = |v: Verdict| hidden.iter().filter(|s| s.verdict == v).count();
        writeln!(
            out,
            "\nAnd {} more scenario(s) ({} failed, {} could not run, {} passed) in the HTML and \
             JSON reports.",
            hidden.len(),
            count(Verdict::Fail),
            count(Verdict::Error),
            count(Verdict::Pass)
        )?;
    }
    let detailed: Vec<&&ScenarioReport> = scenarios.iter().filter(|s| worth_detailing(s)).collect();
    let mut spent = 0;
    for (i, scenario) in detailed.iter().enumerate() {
        let mut block = Vec::new();
        write_scenario(scenario, &mut block)?;
        spent += block.len();
        if spent > DETAILS_BUDGET {
            writeln!(
                out,
                "\nDetails of {} more scenario(s) are in the HTML and JSON reports.",
                detailed.len() - i
            )?;
            break;
        }
        out.write_all(&block)?;
    }
    Ok(())
}

fn verdict_icon(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => ":white_check_mark:",
        Verdict::Fail => ":x:",
        Verdict::Error => ":warning:",
    }
}

fn counts(scenario: &ScenarioReport, summary: &ScenarioSummary) -> String {
    if scenario.verdict == Verdict::Error && scenario.findings.is_empty() {
        "not run".into()
    } else {
        summary.counts.words()
    }
}

/// A scenario gets a details block when it did not pass cleanly: it failed,
/// could not run, or has warnings or tolerated findings.
fn worth_detailing(scenario: &ScenarioReport) -> bool {
    scenario.verdict != Verdict::Pass
        || scenario
            .findings
            .iter()
            .any(|f| f.severity >= Severity::Warning)
}

fn write_scenario(scenario: &ScenarioReport, out: &mut impl io::Write) -> io::Result<()> {
    let summary = ScenarioSummary::of(scenario);
    // Open when it fails the run: that is what the reader came for.
    let open = if scenario.verdict == Verdict::Pass {
        ""
    } else {
        " open"
    };
    writeln!(
        out,
        "\n<details{open}><summary><b>{} {}</b>: {}</summary>\n",
        verdict_word(scenario.verdict),
        html(&cut(&summary.name, MAX_CELL)),
        html(&counts(scenario, &summary)),
    )?;
    if let Some(error) = &scenario.error {
        writeln!(out, "**Could not run**: {}\n", text(error, MAX_TEXT))?;
    }
    let reasons = reasons_without_finding(scenario);
    if !reasons.is_empty() {
        writeln!(out, "**Fails because**\n")?;
        for reason in reasons.iter().take(MAX_REASONS) {
            writeln!(out, "- {}", text(reason, MAX_TEXT))?;
        }
        if reasons.len() > MAX_REASONS {
            writeln!(out, "- and {} more", reasons.len() - MAX_REASONS)?;
        }
        writeln!(out)?;
    }
    let findings = findings_worst_first(scenario);
    for finding in findings.iter().take(MAX_FINDINGS) {
        write_finding(scenario, finding, out)?;
    }
    if findings.len() > MAX_FINDINGS {
        writeln!(
            out,
            "- and {} more finding(s) in the HTML and JSON reports",
            findings.len() - MAX_FINDINGS
        )?;
    }
    writeln!(out, "\n</details>")
}

/// One finding: severity, check, how it weighs, the message; then the
/// statement (with its SQL when the lock trace has it), the lock and the
/// numbers from its evidence.
fn write_finding(
    scenario: &ScenarioReport,
    finding: &Finding,
    out: &mut impl io::Write,
) -> io::Result<()> {
    let how = match tolerance(scenario, finding) {
        Tolerance::Expected => " (expected)",
        Tolerance::Allowed => " (allowed)",
        Tolerance::None if finding.severity == Severity::Error => " (**fails**)",
        // Warnings and notes never fail a scenario.
        Tolerance::None => "",
    };
    writeln!(
        out,
        "- **{}** `{}`{how}: {}",
        severity_word(finding.severity),
        finding.check,
        text(&finding.message, MAX_TEXT)
    )?;
    let evidence = Evidence::of(&finding.details);
    if let Some((version, line)) = &evidence.statement {
        writeln!(
            out,
            "  - statement: migration {} line {line}",
            text(version, MAX_CELL)
        )?;
        if let Some(sql) = sql_of(scenario, version, *line) {
            write_sql(&sql, out)?;
        }
    }
    if let Some(lock) = &evidence.lock {
        writeln!(out, "  - lock: {}", text(lock, MAX_CELL))?;
    }
    if let Some(relation) = &evidence.relation {
        writeln!(out, "  - relation: {}", text(relation, MAX_CELL))?;
    }
    if !evidence.numbers.is_empty() {
        let numbers: Vec<String> = evidence
            .numbers
            .iter()
            .map(|(k, v)| format!("{} = {v}", text(k, 60)))
            .collect();
        writeln!(out, "  - numbers: {}", numbers.join(", "))?;
    }
    Ok(())
}

/// What a finding's structured details say about where and how much.
#[derive(Debug, Default)]
struct Evidence {
    /// Migration version and line.
    statement: Option<(String, usize)>,
    /// `MODE on relation`.
    lock: Option<String>,
    /// The relation, when no lock mode is given.
    relation: Option<String>,
    /// Top-level numeric fields, in the check's order.
    numbers: Vec<(String, String)>,
}

impl Evidence {
    fn of(details: &serde_json::Value) -> Self {
        let mut evidence = Evidence::default();
        let Some(map) = details.as_object() else {
            return evidence;
        };
        let str_of = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str().map(String::from));
        let line_of = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_u64).map(|l| l as usize)
        };
        // A statement is either `version` + `line` beside the rest, or a
        // `statement` object carrying them.
        evidence.statement = match (str_of(map.get("version")), line_of(map.get("line"))) {
            (Some(version), Some(line)) => Some((version, line)),
            _ => map
                .get("statement")
                .and_then(|s| Some((str_of(s.get("version"))?, line_of(s.get("line"))?))),
        };
        let relation = str_of(map.get("relation")).or_else(|| str_of(map.get("table")));
        // Modes are serialised kebab-case; show them as SQL spells them.
        let mode = map.get("mode").map(|m| {
            serde_json::from_value::<crate::locks::LockMode>(m.clone()).map_or_else(
                |_| m.as_str().unwrap_or_default().to_string(),
                |m| m.to_string(),
            )
        });
        match (mode, relation) {
            (Some(mode), Some(relation)) => evidence.lock = Some(format!("{mode} on {relation}")),
            (Some(mode), None) => evidence.lock = Some(mode),
            (None, relation) => evidence.relation = relation,
        }
        evidence.numbers = map
            .iter()
            .filter(|(key, _)| key.as_str() != "line")
            .filter_map(|(key, value)| match value {
                serde_json::Value::Number(n) => Some((key.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        evidence
    }
}

/// The SQL of `version` line `line`, from the scenario's lock trace.
fn sql_of(scenario: &ScenarioReport, version: &str, line: usize) -> Option<String> {
    scenario
        .locks
        .as_ref()?
        .trace
        .as_ref()?
        .statements
        .iter()
        .find(|s| s.version == version && s.line == line)
        .map(|s| s.sql.clone())
}

/// `sql` in a fenced block, indented under its list item; the fence is
/// longer than any run of backticks in the SQL, so nothing escapes it.
fn write_sql(sql: &str, out: &mut impl io::Write) -> io::Result<()> {
    let sql = scrub(sql);
    let longest_run = sql.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    writeln!(out, "\n    {fence}sql")?;
    let lines: Vec<&str> = sql.trim().lines().collect();
    for line in lines.iter().take(MAX_SQL_LINES) {
        writeln!(out, "    {}", line.replace(|c: char| c.is_control(), " "))?;
    }
    if lines.len() > MAX_SQL_LINES {
        writeln!(out, "    -- {} more line(s)", lines.len() - MAX_SQL_LINES)?;
    }
    writeln!(out, "    {fence}\n")
}

/// At most `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Untrusted text as inline Markdown on one line: scrubbed of passwords,
/// whitespace folded, control characters dropped, and every character that
/// could start markup, HTML, an entity, a link or a mention escaped.
fn text(raw: &str, max: usize) -> String {
    let folded = scrub(raw).split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for c in cut(&folded, max).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '@' => out.push_str("&#64;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Untrusted text inside a table cell.
fn cell(raw: &str, max: usize) -> String {
    text(raw, max)
}

/// Untrusted text inside HTML (the `<summary>` line, where Markdown is not
/// rendered).
fn html(raw: &str) -> String {
    let mut out = String::new();
    for c in scrub(raw).chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '@' => out.push_str("&#64;"),
            // GitHub renders some Markdown inside `<summary>`: no links,
            // emphasis or code spans from the input there either.
            '[' => out.push_str("&#91;"),
            ']' => out.push_str("&#93;"),
            '`' => out.push_str("&#96;"),
            '*' => out.push_str("&#42;"),
            '_' => out.push_str("&#95;"),
            '|' => out.push_str("&#124;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
