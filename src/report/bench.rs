//! `rehearse bench` results: migration duration per seed scale, the fitted
//! growth, and the comparison with a stored baseline. Pure: the CLI measures,
//! this decides.

use serde::{Deserialize, Serialize};

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
            }],
            growth: None,
        };
        assert!(regressions(&report(1_000), &report(1_200), 25.0).is_empty());
        let found = regressions(&report(1_000), &report(1_300), 25.0);
        assert_eq!(found.len(), 1);
        assert!((found[0].slower_pct - 30.0).abs() < 1e-6);
    }
}
