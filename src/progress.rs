//! Progress bars on stderr while a run works: one bar per scenario stepping
//! through its stages (provision, baseline and seed, clone, replicas or
//! rollout, locks, findings), with the seeder's per-table bars under it.
//!
//! Every bar joins one [`MultiProgress`], so bars drawn from different
//! stages never overwrite each other. Bars show only on a terminal, never
//! under CI and never when the caller asked for quiet.
//!
//! Where bars cannot show (stderr is a file or a pipe, or CI) but progress
//! was asked for, the same events become plain log lines on stderr, one per
//! stage start and end and one per seeded table with its rate, for CI logs:
//!
//! ```text
//! rehearse: ecommerce: baseline and seed ...
//! rehearse: seed: orders 1,000,000 rows in 1.2 s (830k rows/s)
//! rehearse: ecommerce: baseline done in 3.4 s: 1 baseline migration(s) and ...
//! ```
//!
//! Library users and tests that ask for no progress get neither.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars may be drawn: `requested`, stderr is a terminal, no CI.
#[must_use]
pub fn allowed(requested: bool) -> bool {
    requested && std::io::stderr().is_terminal() && !crate::testing::in_ci()
}

/// Whether progress goes to stderr as plain log lines: `requested`, but
/// bars cannot be drawn.
#[must_use]
pub fn as_log_lines(requested: bool) -> bool {
    requested && !allowed(requested)
}

/// Writes one progress line to stderr, above any bars.
pub fn log_line(line: &str) {
    bars().suspend(|| eprintln!("rehearse: {line}"));
}

/// `1234567` as `1,234,567`.
#[must_use]
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds as `850 ms` or `1.2 s`.
#[must_use]
pub fn seconds(ms: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let s = ms as f64 / 1_000.0;
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{s:.1} s")
    }
}

/// A rate as `950 rows/s`, `830k rows/s` or `1.2M rows/s`.
#[must_use]
pub fn rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second <= 0.0 {
        "- rows/s".into()
    } else if per_second < 1_000.0 {
        format!("{per_second:.0} rows/s")
    } else if per_second < 1_000_000.0 {
        format!("{:.0}k rows/s", per_second / 1_000.0)
    } else {
        format!("{:.1}M rows/s", per_second / 1_000_000.0)
    }
}

/// One seeded table, as the progress display shows it. Plain figures, so
/// that this module (which every stage reports to) imports no stage.
#[derive(Debug, Clone, Copy)]
pub struct Seeded<'a> {
    pub table: &'a str,
    pub rows: u64,
    pub duration_ms: u64,
    pub rows_per_sec: f64,
}

/// The log line of one seeded table.
#[must_use]
pub fn seed_line(table: Seeded<'_>) -> String {
    format!(
        "seed: {} {} rows in {} ({})",
        table.table,
        thousands(table.rows),
        seconds(table.duration_ms),
        rate(table.rows_per_sec)
    )
}

/// The process's bars. Its draw target is stderr; a hidden bar added to it
/// stays hidden.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A bar for a known amount of work, shown only when `enabled`.
#[must_use]
pub fn bar(enabled: bool, len: u64) -> ProgressBar {
    if enabled {
        bars().add(ProgressBar::new(len))
    } else {
        ProgressBar::hidden()
    }
}

/// Display columns of a scenario's name in bars and log lines.
const NAME_COLUMNS: usize = 60;

/// One scenario's stages as a bar: `[2/6] clone: ...`, or as log lines.
#[derive(Debug, Clone)]
pub struct StageProgress {
    bar: ProgressBar,
    /// The scenario's name, when stages are logged as lines instead.
    log: Option<String>,
}

impl StageProgress {
    /// A bar that draws nothing.
    #[must_use]
    pub fn hidden() -> Self {
        StageProgress {
            bar: ProgressBar::hidden(),
            log: None,
        }
    }

    /// A bar for `scenario`'s `stages`, shown when [`allowed`]`(requested)`;
    /// log lines instead when [`as_log_lines`]`(requested)`.
    #[must_use]
    pub fn new(requested: bool, scenario: &str, stages: u64) -> Self {
        // A scenario's name is the user's text: printable, and short enough
        // to leave room on the line for what the stage says.
        let scenario = crate::report::terminal::truncate(
            &crate::report::terminal::printable(scenario),
            NAME_COLUMNS,
        );
        let log = as_log_lines(requested).then(|| scenario.clone());
        let bar = bar(allowed(requested), stages);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{bar:12}] {pos}/{len} {prefix}: {msg} ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(scenario);
        bar.enable_steady_tick(Duration::from_millis(120));
        StageProgress { bar, log }
    }

    /// Whether stages are written as log lines.
    #[must_use]
    pub fn logs(&self) -> bool {
        self.log.is_some()
    }

    /// Whether anything is drawn (so nested work can show its own bars).
    #[must_use]
    pub fn shown(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// A stage starts.
    pub fn begin(&self, stage: &str) {
        if let Some(scenario) = &self.log {
            log_line(&format!("{scenario}: {stage} ..."));
        }
        self.bar.set_message(stage.to_string());
    }

    /// A stage ended.
    pub fn done(&self) {
        self.bar.inc(1);
    }

    /// A stage ended after `duration_ms`, having done `summary`.
    pub fn record(&self, stage: &str, duration_ms: u64, summary: &str) {
        if let Some(scenario) = &self.log {
            log_line(&format!(
                "{scenario}: {stage} done in {}: {summary}",
                seconds(duration_ms)
            ));
        }
        self.done();
    }

    /// A table was seeded (logged only; its bar showed the rest).
    pub fn seeded(&self, table: Seeded<'_>) {
        if self.log.is_some() {
            log_line(&seed_line(table));
        }
    }

    /// One more stage than planned (the server had to be started).
    pub fn add_stage(&self) {
        self.bar.inc_length(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_never_drawn_when_not_requested() {
        assert!(!allowed(false));
        let stages = StageProgress::new(false, "s", 5);
        assert!(!stages.shown());
        stages.begin("clone");
        stages.done();
        stages.finish();
    }

    #[test]
    fn log_lines_say_rows_time_and_rate() {
        let table = Seeded {
            table: "orders",
            rows: 1_000_000,
            duration_ms: 1_204,
            rows_per_sec: 830_564.8,
        };
        assert_eq!(
            seed_line(table),
            "seed: orders 1,000,000 rows in 1.2 s (831k rows/s)"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(seconds(850), "850 ms");
        assert_eq!(rate(950.2), "950 rows/s");
        assert_eq!(rate(2_500_000.0), "2.5M rows/s");
        assert_eq!(rate(f64::NAN), "- rows/s");
        assert!(!as_log_lines(false));
    }
}
