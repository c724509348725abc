//! One self-contained HTML file per run: inline CSS and inline SVG, no
//! scripts, fonts or images from anywhere (it is opened from CI artifacts,
//! often offline).
//!
//! Per scenario: the phases of the pipeline, then one timeline on one time
//! axis: a row per replica (statement bars, lock waits, failures, where each
//! migration was applied) or the rollout's phases, and below them what the
//! lock sampler saw (holds per relation, the waiting queue, the waits); then
//! the lock table, application stalls and the findings. Sections for data a
//! report does not carry say so rather than disappear, so a reader knows
//! they were not measured.

mod locks;

use std::fmt::Write as _;
use std::io;

use super::redact::scrub;
use super::summary::{
    ScenarioSummary, human_us, severity_word, statement_spans, table_row, verdict_word, wait_spans,
    worst_first,
};
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
         <th>Races</th><th>Worst lock</th><th>Longest lock wait</th><th>Slowest statement</th><th>Worst stall</th>\
         <th>Findings</th></tr>"
    )?;
    for (i, scenario) in scenarios.iter().enumerate() {
        let cells = table_row(scenario, &ScenarioSummary::of(scenario));
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
    render_timeline(s, h)?;
    locks::render_tables(s, h)?;
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

/// The time axis every row of a scenario's timeline shares: replicas,
/// rollout phases, lock holds and waits line up because they are drawn with
/// the same `x`, on the timeline's clock (lock times are converted from the
/// sampler's, see [`crate::locks::LockAnalysis::timeline_us`]).
#[derive(Debug, Clone, Copy)]
struct Axis {
    end_us: u64,
}

impl Axis {
    /// Room for the row labels (relation names are long).
    const LABEL: f64 = 170.0;
    const WIDTH: f64 = 820.0;
    const WIDTH_PX: u64 = 820;
    const ROW: f64 = 24.0;

    /// Ends at the last thing any row draws.
    fn of(s: &ScenarioReport) -> Axis {
        let events = s
            .race
            .iter()
            .flat_map(|r| r.timeline.events.iter().map(|e| e.at_us));
        let phases = s.traffic.iter().flat_map(|t| {
            let phases = t.phases.iter().map(|p| p.end_us);
            phases.chain(t.statements.iter().map(|st| st.end_us))
        });
        let locks = s
            .locks
            .as_ref()
            .and_then(|l| l.sampled.as_ref())
            .map(locks::last_us)
            .unwrap_or(0);
        let end = events.chain(phases).fold(locks, u64::max);
        Axis { end_us: end.max(1) }
    }

    fn x(self, us: u64) -> f64 {
        Self::LABEL + share(us.min(self.end_us), self.end_us, Self::WIDTH)
    }

    /// Width of the span `from..to`, at least `min` pixels.
    fn w(self, from: u64, to: u64, min: f64) -> f64 {
        (self.x(to) - self.x(from)).max(min)
    }

    /// Microseconds one pixel stands for (at least 1).
    fn us_per_px(self) -> u64 {
        self.end_us.div_ceil(Self::WIDTH_PX).max(1)
    }
}

/// The scenario's timeline as one SVG: the replicas of a race (or the
/// phases and migration statements of a rollout), then the lock rows, all
/// on one [`Axis`].
fn render_timeline(s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    let sampled = s.locks.as_ref().and_then(|l| l.sampled.as_ref());
    let phases = s.traffic.as_ref().filter(|t| !t.phases.is_empty());
    if s.race.is_none() && phases.is_none() && sampled.is_none() {
        return Ok(());
    }
    let axis = Axis::of(s);
    match (&s.race, phases) {
        (Some(race), _) => writeln!(
            h,
            "<h3>Rehearsal timeline</h3><p class=\"muted\">{} replica(s), runner {}, \
             pending {}</p>",
            race.replicas,
            esc(&race.runner),
            esc(&race.pending.join(", "))
        )?,
        (None, Some(traffic)) => writeln!(
            h,
            "<h3>Rollout timeline</h3><p class=\"muted\">{} phase(s), {} migration \
             statement(s)</p>",
            traffic.phases.len(),
            traffic.statements.len()
        )?,
        (None, None) => writeln!(h, "<h3>Timeline</h3>")?,
    }
    let mut body = String::new();
    let mut y = 0.0;
    if let Some(race) = &s.race {
        y = actor_rows(&race.timeline, axis, y, &mut body)?;
    } else if let Some(traffic) = phases {
        y = rollout_rows(traffic, axis, y, &mut body)?;
    }
    if let Some(sampled) = sampled {
        y = locks::rows(sampled, axis, y, &mut body)?;
    }
    let height = y + 30.0;
    writeln!(
        h,
        "<svg class=\"timeline\" width=\"{:.0}\" height=\"{height:.0}\" role=\"img\">",
        Axis::LABEL + Axis::WIDTH + 40.0
    )?;
    // Time axis: five ticks, drawn first so that bars cover the grid.
    for k in 0..=4u64 {
        let at = axis.end_us * k / 4;
        writeln!(
            h,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"{1:.0}\" stroke=\"#eaeef2\"/>\
             <text x=\"{0:.1}\" y=\"{2:.0}\" text-anchor=\"middle\" fill=\"#656d76\">{3}</text>",
            axis.x(at),
            height - 18.0,
            height - 4.0,
            human_us(at)
        )?;
    }
    h.push_str(&body);
    writeln!(h, "</svg>")?;
    write!(h, "<p class=\"legend\">")?;
    if s.race.is_some() {
        write!(
            h,
            "<span><i class=\"sw\" style=\"background:#0969da\"></i>statement</span>\
             <span><i class=\"sw\" style=\"background:#cf222e\"></i>statement that did not \
             finish / failure</span>"
        )?;
        // With lock rows, one amber entry says "waiting for a lock" for both.
        if sampled.is_none() {
            write!(
                h,
                "<span><i class=\"sw\" style=\"background:#d4a72c\"></i>waiting for the \
                 migration lock</span>"
            )?;
        }
        write!(
            h,
            "<span><i class=\"sw\" style=\"background:#1a7f37\"></i>migration applied</span>"
        )?;
    } else if phases.is_some() {
        write!(
            h,
            "<span><i class=\"sw\" style=\"background:#ddf4ff\"></i>phase with a migration\
             </span><span><i class=\"sw\" style=\"background:#0969da\"></i>migration statement\
             </span>"
        )?;
    }
    if sampled.is_some() {
        locks::legend(h)?;
    }
    writeln!(h, "</p>")?;
    if let Some(sampled) = sampled {
        locks::time_base_note(sampled, h)?;
    }
    Ok(())
}

/// Text of a row label, cut to fit the label column (the whole text is in
/// its tooltip).
fn label_text(text: &str) -> String {
    const FITS: usize = 26;
    if text.chars().count() <= FITS {
        return esc(text);
    }
    let cut: String = text.chars().take(FITS - 1).collect();
    format!("{}&#8230;", esc(&cut))
}

/// A row label at `y` (the top of its row).
fn row_label(y: f64, text: &str, color: &str, h: &mut String) -> std::fmt::Result {
    row_label_titled(y, text, text, color, h)
}

/// A row label with its own tooltip.
fn row_label_titled(
    y: f64,
    text: &str,
    title: &str,
    color: &str,
    h: &mut String,
) -> std::fmt::Result {
    writeln!(
        h,
        "<text x=\"4\" y=\"{:.1}\" fill=\"{color}\">{}<title>{}</title></text>",
        y + 16.0,
        label_text(text),
        esc(title)
    )
}

/// One row per actor: lock waits (amber), statements (blue, red when they
/// never finished), where each version was applied (green tick), failures
/// (red cross), the exit (grey bar end). Returns the `y` below the rows.
fn actor_rows(t: &Timeline, axis: Axis, top: f64, h: &mut String) -> Result<f64, std::fmt::Error> {
    let actors = t.actors();
    let spans = statement_spans(t);
    let waits = wait_spans(t);
    let mut y = top;
    for actor in &actors {
        let failed = t.exit_of(*actor).is_some_and(|e| e != ExitStatus::Success);
        row_label(
            y,
            &actor_label(*actor),
            if failed { "#cf222e" } else { "#1f2328" },
            h,
        )?;
        let last = t.of(*actor).map(|e| e.at_us).max().unwrap_or(0);
        let first = t.of(*actor).map(|e| e.at_us).min().unwrap_or(0);
        writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2\" fill=\"#d0d7de\"/>",
            axis.x(first),
            y + 11.0,
            axis.w(first, last, 1.0)
        )?;
        for wait in waits.iter().filter(|w| w.actor == *actor) {
            let stop = wait.end_us.unwrap_or(last);
            writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#d4a72c\" \
                 opacity=\"0.6\"><title>waiting for the migration lock: {}</title></rect>",
                axis.x(wait.start_us),
                y + 5.0,
                axis.w(wait.start_us, stop, 1.0),
                human_us(stop.saturating_sub(wait.start_us))
            )?;
        }
        for span in spans.iter().filter(|s| s.actor == *actor) {
            let stop = span.end_us.unwrap_or(last);
            writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"{}\">\
                 <title>{} statement {} (line {}): {}{}</title></rect>",
                axis.x(span.start_us),
                y + 5.0,
                axis.w(span.start_us, stop, 2.0),
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
            let cx = axis.x(event.at_us);
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
        y += Axis::ROW;
    }
    Ok(y)
}

/// A rollout: its phases as one row of segments, the migration statements
/// as another. Returns the `y` below the rows.
fn rollout_rows(
    traffic: &crate::workload::TrafficReport,
    axis: Axis,
    top: f64,
    h: &mut String,
) -> Result<f64, std::fmt::Error> {
    let mut y = top;
    row_label(y, "rollout phases", "#1f2328", h)?;
    for (k, phase) in traffic.phases.iter().enumerate() {
        let x = axis.x(phase.start_us);
        let w = axis.w(phase.start_us, phase.end_us, 1.0);
        let fill = match (phase.migrating, k % 2) {
            (true, _) => "#ddf4ff",
            (false, 0) => "#eaeef2",
            (false, _) => "#f6f8fa",
        };
        writeln!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{fill}\" \
             stroke=\"#d0d7de\"><title>phase {}: {} ({})</title></rect>",
            y + 3.0,
            phase.index,
            esc(&phase.name),
            human_us(phase.end_us.saturating_sub(phase.start_us))
        )?;
        if w > 70.0 {
            writeln!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f2328\">{}</text>",
                x + 3.0,
                y + 16.0,
                esc(&phase.name)
            )?;
        }
    }
    y += Axis::ROW;
    if !traffic.statements.is_empty() {
        row_label(y, "migration statements", "#1f2328", h)?;
        for st in &traffic.statements {
            writeln!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" fill=\"#0969da\">\
                 <title>{} statement {} (line {}): {}</title></rect>",
                axis.x(st.start_us),
                y + 5.0,
                axis.w(st.start_us, st.end_us, 2.0),
                esc(&st.version),
                st.index + 1,
                st.line,
                human_us(st.end_us.saturating_sub(st.start_us))
            )?;
        }
        y += Axis::ROW;
    }
    Ok(y)
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
