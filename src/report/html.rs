//! One self-contained HTML file per run: inline CSS and inline SVG, no
//! scripts, fonts or images from anywhere (it is opened from CI artifacts,
//! often offline).
//!
//! Per scenario: the phases of the pipeline, a timeline of the rehearsal
//! with one row per replica (statement bars, lock waits, failures, where
//! each migration was applied), then the findings. Sections for data a
//! report does not carry yet (lock holds per relation, app latency) say so
//! rather than disappear, so a reader knows they were not measured.

use std::fmt::Write as _;
use std::io;

use super::redact::scrub;
use super::summary::{
    ScenarioSummary, human_us, severity_word, statement_spans, verdict_word, wait_spans,
    worst_first,
};
use super::terminal::row;
use super::{RunReport, ScenarioReport, Verdict};
use crate::timeline::{Actor, EventKind, ExitStatus, Timeline};

/// Writes the run as one HTML document.
pub fn write_html(report: &RunReport, out: &mut impl io::Write) -> io::Result<()> {
    let mut html = String::new();
    render(report, &mut html).map_err(|_| io::Error::other("formatting the html report"))?;
    out.write_all(html.as_bytes())
}

/// Escapes text for HTML content and attribute values, after scrubbing it.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in scrub(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2.5rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;font-size:.9rem}
th{background:#f6f8fa}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
.error{color:#8250df;font-weight:bold}
.muted{color:#656d76}
svg{display:block;margin:.5rem 0;font-size:11px}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
";

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Error => "error",
    }
}

fn render(report: &RunReport, h: &mut String) -> std::fmt::Result {
    writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>rehearse report {}</title><style>{STYLE}</style></head><body>",
        esc(&report.run_id)
    )?;
    writeln!(h, "<h1>rehearse report</h1>")?;
    writeln!(
        h,
        "<p class=\"muted\">run {} &middot; started {} &middot; {} &middot; rehearse {}</p>",
        esc(&report.run_id),
        esc(&report.started_at),
        human_us(report.duration_ms.saturating_mul(1_000)),
        esc(&report.tool_version)
    )?;
    let scenarios = worst_first(&report.scenarios);
    writeln!(
        h,
        "<table id=\"summary\"><tr><th>Verdict</th><th>Scenario</th><th>Replicas</th>\
         <th>Races</th><th>Longest lock wait</th><th>Slowest statement</th><th>Worst stall</th>\
         <th>Breakages</th></tr>"
    )?;
    for (i, scenario) in scenarios.iter().enumerate() {
        let cells = row(&ScenarioSummary::of(scenario));
        write!(
            h,
            "<tr><td class=\"{}\">{}</td><td><a href=\"#s{i}\">{}</a></td>",
            verdict_class(scenario.verdict),
            cells[0],
            esc(&cells[1])
        )?;
        for cell in &cells[2..] {
            write!(h, "<td>{}</td>", esc(cell))?;
        }
        writeln!(h, "</tr>")?;
    }
    writeln!(h, "</table>")?;
    for (i, scenario) in scenarios.iter().enumerate() {
        render_scenario(i, scenario, h)?;
    }
    writeln!(h, "</body></html>")
}

fn render_scenario(i: usize, s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    writeln!(
        h,
        "<section id=\"s{i}\"><h2><span class=\"{}\">{}</span> {}</h2>",
        verdict_class(s.verdict),
        verdict_word(s.verdict),
        esc(&s.name)
    )?;
    writeln!(
        h,
        "<p class=\"muted\">{} &middot; {} &middot; Postgres {}</p>",
        esc(&s.path),
        esc(s.backend.as_deref().unwrap_or("no backend")),
        esc(s.postgres_version.as_deref().unwrap_or("-"))
    )?;
    if let Some(error) = &s.error {
        writeln!(
            h,
            "<p class=\"error\">could not rehearse: {}</p>",
            esc(error)
        )?;
    }
    if !s.reasons.is_empty() {
        writeln!(h, "<h3>Fails because</h3><ul>")?;
        for reason in &s.reasons {
            writeln!(h, "<li>{}</li>", esc(reason))?;
        }
        writeln!(h, "</ul>")?;
    }
    render_phases(s, h)?;
    if let Some(race) = &s.race {
        writeln!(
            h,
            "<h3>Rehearsal timeline</h3><p class=\"muted\">{} replica(s), runner {}, \
             pending {}</p>",
            race.replicas,
            esc(&race.runner),
            esc(&race.pending.join(", "))
        )?;
        render_timeline(&race.timeline, h)?;
    }
    writeln!(
        h,
        "<h3>Lock holds per relation</h3><p class=\"muted\">not measured in this report</p>"
    )?;
    render_stalls(s, h)?;
    render_findings(s, h)?;
    writeln!(h, "</section>")
}

/// The pipeline's stages as one bar, widths proportional to durations.
fn render_phases(s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    let total: u64 = s.stages.iter().map(|st| st.duration_ms).sum();
    if s.stages.is_empty() {
        return Ok(());
    }
    const COLORS: [&str; 6] = [
        "#8c959f", "#54aeff", "#4ac26b", "#d4a72c", "#bf8700", "#a475f9",
    ];
    writeln!(h, "<h3>Phases</h3>")?;
    writeln!(
        h,
        "<svg class=\"phases\" width=\"1000\" height=\"30\" role=\"img\">"
    )?;
    let mut x = 0.0;
    for (k, stage) in s.stages.iter().enumerate() {
        let w = share(stage.duration_ms, total.max(1), 1000.0).max(2.0);
        writeln!(
            h,
            "<rect x=\"{x:.1}\" y=\"2\" width=\"{w:.1}\" height=\"24\" fill=\"{}\">\
             <title>{}: {} ms, {}</title></rect>",
            COLORS[k % COLORS.len()],
            esc(&stage.stage),
            stage.duration_ms,
            esc(&stage.summary)
        )?;
        if w > 60.0 {
            writeln!(
                h,
                "<text x=\"{:.1}\" y=\"18\" fill=\"#fff\">{}</text>",
                x + 4.0,
                esc(&stage.stage)
            )?;
        }
        x += w;
    }
    writeln!(
        h,
        "</svg><table><tr><th>Stage</th><th>ms</th><th>What</th></tr>"
    )?;
    for stage in &s.stages {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&stage.stage),
            stage.duration_ms,
            esc(&stage.summary)
        )?;
    }
    writeln!(h, "</table>")
}

#[expect(clippy::cast_precision_loss, reason = "pixel positions")]
fn share(part: u64, whole: u64, width: f64) -> f64 {
    part as f64 / whole as f64 * width
}

fn actor_label(actor: Actor) -> String {
    match actor {
        Actor::Replica(n) => format!("replica {n}"),
        Actor::Job => "migration job".into(),
        Actor::Rerun => "re-run".into(),
        Actor::Harness => "harness".into(),
    }
}

/// One row per actor: lock waits (amber), statements (blue, red when they
/// never finished), where each version was applied (green tick), failures
/// (red cross), the exit (grey bar end).
fn render_timeline(t: &Timeline, h: &mut String) -> std::fmt::Result {
    const LABEL: f64 = 120.0;
    const WIDTH: f64 = 860.0;
    const ROW: f64 = 24.0;
    let actors = t.actors();
    let end = t.events.iter().map(|e| e.at_us).max().unwrap_or(0).max(1);
    let x = |us: u64| LABEL + share(us, end, WIDTH);
    #[expect(clippy::cast_precision_loss, reason = "pixel positions")]
    let height = ROW * actors.len() as f64 + 30.0;
    writeln!(
        h,
        "<svg class=\"timeline\" width=\"{:.0}\" height=\"{height:.0}\" role=\"img\">",
        LABEL + WIDTH + 40.0
    )?;
    // Time axis: five ticks.
    for k in 0..=4u64 {
        let at = end * k / 4;
        writeln!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{1:.0}\" stroke=\"#eaeef2\"/>\
             <text x=\"{0:.1}\" y=\"{2:.0}\" text-anchor=\"middle\" fill=\"#656d76\">{3}</text>",
            x(at),
            height - 18.0,
            height - 4.0,
            human_us(at)
        )?;
    }
    let spans = statement_spans(t);
    let waits = wait_spans(t);
    for (row_index, actor) in actors.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "pixel positions")]
        let y = ROW * row_index as f64;
        let failed = t.exit_of(*actor).is_some_and(|e| e != ExitStatus::Success);
        writeln!(
            h,
            "<text x=\"4\" y=\"{:.1}\" fill=\"{}\">{}</text>",
            y + 16.0,
            if failed { "#cf222e" } else { "#1f2328" },
            actor_label(*actor)
        )?;
        let last = t.of(*actor).map(|e| e.at_us).max().unwrap_or(0);
        let first = t.of(*actor).map(|e| e.at_us).min().unwrap_or(0);
        writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2\" fill=\"#d0d7de\"/>",
            x(first),
            y + 11.0,
            (x(last) - x(first)).max(1.0)
        )?;
        for wait in waits.iter().filter(|w| w.actor == *actor) {
            let stop = wait.end_us.unwrap_or(last);
            writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#d4a72c\" \
                 opacity=\"0.6\"><title>waiting for the migration lock: {}</title></rect>",
                x(wait.start_us),
                y + 5.0,
                (x(stop) - x(wait.start_us)).max(1.0),
                human_us(stop.saturating_sub(wait.start_us))
            )?;
        }
        for span in spans.iter().filter(|s| s.actor == *actor) {
            let stop = span.end_us.unwrap_or(last);
            writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\">\
                 <title>{} statement {} (line {}): {}{}</title></rect>",
                x(span.start_us),
                y + 5.0,
                (x(stop) - x(span.start_us)).max(2.0),
                if span.end_us.is_some() {
                    "#0969da"
                } else {
                    "#cf222e"
                },
                esc(&span.version),
                span.index + 1,
                span.line,
                human_us(stop.saturating_sub(span.start_us)),
                if span.end_us.is_some() {
                    ""
                } else {
                    ", did not finish"
                }
            )?;
        }
        for event in t.of(*actor) {
            let cx = x(event.at_us);
            match &event.kind {
                EventKind::Applied { version, .. } => writeln!(
                    h,
                    "<path d=\"M{:.1} {:.1} l3 4 l6 -9\" stroke=\"#1a7f37\" stroke-width=\"2.5\" \
                     fill=\"none\"><title>applied {}</title></path>",
                    cx - 1.0,
                    y + 12.0,
                    esc(version)
                )?,
                EventKind::Failed { message, .. } => writeln!(
                    h,
                    "<path d=\"M{0:.1} {1:.1} l8 8 m0 -8 l-8 8\" stroke=\"#cf222e\" \
                     stroke-width=\"2.5\"><title>failed: {2}</title></path>",
                    cx - 4.0,
                    y + 8.0,
                    esc(message)
                )?,
                EventKind::Killed { version, .. } => writeln!(
                    h,
                    "<circle cx=\"{cx:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#8250df\">\
                     <title>killed during {}</title></circle>",
                    y + 12.0,
                    esc(version)
                )?,
                _ => {}
            }
        }
    }
    writeln!(h, "</svg>")?;
    writeln!(
        h,
        "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#0969da\"></i>statement\
         </span><span><i class=\"sw\" style=\"background:#cf222e\"></i>statement that did not \
         finish / failure</span><span><i class=\"sw\" style=\"background:#d4a72c\"></i>waiting \
         for the migration lock</span><span><i class=\"sw\" style=\"background:#1a7f37\"></i>\
         migration applied</span></p>"
    )
}

fn render_findings(s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    writeln!(h, "<h3>Findings</h3>")?;
    if s.findings.is_empty() {
        return writeln!(h, "<p class=\"muted\">none</p>");
    }
    writeln!(
        h,
        "<table><tr><th>Severity</th><th>Check</th><th>Finding</th></tr>"
    )?;
    for finding in &s.findings {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            severity_word(finding.severity),
            finding.check,
            esc(&finding.message)
        )?;
    }
    writeln!(h, "</table>")
}

/// App queries that stalled during the rollout, longest first, with the
/// migration statements that were running meanwhile.
fn render_stalls(s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    writeln!(h, "<h3>Application stalls</h3>")?;
    let Some(traffic) = &s.traffic else {
        return writeln!(h, "<p class=\"muted\">not measured in this report</p>");
    };
    if traffic.stalls.is_empty() {
        return writeln!(
            h,
            "<p class=\"muted\">no query took {} or longer</p>",
            human_us(traffic.stall_threshold_us)
        );
    }
    writeln!(
        h,
        "<table><tr><th>Latency</th><th>App version</th><th>Query</th><th>At</th>\
         <th>Migration statements running</th></tr>"
    )?;
    for stall in &traffic.stalls {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            human_us(stall.latency_us),
            esc(&stall.version),
            esc(&stall.query),
            human_us(stall.start_us),
            esc(&stall.during.join(", "))
        )?;
    }
    writeln!(h, "</table>")
}
