//! `rehearse bench` results: migration duration and lock holds per seed
//! scale, the fitted growth, and the comparison with a stored baseline.
//! Pure: the CLI measures, this decides and writes.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use super::summary::human_us;
use crate::locks::{Holder, LockAnalysis, LockMode};

/// One measured scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchPoint {
    /// The seed scale (multiplies every row count of the seeds file).
    pub scale: f64,
    /// Rows in the database before the pending migrations ran.
    pub rows: u64,
    /// Fastest of the repetitions, applying every pending migration
    /// serially on a fresh clone.
    pub duration_us: u64,
    /// What the lock sampler saw while the migrations ran; `None` in
    /// baselines written before locks were measured.
    #[serde(default)]
    pub locks: Option<ScaleLocks>,
}

/// The migration's table locks at one scale, sampled from `pg_locks` while
/// it ran (the sampler a rehearsal uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleLocks {
    /// Sampling interval: the resolution of every hold. A hold shorter than
    /// this may not be seen at all; one that is seen is counted to within
    /// about one interval.
    pub interval_us: u64,
    /// Per relation and mode, the migration's longest hold, longest first.
    /// Over repetitions, the shortest of their longest holds counts (noise
    /// only ever adds time, as for the duration), among the repetitions
    /// that saw it.
    pub holds: Vec<LockHold>,
}

/// The longest hold of one mode on one relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHold {
    pub relation: String,
    pub mode: LockMode,
    pub hold_us: u64,
}

impl LockHold {
    /// Whether the application notices it: it blocks reads or writes.
    #[must_use]
    pub fn blocks_app(&self) -> bool {
        self.mode.blocks_reads() || self.mode.blocks_writes()
    }

    fn key(&self) -> (String, LockMode) {
        (self.relation.clone(), self.mode)
    }

    /// `ACCESS EXCLUSIVE on public.orders`.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{} on {}", self.mode, self.relation)
    }
}

impl ScaleLocks {
    /// The holds of `holder` (the migration's connection) in `analysis`:
    /// other backends (autovacuum, the harness) are not the migration.
    /// Relations the sampler could only name by oid are left out: they were
    /// created by the migration's own uncommitted transaction (an index
    /// being built, a new table), so no other session can see them, their
    /// locks block nobody, and their oid changes from run to run.
    #[must_use]
    pub fn of(analysis: &LockAnalysis, holder: &Holder) -> ScaleLocks {
        let unnamed = |relation: &str| relation.bytes().all(|b| b.is_ascii_digit());
        let mut longest: BTreeMap<(String, LockMode), u64> = BTreeMap::new();
        for hold in analysis
            .holds
            .iter()
            .filter(|h| &h.holder == holder && !unnamed(&h.relation))
        {
            let entry = longest
                .entry((hold.relation.clone(), hold.mode))
                .or_default();
            *entry = (*entry).max(hold.hold_us);
        }
        ScaleLocks::sorted(analysis.interval_us, longest)
    }

    /// Repetitions of one scale as one: per relation and mode, the shortest
    /// of the longest holds, among the repetitions that saw it.
    #[must_use]
    pub fn fastest_of(runs: &[ScaleLocks]) -> Option<ScaleLocks> {
        let interval_us = runs.iter().map(|r| r.interval_us).max()?;
        let mut shortest: BTreeMap<(String, LockMode), u64> = BTreeMap::new();
        for hold in runs.iter().flat_map(|r| &r.holds) {
            shortest
                .entry(hold.key())
                .and_modify(|us| *us = (*us).min(hold.hold_us))
                .or_insert(hold.hold_us);
        }
        Some(ScaleLocks::sorted(interval_us, shortest))
    }

    fn sorted(interval_us: u64, holds: BTreeMap<(String, LockMode), u64>) -> ScaleLocks {
        let mut holds: Vec<LockHold> = holds
            .into_iter()
            .map(|((relation, mode), hold_us)| LockHold {
                relation,
                mode,
                hold_us,
            })
            .collect();
        holds.sort_by(|a, b| {
            (b.hold_us, b.mode, &a.relation).cmp(&(a.hold_us, a.mode, &b.relation))
        });
        ScaleLocks { interval_us, holds }
    }

    /// The longest hold that blocks reads or writes (the stronger mode on a
    /// tie).
    #[must_use]
    pub fn worst_blocking(&self) -> Option<&LockHold> {
        self.holds
            .iter()
            .filter(|h| h.blocks_app())
            .max_by_key(|h| (h.hold_us, h.mode))
    }

    fn hold(&self, relation: &str, mode: LockMode) -> Option<u64> {
        self.holds
            .iter()
            .find(|h| h.relation == relation && h.mode == mode)
            .map(|h| h.hold_us)
    }
}

/// A `rehearse bench` run; also the `--baseline` / `--save-baseline` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub scenario: String,
    pub points: Vec<BenchPoint>,
    pub growth: Option<Growth>,
}

/// How duration grows with the number of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrowthClass {
    Constant,
    Linear,
    NLogN,
    Quadratic,
}

impl GrowthClass {
    /// The usual notation.
    #[must_use]
    pub fn notation(self) -> &'static str {
        match self {
            GrowthClass::Constant => "O(1)",
            GrowthClass::Linear => "O(n)",
            GrowthClass::NLogN => "O(n log n)",
            GrowthClass::Quadratic => "O(n^2)",
        }
    }
}

/// The fitted growth: the exponent of `duration ~ rows^k` (least squares on
/// log-log) and the class whose own log-log slope over the measured range is
/// closest to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    pub exponent: f64,
    pub class: GrowthClass,
}

/// Fits the growth; `None` with fewer than two distinct row counts.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "fitting, not accounting")]
pub fn fit_growth(points: &[BenchPoint]) -> Option<Growth> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.rows > 1 && p.duration_us > 0)
        .map(|p| ((p.rows as f64).ln(), (p.duration_us as f64).ln()))
        .collect();
    let n = xy.len() as f64;
    let (min_x, max_x) = xy
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, _)| {
            (lo.min(*x), hi.max(*x))
        });
    if xy.len() < 2 || (max_x - min_x).abs() < 1e-9 {
        return None;
    }
    let mean_x = xy.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = xy.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxy: f64 = xy.iter().map(|(x, y)| (x - mean_x) * (y - mean_y)).sum();
    let sxx: f64 = xy.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    let exponent = sxy / sxx;
    // n log n has no single exponent: over [a, b] its log-log slope is
    // 1 + ln(ln b / ln a) / ln(b / a).
    let nlogn = 1.0 + (max_x.ln() - min_x.ln()) / (max_x - min_x);
    let class = [
        (GrowthClass::Constant, 0.0),
        (GrowthClass::Linear, 1.0),
        (GrowthClass::NLogN, nlogn),
        (GrowthClass::Quadratic, 2.0),
    ]
    .into_iter()
    .min_by(|a, b| (a.1 - exponent).abs().total_cmp(&(b.1 - exponent).abs()))
    .map(|(class, _)| class)?;
    Some(Growth { exponent, class })
}

/// Writes the per-scale table (duration and the longest blocking lock
/// hold), the growth, and the blocking holds per relation and mode across
/// the scales.
pub fn write_table(report: &BenchReport, out: &mut impl io::Write) -> io::Result<()> {
    writeln!(
        out,
        "{:>8}  {:>10}  {:>10}  {:>13}  LOCK",
        "SCALE", "ROWS", "MIGRATION", "BLOCKING HOLD"
    )?;
    for point in &report.points {
        let (hold, lock) = match point.locks.as_ref().map(ScaleLocks::worst_blocking) {
            Some(Some(worst)) => (human_us(worst.hold_us), worst.label()),
            Some(None) => ("-".to_string(), "none seen".to_string()),
            None => ("-".to_string(), "not measured".to_string()),
        };
        writeln!(
            out,
            "{:>8}  {:>10}  {:>10}  {hold:>13}  {lock}",
            point.scale,
            point.rows,
            human_us(point.duration_us)
        )?;
    }
    match report.growth {
        Some(g) => writeln!(
            out,
            "growth: {} (duration ~ rows^{:.2})",
            g.class.notation(),
            g.exponent
        )?,
        None => writeln!(
            out,
            "growth: needs at least two scales with different row counts"
        )?,
    }
    write_lock_holds(report, out)
}

/// Every blocking lock the migration held, one row per relation and mode,
/// one column per scale.
fn write_lock_holds(report: &BenchReport, out: &mut impl io::Write) -> io::Result<()> {
    let measured: Vec<&ScaleLocks> = report
        .points
        .iter()
        .filter_map(|p| p.locks.as_ref())
        .collect();
    let Some(interval_us) = measured.iter().map(|l| l.interval_us).max() else {
        return writeln!(out, "lock holds per scale: not measured");
    };
    let mut rows: Vec<(String, LockMode)> = Vec::new();
    for hold in measured.iter().flat_map(|l| &l.holds) {
        if hold.blocks_app() && !rows.contains(&hold.key()) {
            rows.push(hold.key());
        }
    }
    if rows.is_empty() {
        return writeln!(
            out,
            "lock holds per scale: no lock that blocks reads or writes was seen (sampled every \
             {}; a shorter hold may be missed)",
            human_us(interval_us)
        );
    }
    // Strongest mode first, then by name.
    rows.sort_by(|a, b| (b.1, &a.0).cmp(&(a.1, &b.0)));
    writeln!(
        out,
        "longest lock hold per scale, for locks that block reads or writes (sampled every {}; \
         a shorter hold may be missed):",
        human_us(interval_us)
    )?;
    let labels: Vec<String> = rows
        .iter()
        .map(|(relation, mode)| format!("{mode} on {relation}"))
        .collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0).max(4);
    write!(out, "  {:<width$}", "LOCK")?;
    for point in &report.points {
        write!(out, "  {:>10}", point.scale)?;
    }
    writeln!(out)?;
    for ((relation, mode), label) in rows.iter().zip(&labels) {
        write!(out, "  {label:<width$}")?;
        for point in &report.points {
            let cell = match &point.locks {
                None => "?".to_string(),
                Some(locks) => locks.hold(relation, *mode).map_or("-".into(), human_us),
            };
            write!(out, "  {cell:>10}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// A scale that got slower than the baseline allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    pub scale: f64,
    pub baseline_us: u64,
    pub current_us: u64,
    /// How much slower, in percent.
    pub slower_pct: f64,
}

/// Scales measured in both runs whose duration exceeds the baseline's by
/// more than `threshold_pct` percent.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "percentages")]
pub fn regressions(
    baseline: &BenchReport,
    current: &BenchReport,
    threshold_pct: f64,
) -> Vec<Regression> {
    current
        .points
        .iter()
        .filter_map(|point| {
            let base = baseline
                .points
                .iter()
                .find(|b| (b.scale - point.scale).abs() < 1e-9)?;
            let slower_pct =
                (point.duration_us as f64 / base.duration_us.max(1) as f64 - 1.0) * 100.0;
            (slower_pct > threshold_pct).then_some(Regression {
                scale: point.scale,
                baseline_us: base.duration_us,
                current_us: point.duration_us,
                slower_pct,
            })
        })
        .collect()
}

/// A blocking lock held longer than the baseline allows at one scale.
#[derive(Debug, Clone, PartialEq)]
pub struct LockRegression {
    pub scale: f64,
    pub relation: String,
    pub mode: LockMode,
    /// `None`: the baseline did not see this lock held at all.
    pub baseline_us: Option<u64>,
    pub current_us: u64,
    /// How much longer, in percent (`None` for a new lock).
    pub longer_pct: Option<f64>,
}

impl LockRegression {
    /// One line for the terminal.
    #[must_use]
    pub fn describe(&self, threshold_pct: f64) -> String {
        match (self.baseline_us, self.longer_pct) {
            (Some(base), Some(pct)) => format!(
                "LOCK REGRESSION at scale {}: {} on {} held {} vs baseline {} ({pct:.0}% longer, \
                 threshold {threshold_pct}%)",
                self.scale,
                self.mode,
                self.relation,
                human_us(self.current_us),
                human_us(base)
            ),
            _ => format!(
                "LOCK REGRESSION at scale {}: {} on {} held {}, not held in the baseline",
                self.scale,
                self.mode,
                self.relation,
                human_us(self.current_us)
            ),
        }
    }
}

/// Blocking holds (per scale, relation and mode) longer than the baseline's
/// by more than `threshold_pct` percent, or absent from the baseline. Only
/// scales whose locks both runs measured are compared, and a difference
/// within two sampling intervals is noise, never a regression.
#[must_use]
#[expect(clippy::cast_precision_loss, reason = "percentages")]
pub fn lock_regressions(
    baseline: &BenchReport,
    current: &BenchReport,
    threshold_pct: f64,
) -> Vec<LockRegression> {
    let mut found = Vec::new();
    for point in &current.points {
        let Some(now) = &point.locks else { continue };
        let Some(before) = baseline
            .points
            .iter()
            .find(|b| (b.scale - point.scale).abs() < 1e-9)
            .and_then(|b| b.locks.as_ref())
        else {
            continue;
        };
        let noise = 2 * now.interval_us.max(before.interval_us);
        for hold in now.holds.iter().filter(|h| h.blocks_app()) {
            let base = before.hold(&hold.relation, hold.mode);
            let grown = hold.hold_us.saturating_sub(base.unwrap_or(0));
            let longer_pct = base.map(|b| (hold.hold_us as f64 / b.max(1) as f64 - 1.0) * 100.0);
            if grown > noise && longer_pct.is_none_or(|pct| pct > threshold_pct) {
                found.push(LockRegression {
                    scale: point.scale,
                    relation: hold.relation.clone(),
                    mode: hold.mode,
                    baseline_us: base,
                    current_us: hold.hold_us,
                    longer_pct,
                });
            }
        }
    }
    found
}

/// Whether `report` carries lock holds for at least one scale.
#[must_use]
pub fn measures_locks(report: &BenchReport) -> bool {
    report.points.iter().any(|p| p.locks.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64) -> f64) -> Vec<BenchPoint> {
        [1_000u64, 10_000, 100_000]
            .into_iter()
            .map(|rows| BenchPoint {
                scale: 1.0,
                rows,
                #[expect(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                duration_us: f(rows as f64) as u64,
                locks: None,
            })
            .collect()
    }

    #[test]
    fn growth_classes_are_told_apart() {
        let class = |f: fn(f64) -> f64| fit_growth(&points(f)).unwrap().class;
        assert_eq!(class(|_| 5_000.0), GrowthClass::Constant);
        assert_eq!(class(|n| 3.0 * n), GrowthClass::Linear);
        assert_eq!(class(|n| n * n.ln()), GrowthClass::NLogN);
        assert_eq!(class(|n| n * n / 100.0), GrowthClass::Quadratic);
        assert!(fit_growth(&points(|n| n)[..1]).is_none());
    }

    #[test]
    fn slower_than_the_threshold_is_a_regression() {
        let report = |us: u64| BenchReport {
            scenario: "s".into(),
            points: vec![BenchPoint {
                scale: 10.0,
                rows: 100,
                duration_us: us,
                locks: None,
            }],
            growth: None,
        };
        assert!(regressions(&report(1_000), &report(1_200), 25.0).is_empty());
        let found = regressions(&report(1_000), &report(1_300), 25.0);
        assert_eq!(found.len(), 1);
        assert!((found[0].slower_pct - 30.0).abs() < 1e-6);
    }

    fn hold(relation: &str, mode: LockMode, hold_us: u64) -> LockHold {
        LockHold {
            relation: relation.into(),
            mode,
            hold_us,
        }
    }

    fn locks(holds: Vec<LockHold>) -> ScaleLocks {
        ScaleLocks {
            interval_us: 10_000,
            holds,
        }
    }

    fn with_locks(points: &[(f64, Option<ScaleLocks>)]) -> BenchReport {
        BenchReport {
            scenario: "s".into(),
            points: points
                .iter()
                .map(|(scale, locks)| BenchPoint {
                    scale: *scale,
                    rows: 100,
                    duration_us: 1_000_000,
                    locks: locks.clone(),
                })
                .collect(),
            growth: None,
        }
    }

    #[test]
    fn the_migrations_holds_are_kept_longest_per_relation_and_mode() {
        use crate::locks::analysis::Hold;
        let h = |relation: &str, mode, holder, hold_us| Hold {
            relation: relation.into(),
            mode,
            holder,
            pid: 1,
            from_us: 0,
            to_us: 0,
            hold_us,
        };
        let migration = Holder::App("rehearse-rerun".into());
        let analysis = LockAnalysis {
            interval_us: 10_000,
            holds: vec![
                h(
                    "public.t",
                    LockMode::AccessExclusive,
                    migration.clone(),
                    20_000,
                ),
                h(
                    "public.t",
                    LockMode::AccessExclusive,
                    migration.clone(),
                    50_000,
                ),
                h(
                    "public.t",
                    LockMode::RowExclusive,
                    migration.clone(),
                    90_000,
                ),
                // Autovacuum is not the migration.
                h(
                    "public.u",
                    LockMode::ShareUpdateExclusive,
                    Holder::App(String::new()),
                    1,
                ),
                // An index the migration is building: nobody else sees it.
                h(
                    "16809",
                    LockMode::AccessExclusive,
                    migration.clone(),
                    70_000,
                ),
            ],
            ..LockAnalysis::default()
        };
        let got = ScaleLocks::of(&analysis, &migration);
        assert_eq!(
            got,
            locks(vec![
                hold("public.t", LockMode::RowExclusive, 90_000),
                hold("public.t", LockMode::AccessExclusive, 50_000),
            ])
        );
        // A longer hold that blocks nothing is not the worst blocking one.
        assert_eq!(
            got.worst_blocking(),
            Some(&hold("public.t", LockMode::AccessExclusive, 50_000))
        );
    }

    #[test]
    fn repetitions_keep_the_shortest_of_the_holds_they_saw() {
        let runs = [
            locks(vec![hold("public.t", LockMode::AccessExclusive, 40_000)]),
            locks(vec![
                hold("public.t", LockMode::AccessExclusive, 30_000),
                hold("public.t", LockMode::Share, 10_000),
            ]),
            // This one did not see the SHARE lock: sampling, not absence.
            locks(vec![hold("public.t", LockMode::AccessExclusive, 60_000)]),
        ];
        let got = ScaleLocks::fastest_of(&runs).unwrap();
        assert_eq!(
            got.holds,
            [
                hold("public.t", LockMode::AccessExclusive, 30_000),
                hold("public.t", LockMode::Share, 10_000),
            ]
        );
        assert!(ScaleLocks::fastest_of(&[]).is_none());
    }

    #[test]
    fn the_table_shows_the_blocking_holds_per_scale() {
        let report = with_locks(&[
            (
                1.0,
                Some(locks(vec![
                    hold("public.t", LockMode::AccessShare, 900_000),
                    hold("public.t", LockMode::AccessExclusive, 120_000),
                ])),
            ),
            (10.0, Some(locks(Vec::new()))),
            (100.0, None),
        ]);
        let mut out = Vec::new();
        write_table(&report, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("BLOCKING HOLD"), "{text}");
        assert!(
            lines[1].ends_with("120.0ms  ACCESS EXCLUSIVE on public.t"),
            "{text}"
        );
        assert!(lines[2].ends_with("-  none seen"), "{text}");
        assert!(lines[3].ends_with("-  not measured"), "{text}");
        let row = lines
            .iter()
            .find(|l| l.trim_start().starts_with("ACCESS EXCLUSIVE on public.t"))
            .unwrap();
        let cells: Vec<&str> = row.split_whitespace().rev().take(3).collect();
        assert_eq!(cells, ["?", "-", "120.0ms"], "{text}");
        // ACCESS SHARE blocks neither reads nor writes: not listed.
        assert!(!text.contains("ACCESS SHARE"), "{text}");
    }

    #[test]
    fn a_blocking_hold_longer_than_the_baseline_allows_is_a_regression() {
        let at = |us| {
            with_locks(&[(
                1.0,
                Some(locks(vec![hold("public.t", LockMode::AccessExclusive, us)])),
            )])
        };
        let found = lock_regressions(&at(1_000_000), &at(1_500_000), 20.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].baseline_us, Some(1_000_000));
        assert!((found[0].longer_pct.unwrap() - 50.0).abs() < 1e-6);
        assert!(found[0].describe(20.0).contains("50% longer"));
        assert!(lock_regressions(&at(1_000_000), &at(1_100_000), 20.0).is_empty());
        // 10 ms to 30 ms is 200% longer, but within two sampling intervals.
        assert!(lock_regressions(&at(10_000), &at(30_000), 20.0).is_empty());
        // A blocking lock the baseline never saw held.
        let none = with_locks(&[(1.0, Some(locks(Vec::new())))]);
        let new = lock_regressions(&none, &at(500_000), 20.0);
        assert_eq!(new.len(), 1);
        assert!(new[0].describe(20.0).contains("not held in the baseline"));
        // A baseline that did not measure locks is not compared.
        let old = with_locks(&[(1.0, None)]);
        assert!(lock_regressions(&old, &at(500_000), 20.0).is_empty());
        assert!(!measures_locks(&old));
    }

    #[test]
    fn baselines_without_lock_holds_still_load() {
        let old = r#"{"scenario":"s","points":[{"scale":1.0,"rows":10,"duration_us":5}],
            "growth":null}"#;
        let report: BenchReport = serde_json::from_str(old).unwrap();
        assert_eq!(report.points[0].locks, None);
    }
}
