//! What the lock sampler saw, drawn on the scenario's timeline: one row per
//! relation with its holds, the waiting queue as a step chart, one row per
//! waiter with its waits; then the per relation and mode table and the
//! longest waits.
//!
//! Every time here is converted to the timeline's clock first
//! ([`LockAnalysis::timeline_us`]). A long rehearsal can hold thousands of
//! locks: each row draws its most dangerous bars one by one, up to a cap,
//! and merges the rest into lighter runs, so the file stays small.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Axis, esc, human_us, row_label_titled};
use crate::locks::analysis::{Hold, RelationLocks, StatementRef, Wait};
use crate::locks::{Holder, LockAnalysis, LockMode, LockType};
use crate::report::ScenarioReport;

/// Bars drawn one by one per row; the rest are merged.
const BARS_PER_ROW: usize = 40;
/// Relation rows drawn; the table lists every relation.
const RELATION_ROWS: usize = 12;
/// Waiter rows drawn.
const WAITER_ROWS: usize = 8;
/// Rows of the per relation and mode table.
const TABLE_ROWS: usize = 40;
/// Rows of the longest-waits table.
const WAIT_TABLE_ROWS: usize = 10;
/// Height of the queue chart.
const QUEUE_HEIGHT: f64 = 44.0;

/// What a mode stops, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Danger {
    /// Neither reads nor writes (it may still stop DDL or VACUUM).
    Neither,
    Writes,
    /// Reads, and so writes too.
    Reads,
}

impl Danger {
    fn of(mode: LockMode) -> Danger {
        if mode.blocks_reads() {
            Danger::Reads
        } else if mode.blocks_writes() {
            Danger::Writes
        } else {
            Danger::Neither
        }
    }

    fn color(self) -> &'static str {
        match self {
            Danger::Reads => "#a40e26",
            Danger::Writes => "#e16f24",
            Danger::Neither => "#8c959f",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Danger::Reads => "reads and writes",
            Danger::Writes => "writes",
            Danger::Neither => "neither reads nor writes",
        }
    }

    /// Holds that stop the application are drawn full height.
    fn bar(self) -> (f64, f64) {
        match self {
            Danger::Reads | Danger::Writes => (5.0, 14.0),
            Danger::Neither => (8.0, 8.0),
        }
    }
}

/// The amber of the timeline's waits for the migration lock: a wait is a
/// wait, whichever lock it is for.
const WAIT_COLOR: &str = "#d4a72c";
const QUEUED_WAIT_COLOR: &str = "#9a6700";

/// A span on the timeline's clock: the lock was first seen at `from_us` and
/// counted as held (or waited for) `dur_us`; the uncertainty of half an
/// interval on each side is split evenly.
fn span(a: &LockAnalysis, from_us: u64, dur_us: u64) -> (u64, u64) {
    let start = a.timeline_us(from_us).saturating_sub(a.interval_us / 2);
    (start, start.saturating_add(dur_us))
}

/// The latest timeline time any lock row draws.
pub(super) fn last_us(a: &LockAnalysis) -> u64 {
    let holds = a.holds.iter().map(|h| span(a, h.from_us, h.hold_us).1);
    let waits = a.waits.iter().map(|w| span(a, w.from_us, w.wait_us).1);
    let queue = a
        .queue
        .last()
        .map(|q| a.timeline_us(q.at_us).saturating_add(a.interval_us / 2));
    holds.chain(waits).chain(queue).max().unwrap_or(0)
}

/// Consecutive spans merged into one run, with how many it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    from: u64,
    to: u64,
    count: usize,
}

/// Merges spans whose gaps are at most `join_us` (a pixel or two: merged
/// runs are bounded by the chart's width, whatever the number of spans).
fn merge(mut spans: Vec<(u64, u64)>, join_us: u64) -> Vec<Run> {
    spans.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    for (from, to) in spans {
        match runs.last_mut() {
            Some(run) if from <= run.to.saturating_add(join_us) => {
                run.to = run.to.max(to);
                run.count += 1;
            }
            _ => runs.push(Run { from, to, count: 1 }),
        }
    }
    runs
}

/// The lock rows under the timeline's rows; returns the `y` below them.
pub(super) fn rows(
    a: &LockAnalysis,
    axis: Axis,
    top: f64,
    h: &mut String,
) -> Result<f64, std::fmt::Error> {
    let mut y = top + 6.0;
    writeln!(
        h,
        "<line x1=\"0\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d7de\"/>\
         <text x=\"4\" y=\"{:.1}\" fill=\"#656d76\">table locks, sampled every {}</text>",
        Axis::LABEL + Axis::WIDTH + 40.0,
        y + 14.0,
        human_us(a.interval_us)
    )?;
    y += 20.0;
    if a.holds.is_empty() {
        writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#656d76\">no table lock held in {} \
             sample(s)</text>",
            Axis::LABEL,
            y + 16.0,
            a.samples
        )?;
        y += Axis::ROW;
    }
    y = relation_rows(a, axis, y, h)?;
    y = queue_row(a, axis, y, h)?;
    wait_rows(a, axis, y, h)
}

/// Relations, most dangerous first: the strongest mode seen, then the
/// longest hold.
fn by_relation(a: &LockAnalysis) -> Vec<(&str, Vec<&Hold>)> {
    let mut grouped: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    for hold in &a.holds {
        grouped.entry(&hold.relation).or_default().push(hold);
    }
    let mut rows: Vec<(&str, Vec<&Hold>)> = grouped.into_iter().collect();
    let rank = |holds: &[&Hold]| {
        let worst = holds.iter().map(|h| Danger::of(h.mode)).max();
        let longest = holds.iter().map(|h| h.hold_us).max();
        (worst, longest)
    };
    rows.sort_by(|(ra, a), (rb, b)| rank(b).cmp(&rank(a)).then(ra.cmp(rb)));
    rows
}

fn holder_words(holder: &Holder) -> String {
    holder.to_string()
}

fn relation_rows(
    a: &LockAnalysis,
    axis: Axis,
    top: f64,
    h: &mut String,
) -> Result<f64, std::fmt::Error> {
    let mut y = top;
    let relations = by_relation(a);
    let join = axis.us_per_px() * 2;
    for (relation, holds) in relations.iter().take(RELATION_ROWS) {
        let strongest = holds
            .iter()
            .map(|h| h.mode)
            .max()
            .unwrap_or(LockMode::AccessShare);
        writeln!(
            h,
            "<g class=\"lock-row\" data-relation=\"{}\">",
            esc(relation)
        )?;
        row_label_titled(
            y,
            relation,
            &format!(
                "{relation}: {} hold(s), strongest {strongest} (blocks {})",
                holds.len(),
                Danger::of(strongest).words()
            ),
            Danger::of(strongest).color(),
            h,
        )?;
        // The most dangerous and longest holds are drawn one by one; the
        // others become runs, per danger so a merged run keeps its colour.
        let mut ranked = holds.clone();
        ranked.sort_by(|x, y| {
            (Danger::of(y.mode), y.hold_us, x.from_us).cmp(&(
                Danger::of(x.mode),
                x.hold_us,
                y.from_us,
            ))
        });
        let rest = ranked.split_off(ranked.len().min(BARS_PER_ROW));
        for danger in [Danger::Neither, Danger::Writes, Danger::Reads] {
            let spans: Vec<(u64, u64)> = rest
                .iter()
                .filter(|h| Danger::of(h.mode) == danger)
                .map(|h| span(a, h.from_us, h.hold_us))
                .collect();
            let (dy, height) = danger.bar();
            for run in merge(spans, join) {
                writeln!(
                    h,
                    "<rect class=\"hold-merged\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                     height=\"{height:.0}\" fill=\"{}\" opacity=\"0.45\"><title>{} more hold(s) \
                     blocking {} on {}, merged</title></rect>",
                    axis.x(run.from),
                    y + dy,
                    axis.w(run.from, run.to, 1.0),
                    danger.color(),
                    run.count,
                    danger.words(),
                    esc(relation)
                )?;
            }
        }
        // Weakest first, so that the strongest are drawn on top.
        ranked.sort_by_key(|h| (Danger::of(h.mode), h.from_us));
        for hold in ranked {
            let danger = Danger::of(hold.mode);
            let (from, to) = span(a, hold.from_us, hold.hold_us);
            let (dy, height) = danger.bar();
            writeln!(
                h,
                "<rect class=\"hold\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.0}\" \
                 fill=\"{}\"><title>{} on {} held by {} (pid {}) for {}, from {} (blocks {})\
                 </title></rect>",
                axis.x(from),
                y + dy,
                axis.w(from, to, 2.0),
                danger.color(),
                hold.mode,
                esc(relation),
                esc(&holder_words(&hold.holder)),
                hold.pid,
                human_us(hold.hold_us),
                human_us(from),
                danger.words()
            )?;
        }
        merged_note(h, y, rest.len(), "hold(s)")?;
        writeln!(h, "</g>")?;
        y += Axis::ROW;
    }
    if relations.len() > RELATION_ROWS {
        writeln!(
            h,
            "<text x=\"4\" y=\"{:.1}\" fill=\"#656d76\">{} more relation(s): see the table \
             below</text>",
            y + 16.0,
            relations.len() - RELATION_ROWS
        )?;
        y += Axis::ROW;
    }
    Ok(y)
}

/// The number of waiting backends over time, as a step chart. Points that
/// fall in one pixel column keep their maximum and their last value.
fn queue_row(
    a: &LockAnalysis,
    axis: Axis,
    top: f64,
    h: &mut String,
) -> Result<f64, std::fmt::Error> {
    let Some(last) = a.queue.last() else {
        return Ok(top);
    };
    let most = a.queue.iter().map(|q| q.waiting).max().unwrap_or(0);
    let max = most.max(1);
    let base = top + QUEUE_HEIGHT - 4.0;
    let level = |waiting: u32| base - (QUEUE_HEIGHT - 12.0) * f64::from(waiting) / f64::from(max);
    // Per pixel column: where it starts, the highest count and the last.
    let px = axis.us_per_px();
    let mut columns: Vec<(u64, u64, u32, u32)> = Vec::new();
    // Like the bars: a change seen at a sample happened in the interval
    // before it, drawn at its middle.
    let half = a.interval_us / 2;
    for q in &a.queue {
        let at = a.timeline_us(q.at_us).saturating_sub(half);
        match columns.last_mut() {
            Some(c) if c.0 == at / px => {
                c.2 = c.2.max(q.waiting);
                c.3 = q.waiting;
            }
            _ => columns.push((at / px, at, q.waiting, q.waiting)),
        }
    }
    let end = axis.x(a.timeline_us(last.at_us).saturating_add(half));
    let start = columns.first().map_or(end, |c| axis.x(c.1));
    let mut d = format!("M{start:.1} {base:.1}");
    let mut current = base;
    for (_, at, highest, last) in columns {
        let x = axis.x(at);
        let _ = write!(d, " L{x:.1} {current:.1} L{x:.1} {:.1}", level(highest));
        if last != highest {
            let _ = write!(
                d,
                " L{:.1} {:.1} L{:.1} {:.1}",
                x + 1.0,
                level(highest),
                x + 1.0,
                level(last)
            );
        }
        current = level(last);
    }
    let _ = write!(d, " L{end:.1} {current:.1} L{end:.1} {base:.1} Z");
    writeln!(h, "<g class=\"lock-queue\">")?;
    row_label_titled(
        top,
        "waiting backends",
        &format!(
            "backends waiting for a lock, at most {most}; {:.2} blocked-backend-seconds",
            a.blocked_backend_seconds
        ),
        "#1f2328",
        h,
    )?;
    writeln!(
        h,
        "<text x=\"4\" y=\"{:.1}\" fill=\"#656d76\">max {most}</text>\
         <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eaeef2\" \
         stroke-dasharray=\"3 3\"/>\
         <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{base:.1}\" y2=\"{base:.1}\" stroke=\"#d0d7de\"/>\
         <path d=\"{d}\" fill=\"{WAIT_COLOR}\" fill-opacity=\"0.5\" stroke=\"{QUEUED_WAIT_COLOR}\" \
         stroke-width=\"1\"><title>backends waiting for a lock (at most {most})</title></path></g>",
        top + 30.0,
        Axis::LABEL,
        Axis::LABEL + Axis::WIDTH,
        level(max),
        level(max),
        Axis::LABEL,
        Axis::LABEL + Axis::WIDTH
    )?;
    Ok(top + QUEUE_HEIGHT)
}

fn target_words(w: &Wait) -> String {
    if let Some(relation) = &w.relation {
        return relation.clone();
    }
    match w.locktype {
        LockType::Relation => "a relation",
        LockType::Extend => "a relation extension",
        LockType::Page => "a page",
        LockType::Tuple => "a row",
        LockType::TransactionId => "another transaction",
        LockType::VirtualXid => "another transaction's snapshot",
        LockType::Object => "a database object",
        LockType::Advisory => "an advisory lock",
        LockType::Other => "a lock",
    }
    .to_string()
}

fn blockers_words(w: &Wait) -> String {
    if w.blocked_by.is_empty() {
        return "nobody seen".into();
    }
    w.blocked_by
        .iter()
        .map(|b| {
            format!(
                "{} ({})",
                holder_words(&b.holder),
                if b.queued { "queued ahead" } else { "holding" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// At the end of a row: how many bars were merged into the lighter ones.
fn merged_note(h: &mut String, y: f64, merged: usize, what: &str) -> std::fmt::Result {
    if merged == 0 {
        return Ok(());
    }
    writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#656d76\">+{merged}<title>{merged} more {what} \
         merged into the lighter bars</title></text>",
        Axis::LABEL + Axis::WIDTH + 4.0,
        y + 16.0,
    )
}

fn statement_ref_words(s: &StatementRef) -> String {
    format!("{} statement {} (line {})", s.version, s.index + 1, s.line)
}

/// Which migration statement took the lock, and which one the blocking
/// migration was running (when they differ, both are said).
fn statement_words(w: &Wait) -> String {
    match (&w.lock_taken_by, &w.statement) {
        (Some(took), Some(running)) if took != running => format!(
            "{} took the lock; the blocking migration was running {}",
            statement_ref_words(took),
            statement_ref_words(running)
        ),
        (Some(took), _) => format!("{} took the lock", statement_ref_words(took)),
        (None, Some(running)) => {
            format!(
                "the blocking migration was running {}",
                statement_ref_words(running)
            )
        }
        (None, None) => "-".to_string(),
    }
}

/// One row per waiting client, those that waited longest first.
fn wait_rows(
    a: &LockAnalysis,
    axis: Axis,
    top: f64,
    h: &mut String,
) -> Result<f64, std::fmt::Error> {
    let mut by_waiter: BTreeMap<String, Vec<&Wait>> = BTreeMap::new();
    for w in &a.waits {
        by_waiter
            .entry(holder_words(&w.holder))
            .or_default()
            .push(w);
    }
    let mut waiters: Vec<(String, Vec<&Wait>)> = by_waiter.into_iter().collect();
    let total = |waits: &[&Wait]| waits.iter().map(|w| w.wait_us).sum::<u64>();
    waiters.sort_by(|(na, a), (nb, b)| total(b).cmp(&total(a)).then(na.cmp(nb)));
    let join = axis.us_per_px() * 2;
    let mut y = top;
    for (waiter, waits) in waiters.iter().take(WAITER_ROWS) {
        writeln!(h, "<g class=\"wait-row\">")?;
        row_label_titled(
            y,
            &format!("waits: {waiter}"),
            &format!(
                "{waiter} waited {} time(s), {} in all",
                waits.len(),
                human_us(total(waits))
            ),
            "#9a6700",
            h,
        )?;
        let mut ranked = waits.clone();
        ranked.sort_by(|x, y| (y.wait_us, x.from_us).cmp(&(x.wait_us, y.from_us)));
        let rest = ranked.split_off(ranked.len().min(BARS_PER_ROW));
        let spans = rest.iter().map(|w| span(a, w.from_us, w.wait_us)).collect();
        for run in merge(spans, join) {
            writeln!(
                h,
                "<rect class=\"wait-merged\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"14\" fill=\"{WAIT_COLOR}\" opacity=\"0.45\"><title>{} more wait(s) of \
                 {}, merged</title></rect>",
                axis.x(run.from),
                y + 5.0,
                axis.w(run.from, run.to, 1.0),
                run.count,
                esc(waiter)
            )?;
        }
        ranked.sort_by_key(|w| w.from_us);
        for w in ranked {
            let (from, to) = span(a, w.from_us, w.wait_us);
            writeln!(
                h,
                "<rect class=\"wait\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"14\" \
                 fill=\"{}\"><title>{} waited {} for {} on {}, from {}; blocked by {}{}; query: {}\
                 </title></rect>",
                axis.x(from),
                y + 5.0,
                axis.w(from, to, 2.0),
                if w.behind_queue() {
                    QUEUED_WAIT_COLOR
                } else {
                    WAIT_COLOR
                },
                esc(waiter),
                human_us(w.wait_us),
                w.mode,
                esc(&target_words(w)),
                human_us(from),
                esc(&blockers_words(w)),
                if w.statement.is_some() || w.lock_taken_by.is_some() {
                    format!("; {}", esc(&statement_words(w)))
                } else {
                    String::new()
                },
                esc(&w.query)
            )?;
        }
        merged_note(h, y, rest.len(), "wait(s)")?;
        writeln!(h, "</g>")?;
        y += Axis::ROW;
    }
    if waiters.len() > WAITER_ROWS {
        writeln!(
            h,
            "<text x=\"4\" y=\"{:.1}\" fill=\"#656d76\">{} more waiting client(s): see the \
             longest waits below</text>",
            y + 16.0,
            waiters.len() - WAITER_ROWS
        )?;
        y += Axis::ROW;
    }
    Ok(y)
}

/// Legend entries of the lock rows.
pub(super) fn legend(h: &mut String) -> std::fmt::Result {
    for (color, words) in [
        (Danger::Reads.color(), "lock that blocks reads and writes"),
        (Danger::Writes.color(), "lock that blocks writes"),
        (Danger::Neither.color(), "lock that blocks neither"),
        (
            WAIT_COLOR,
            "waiting for a lock (the migration lock or a table lock)",
        ),
        (QUEUED_WAIT_COLOR, "waiting behind a queued request"),
    ] {
        write!(
            h,
            "<span><i class=\"sw\" style=\"background:{color}\"></i>{words}</span>"
        )?;
    }
    Ok(())
}

/// Says how lock times were put on the timeline's clock.
pub(super) fn time_base_note(a: &LockAnalysis, h: &mut String) -> std::fmt::Result {
    match a.timeline_offset_us {
        Some(_) => writeln!(
            h,
            "<p class=\"muted\">Lock times are on the timeline's clock (the sampler's start is \
             recorded against it). A lock is drawn where it was first seen, widened by half a \
             sampling interval on each side.</p>"
        ),
        None => writeln!(
            h,
            "<p class=\"muted\">This report does not record where the lock sampler started \
             on the timeline: lock times are drawn from the sampler's own start.</p>"
        ),
    }
}

fn holders_words(r: &RelationLocks) -> String {
    const SHOWN: usize = 4;
    let mut words: Vec<String> = r.holders.iter().take(SHOWN).map(holder_words).collect();
    if r.holders.len() > SHOWN {
        words.push(format!("and {} more", r.holders.len() - SHOWN));
    }
    words.join(", ")
}

/// The per relation and mode table, blocked-backend-seconds, and the
/// longest waits.
pub(super) fn render_tables(s: &ScenarioReport, h: &mut String) -> std::fmt::Result {
    writeln!(h, "<h3>Lock holds per relation</h3>")?;
    let Some(a) = s.locks.as_ref().and_then(|l| l.sampled.as_ref()) else {
        return writeln!(h, "<p class=\"muted\">not measured in this report</p>");
    };
    let longest_queue = a.queue.iter().map(|q| q.waiting).max().unwrap_or(0);
    writeln!(
        h,
        "<p>Blocked-backend-seconds: <b>{:.2}</b> &middot; longest queue: {longest_queue} \
         waiting backend(s) &middot; {} sample(s) every {} ({} missed)</p>",
        a.blocked_backend_seconds,
        a.samples,
        human_us(a.interval_us),
        a.missed_samples
    )?;
    if a.relations.is_empty() {
        writeln!(h, "<p class=\"muted\">no table lock seen</p>")?;
    } else {
        let mut relations: Vec<&RelationLocks> = a.relations.iter().collect();
        relations.sort_by(|x, y| {
            (Danger::of(y.mode), y.max_hold_us, &x.relation, x.mode).cmp(&(
                Danger::of(x.mode),
                x.max_hold_us,
                &y.relation,
                y.mode,
            ))
        });
        writeln!(
            h,
            "<table class=\"lock-holds\"><tr><th>Relation</th><th>Mode</th><th>Blocks</th>\
             <th>Longest hold</th><th>Total hold</th><th>Holders</th></tr>"
        )?;
        for r in relations.iter().take(TABLE_ROWS) {
            let danger = Danger::of(r.mode);
            writeln!(
                h,
                "<tr><td>{}</td><td style=\"color:{}\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                esc(&r.relation),
                danger.color(),
                r.mode,
                danger.words(),
                human_us(r.max_hold_us),
                human_us(r.total_hold_us),
                esc(&holders_words(r))
            )?;
        }
        writeln!(h, "</table>")?;
        if relations.len() > TABLE_ROWS {
            writeln!(
                h,
                "<p class=\"muted\">{} more relation and mode pair(s) with shorter holds</p>",
                relations.len() - TABLE_ROWS
            )?;
        }
    }
    writeln!(h, "<h3>Longest lock waits</h3>")?;
    if a.waits.is_empty() {
        return writeln!(
            h,
            "<p class=\"muted\">no backend waited for a lock in {} sample(s)</p>",
            a.samples
        );
    }
    let mut waits: Vec<&Wait> = a.waits.iter().collect();
    waits.sort_by(|x, y| (y.wait_us, x.from_us).cmp(&(x.wait_us, y.from_us)));
    writeln!(
        h,
        "<table class=\"lock-waits\"><tr><th>Waiter</th><th>Waited</th><th>For</th>\
         <th>Blocked by</th><th>Migration statement</th><th>Query</th></tr>"
    )?;
    for w in waits.iter().take(WAIT_TABLE_ROWS) {
        writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} on {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&holder_words(&w.holder)),
            human_us(w.wait_us),
            w.mode,
            esc(&target_words(w)),
            esc(&blockers_words(w)),
            esc(&statement_words(w)),
            esc(&w.query)
        )?;
    }
    writeln!(h, "</table>")?;
    if waits.len() > WAIT_TABLE_ROWS {
        writeln!(
            h,
            "<p class=\"muted\">{} shorter wait(s) not listed</p>",
            waits.len() - WAIT_TABLE_ROWS
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_bridges_small_gaps_and_counts() {
        let runs = merge(vec![(30, 40), (0, 10), (12, 20), (100, 110)], 2);
        assert_eq!(
            runs,
            [
                Run {
                    from: 0,
                    to: 20,
                    count: 2
                },
                Run {
                    from: 30,
                    to: 40,
                    count: 1
                },
                Run {
                    from: 100,
                    to: 110,
                    count: 1
                }
            ]
        );
        assert!(merge(Vec::new(), 5).is_empty());
    }

    #[test]
    fn danger_follows_the_conflict_matrix() {
        assert_eq!(Danger::of(LockMode::AccessExclusive), Danger::Reads);
        assert_eq!(Danger::of(LockMode::Share), Danger::Writes);
        assert_eq!(Danger::of(LockMode::Exclusive), Danger::Writes);
        assert_eq!(Danger::of(LockMode::ShareUpdateExclusive), Danger::Neither);
        assert_eq!(Danger::of(LockMode::RowExclusive), Danger::Neither);
    }
}
