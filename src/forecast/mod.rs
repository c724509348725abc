//! Forecasting a migration's statements at production size.
//!
//! The statements are timed at a few small sizes (fractions of production,
//! or multiples of the seeds file), a curve `t = a + b * f(n)` is fitted per
//! statement against the row count of the table it works on, and read off
//! at the production row count (from a stats snapshot or a user-given
//! count). `f` is `n` for scans, rewrites and backfills, and `n` or
//! `n log n` for statements that sort (index builds), whichever predicts
//! best (see [`fit`]). Pure: [`measure`] does the
//! timing, this module fits, forecasts and words the result.
//!
//! The interval: the fit is also made without the largest size and used to
//! predict it; the relative error of that prediction, doubled, and never
//! under [`MIN_BAND`], is the band around the forecast. The benchmark
//! `benches/forecast.rs` measures the real error at a 25x larger size.

pub mod measure;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::locks::LockMode;

/// The narrowest relative band reported around a forecast.
pub const MIN_BAND: f64 = 0.4;

/// What a statement does, as far as its cost goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatementKind {
    /// CREATE INDEX (also UNIQUE / PRIMARY KEY constraints): sorts.
    IndexBuild,
    /// ALTER TABLE that rewrites the table (column type change, volatile default).
    TableRewrite,
    /// ADD FOREIGN KEY without NOT VALID, or VALIDATE CONSTRAINT.
    ForeignKeyValidation,
    /// SET NOT NULL or ADD CHECK: a full scan.
    Scan,
    /// UPDATE / DELETE touching many rows.
    Backfill,
    /// Anything else (metadata only, or unknown).
    Other,
}

impl StatementKind {
    /// Classifies a statement from its text.
    #[must_use]
    pub fn of(sql: &str) -> StatementKind {
        let s = normalise(sql);
        if s.starts_with("create unique index") || s.starts_with("create index") {
            StatementKind::IndexBuild
        } else if s.starts_with("update ") || s.starts_with("delete ") {
            StatementKind::Backfill
        } else if s.starts_with("alter table") {
            if s.contains("foreign key") && !s.contains("not valid")
                || s.contains("validate constraint")
            {
                StatementKind::ForeignKeyValidation
            } else if s.contains("primary key") || s.contains(" unique") {
                StatementKind::IndexBuild
            } else if s.contains(" type ")
                || s.contains("gen_random_uuid")
                || s.contains("clock_timestamp")
                || s.contains("random()")
            {
                StatementKind::TableRewrite
            } else if s.contains("set not null") || s.contains("check") && !s.contains("not valid")
            {
                StatementKind::Scan
            } else {
                StatementKind::Other
            }
        } else {
            StatementKind::Other
        }
    }

    /// The table lock the statement takes on its table (PostgreSQL manual,
    /// "Explicit Locking", table 13.2 and the ALTER TABLE page).
    #[must_use]
    pub fn lock(self, sql: &str) -> Option<LockMode> {
        let s = normalise(sql);
        Some(match self {
            StatementKind::IndexBuild if s.contains("concurrently") => {
                LockMode::ShareUpdateExclusive
            }
            StatementKind::IndexBuild if s.starts_with("create") => LockMode::Share,
            StatementKind::ForeignKeyValidation if s.contains("validate constraint") => {
                LockMode::ShareUpdateExclusive
            }
            StatementKind::ForeignKeyValidation => LockMode::ShareRowExclusive,
            StatementKind::Backfill => LockMode::RowExclusive,
            StatementKind::IndexBuild | StatementKind::TableRewrite | StatementKind::Scan => {
                LockMode::AccessExclusive
            }
            StatementKind::Other if s.starts_with("alter table") => LockMode::AccessExclusive,
            StatementKind::Other => return None,
        })
    }

    /// Whether the cost grows like `n log n` (a sort) rather than `n`.
    #[must_use]
    pub fn sorts(self) -> bool {
        self == StatementKind::IndexBuild
    }

    /// A short label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            StatementKind::IndexBuild => "index build",
            StatementKind::TableRewrite => "table rewrite",
            StatementKind::ForeignKeyValidation => "FK validation",
            StatementKind::Scan => "SET NOT NULL / CHECK scan",
            StatementKind::Backfill => "backfill",
            StatementKind::Other => "other",
        }
    }
}

/// Lowercase, single spaces, no comments.
fn normalise(sql: &str) -> String {
    let without_comments: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    without_comments
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The table a statement works on: `ON t` of CREATE INDEX, the table of
/// ALTER TABLE / UPDATE / DELETE FROM. Unquoted, schema kept if written.
#[must_use]
pub fn target_table(sql: &str) -> Option<String> {
    let s = normalise(sql);
    let words: Vec<&str> = s.split(' ').collect();
    let after = |i: usize| -> Option<String> {
        words[i..]
            .iter()
            .find(|w| !matches!(**w, "only" | "if" | "exists" | "table" | "from"))
            .map(|w| {
                w.trim_end_matches(';')
                    .split('(')
                    .next()
                    .unwrap_or("")
                    .replace('"', "")
            })
    };
    if s.starts_with("create") {
        let on = words.iter().position(|w| *w == "on")?;
        return after(on + 1);
    }
    if s.starts_with("alter table") {
        return after(2);
    }
    if s.starts_with("update ") || s.starts_with("delete from ") {
        return after(1);
    }
    None
}

/// One timing of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Rows of the statement's table.
    pub rows: f64,
    pub duration_us: f64,
}

/// The fitted curve `t = a + b * f(n)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub intercept_us: f64,
    pub slope: f64,
    /// `f(n) = n ln n` when true, else `n`.
    pub n_log_n: bool,
    /// Relative band around a forecast (see the module docs).
    pub band: f64,
}

fn f_of(n: f64, n_log_n: bool) -> f64 {
    if n_log_n { n * n.max(2.0).ln() } else { n }
}

/// Least squares weighted by row count, with a non-negative intercept.
/// The weights: timings of the smallest sizes are the noisiest relative to
/// their size (a scheduler hiccup of a few milliseconds doubles them), and
/// the forecast extrapolates from the largest. A fixed cost is never
/// negative; a negative one would make large forecasts too small.
fn least_squares(samples: &[Sample], n_log_n: bool) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64, f64)> = samples
        .iter()
        .map(|s| (f_of(s.rows, n_log_n), s.duration_us, s.rows.max(1.0)))
        .collect();
    let w: f64 = points.iter().map(|p| p.2).sum();
    let mx = points.iter().map(|p| p.2 * p.0).sum::<f64>() / w;
    let my = points.iter().map(|p| p.2 * p.1).sum::<f64>() / w;
    let sxx: f64 = points.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| p.2 * (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    if intercept >= 0.0 && slope >= 0.0 {
        return Some((intercept, slope));
    }
    // Through the origin.
    let sxx0: f64 = points.iter().map(|p| p.2 * p.0 * p.0).sum();
    let sxy0: f64 = points.iter().map(|p| p.2 * p.0 * p.1).sum();
    Some((0.0, (sxy0 / sxx0).max(0.0)))
}

/// Fits samples of one statement; `None` with fewer than two distinct
/// row counts. Scans, rewrites and backfills are linear; for a sort (an
/// index build) both `n` and `n log n` are tried and the one that better
/// predicts the largest size from the others wins: over a 10x range the
/// log factor adds only ~20 %, less than the timing noise at small sizes,
/// and an in-memory sort often grows closer to linear.
#[must_use]
pub fn fit(samples: &[Sample], kind: StatementKind) -> Option<Fit> {
    let models: &[bool] = if kind.sorts() {
        &[false, true]
    } else {
        &[false]
    };
    models
        .iter()
        .filter_map(|&n_log_n| fit_model(samples, n_log_n))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(fit, _)| fit)
}

/// One model's fit and its leave-largest-out relative error.
fn fit_model(samples: &[Sample], n_log_n: bool) -> Option<(Fit, f64)> {
    let (intercept_us, slope) = least_squares(samples, n_log_n)?;
    let largest = samples
        .iter()
        .copied()
        .max_by(|a, b| a.rows.total_cmp(&b.rows))?;
    let rest: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.rows < largest.rows)
        .collect();
    let loo = least_squares(&rest, n_log_n).map_or(0.0, |(a, b)| {
        let predicted = a + b * f_of(largest.rows, n_log_n);
        (predicted - largest.duration_us).abs() / largest.duration_us.max(1.0)
    });
    Some((
        Fit {
            intercept_us,
            slope,
            n_log_n,
            band: (2.0 * loo).max(MIN_BAND),
        },
        loo,
    ))
}

/// A forecast duration with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub point_us: f64,
    pub low_us: f64,
    pub high_us: f64,
}

impl Fit {
    /// The forecast at `rows` rows.
    #[must_use]
    pub fn at(&self, rows: f64) -> Estimate {
        let point_us = self.intercept_us + self.slope * f_of(rows, self.n_log_n);
        Estimate {
            point_us,
            low_us: point_us * (1.0 - self.band).max(0.0),
            high_us: point_us * (1.0 + self.band),
        }
    }
}

/// One statement's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementForecast {
    pub migration: String,
    /// First line of the statement.
    pub statement: String,
    pub kind: StatementKind,
    pub table: Option<String>,
    pub lock: Option<LockMode>,
    /// Production rows of the table the forecast is for.
    pub rows: f64,
    pub samples: Vec<Sample>,
    pub fit: Option<Fit>,
    /// The statement's own duration at `rows`.
    pub duration: Option<Estimate>,
    /// How long its lock is held: this statement and every later one of
    /// the same transaction (a lock is held until commit).
    pub hold: Option<Estimate>,
}

/// Every forecast of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForecastReport {
    pub scenario: String,
    /// Where the production row counts came from (`stats FILE`, `rows`).
    pub source: String,
    pub statements: Vec<StatementForecast>,
}

impl ForecastReport {
    /// Statements whose forecast lock hold, on a lock that blocks reads or
    /// writes, is over `budget` (the point forecast counts; the interval
    /// is in each forecast).
    #[must_use]
    pub fn forecast_exceeds(&self, budget: Duration) -> Vec<&StatementForecast> {
        let budget_us = budget.as_micros() as f64;
        self.statements
            .iter()
            .filter(|s| {
                s.lock
                    .is_some_and(|m| m.blocks_reads() || m.blocks_writes())
                    && s.hold.is_some_and(|h| h.point_us > budget_us)
            })
            .collect()
    }
}

impl StatementForecast {
    /// "CREATE INDEX on orders: SHARE held about 3 min 10 s (2 min 40 s -
    /// 3 min 40 s) at 48.2M rows, blocks writes".
    #[must_use]
    pub fn describe(&self) -> String {
        let what = self.statement.split_whitespace().collect::<Vec<_>>();
        let verb = what
            .iter()
            .take(
                if what
                    .get(1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("unique"))
                {
                    3
                } else {
                    2
                },
            )
            .map(|w| w.to_uppercase())
            .collect::<Vec<_>>()
            .join(" ");
        let on = self
            .table
            .as_deref()
            .map_or_else(String::new, |t| format!(" on {t}"));
        let Some(hold) = self.hold else {
            return format!("{verb}{on}: too few sizes to forecast");
        };
        let lock = self
            .lock
            .map_or_else(|| "no table lock".to_owned(), |m| m.sql_name().to_owned());
        let blocks = match self.lock {
            Some(m) if m.blocks_reads() => ", blocks reads and writes",
            Some(m) if m.blocks_writes() => ", blocks writes",
            _ => "",
        };
        format!(
            "{verb}{on}: {lock} held about {} ({} - {}) at {} rows{blocks}",
            human_duration(hold.point_us),
            human_duration(hold.low_us),
            human_duration(hold.high_us),
            human_rows(self.rows)
        )
    }
}

/// `3 min 10 s`, `4.2 s`, `120 ms`.
#[must_use]
pub fn human_duration(us: f64) -> String {
    let s = us / 1e6;
    if s >= 3600.0 {
        format!(
            "{} h {} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    } else if s >= 60.0 {
        format!("{} min {} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else if s >= 1.0 {
        format!("{s:.2} s")
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.0} µs", us.max(0.0))
    }
}

/// `48.2M`, `120k`, `900`.
#[must_use]
pub fn human_rows(rows: f64) -> String {
    if rows >= 1e9 {
        format!("{:.1}G", rows / 1e9)
    } else if rows >= 1e6 {
        format!("{:.1}M", rows / 1e6)
    } else if rows >= 1e3 {
        format!("{:.0}k", rows / 1e3)
    } else {
        format!("{rows:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_locks_and_tables() {
        let k = |s: &str| StatementKind::of(s);
        assert_eq!(
            k("CREATE INDEX orders_total ON orders (total);"),
            StatementKind::IndexBuild
        );
        assert_eq!(
            k("ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2)"),
            StatementKind::TableRewrite
        );
        assert_eq!(
            k("ALTER TABLE items ADD CONSTRAINT f FOREIGN KEY (order_id) REFERENCES orders"),
            StatementKind::ForeignKeyValidation
        );
        assert_eq!(
            k("ALTER TABLE items ADD CONSTRAINT f FOREIGN KEY (o) REFERENCES orders NOT VALID"),
            StatementKind::Other
        );
        assert_eq!(
            k("alter table orders alter column note set not null"),
            StatementKind::Scan
        );
        assert_eq!(k("UPDATE orders SET x = 1"), StatementKind::Backfill);
        assert_eq!(
            StatementKind::IndexBuild.lock("CREATE INDEX CONCURRENTLY i ON t (a)"),
            Some(LockMode::ShareUpdateExclusive)
        );
        assert_eq!(
            target_table("CREATE INDEX i ON public.orders USING btree (a)").as_deref(),
            Some("public.orders")
        );
        assert_eq!(
            target_table("ALTER TABLE ONLY \"orders\" ADD x int").as_deref(),
            Some("orders")
        );
        assert_eq!(
            target_table("UPDATE orders SET a = 1").as_deref(),
            Some("orders")
        );
    }

    #[test]
    fn a_linear_cost_is_forecast_exactly() {
        let samples: Vec<Sample> = [1e4, 2e4, 4e4]
            .iter()
            .map(|&n| Sample {
                rows: n,
                duration_us: 500.0 + 2.0 * n,
            })
            .collect();
        let fit = fit(&samples, StatementKind::Scan).unwrap();
        let at = fit.at(1e6);
        assert!((at.point_us - 2_000_500.0).abs() < 1.0, "{at:?}");
        assert!((fit.band - MIN_BAND).abs() < 1e-9);
        assert!(at.low_us < at.point_us && at.point_us < at.high_us);
    }

    #[test]
    fn budget_is_judged_on_blocking_holds() {
        let hold = |us: f64| Estimate {
            point_us: us,
            low_us: us,
            high_us: us,
        };
        let statement = |lock, us| StatementForecast {
            migration: "1".into(),
            statement: "CREATE INDEX i ON orders (a)".into(),
            kind: StatementKind::IndexBuild,
            table: Some("orders".into()),
            lock: Some(lock),
            rows: 48.2e6,
            samples: Vec::new(),
            fit: None,
            duration: Some(hold(us)),
            hold: Some(hold(us)),
        };
        let report = ForecastReport {
            scenario: "s".into(),
            source: "rows".into(),
            statements: vec![
                statement(LockMode::Share, 190e6),
                statement(LockMode::ShareUpdateExclusive, 900e6),
                statement(LockMode::AccessExclusive, 0.5e6),
            ],
        };
        let over = report.forecast_exceeds(Duration::from_millis(1000));
        assert_eq!(over.len(), 1);
        assert_eq!(
            over[0].describe(),
            "CREATE INDEX on orders: SHARE held about 3 min 10 s (3 min 10 s - 3 min 10 s) \
             at 48.2M rows, blocks writes"
        );
    }
}
