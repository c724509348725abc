//! Progress bars on stderr while a run works: one bar per scenario stepping
//! through its stages (provision, baseline and seed, clone, replicas or
//! rollout, locks, findings), with the seeder's per-table bars under it.
//!
//! Every bar joins one [`MultiProgress`], so bars drawn from different
//! stages never overwrite each other. Bars show only on a terminal, never
//! under CI and never when the caller asked for quiet; otherwise they are
//! hidden and cost nothing, which is what library users and tests get.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether bars may be drawn: `requested`, stderr is a terminal, no CI.
#[must_use]
pub fn allowed(requested: bool) -> bool {
    requested && std::io::stderr().is_terminal() && !crate::testing::in_ci()
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

/// One scenario's stages as a bar: `[2/6] clone: ...`.
#[derive(Debug, Clone)]
pub struct StageProgress {
    bar: ProgressBar,
}

impl StageProgress {
    /// A bar that draws nothing.
    #[must_use]
    pub fn hidden() -> Self {
        StageProgress {
            bar: ProgressBar::hidden(),
        }
    }

    /// A bar for `scenario`'s `stages`, shown when [`allowed`]`(requested)`.
    #[must_use]
    pub fn new(requested: bool, scenario: &str, stages: u64) -> Self {
        let bar = bar(allowed(requested), stages);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{bar:12}] {pos}/{len} {prefix}: {msg} ({elapsed})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(scenario.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        StageProgress { bar }
    }

    /// Whether anything is drawn (so nested work can show its own bars).
    #[must_use]
    pub fn shown(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// A stage starts.
    pub fn begin(&self, stage: &str) {
        self.bar.set_message(stage.to_string());
    }

    /// A stage ended.
    pub fn done(&self) {
        self.bar.inc(1);
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
}
