//! `seeds/*.toml`: how many rows, which generators, which distributions.
//!
//! ```toml
//! seed = 42               # used when the command line gives none
//! scale = 1.0             # multiplies every row count
//! default_rows = 1000     # tables not listed here
//! hostile = false         # hostile values everywhere
//!
//! [tables.orders]
//! rows = 100000
//! hostile = true          # this table only
//!
//! [tables.orders.columns.customer_id]           # a foreign key column
//! distribution = { kind = "zipf", exponent = 1.1 }
//!
//! [tables.orders.columns.status]
//! values = { pending = 5, paid = 80, cancelled = 15 }   # or ["a", "b"]
//!
//! [tables.orders.columns.total]
//! distribution = { kind = "normal", mean = 80.0, stddev = 40.0 }
//! min = 1
//! max = 5000
//!
//! [tables.orders.columns.notes]
//! generator = "sentence"  # email, name, phone, city, url, ip, user_agent, ...
//! null_fraction = 0.8
//! length = { min = 10, max = 200 }
//!
//! [tables.orders.columns.shipped_at]
//! from = "2020-01-01"
//! to = "2025-12-31"
//! after = "created_at"    # never before created_at
//!
//! [tables.order_items.per_parent]   # rows come as children of orders
//! column = "order_id"
//! distribution = { kind = "uniform", min = 1, max = 5 }
//! ```
//!
//! Tables are named `name` (unambiguous or in `public`) or `schema.name`.
//! Every value keeps its span so that errors found later, against the real
//! schema, still point at `file:line:col`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_spanned::Spanned;

use super::SeedError;
use super::error::location;

pub use crate::scenario::MAX_SCALE;
/// Largest row count of one table a seeds file may ask for.
pub const MAX_ROWS: u64 = 1_000_000_000;

/// A parsed seeds file.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    pub(crate) origin: PathBuf,
    pub(crate) text: String,
    pub(crate) raw: RawSpec,
    /// Captured production statistics to shape tables and columns the
    /// file does not describe (`[seed] stats`).
    pub(crate) stats: Option<std::sync::Arc<crate::stats::StatsSnapshot>>,
}

/// The top level of a seeds file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    /// Seed used when the command line gives none.
    pub seed: Option<Spanned<u64>>,
    /// Multiplies every row count.
    pub scale: Option<Spanned<f64>>,
    /// Rows for tables the spec does not list.
    pub default_rows: Option<Spanned<u64>>,
    /// Hostile values in every table.
    pub hostile: Option<Spanned<bool>>,
    #[serde(default)]
    pub tables: BTreeMap<Spanned<String>, TableSpec>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TableSpec {
    pub rows: Option<Spanned<u64>>,
    pub hostile: Option<Spanned<bool>>,
    /// Rows come as children of a parent: this many per parent row.
    pub per_parent: Option<Spanned<PerParent>>,
    #[serde(default)]
    pub columns: BTreeMap<Spanned<String>, Spanned<ColumnSpec>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PerParent {
    /// A foreign key column of this table.
    pub column: Spanned<String>,
    pub distribution: Spanned<Distribution>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ColumnSpec {
    /// A named generator (`email`, `name`, `sentence`, ...).
    pub generator: Option<Spanned<String>>,
    pub distribution: Option<Spanned<Distribution>>,
    /// Allowed values: a list (equal weights) or a table of value = weight.
    pub values: Option<Spanned<Values>>,
    pub null_fraction: Option<Spanned<f64>>,
    /// Text length in characters.
    pub length: Option<Spanned<LengthRange>>,
    pub min: Option<Spanned<f64>>,
    pub max: Option<Spanned<f64>>,
    /// Earliest date or timestamp, `YYYY-MM-DD` or RFC 3339.
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    /// This column is never before the named one (`updated_at` after `created_at`).
    pub after: Option<Spanned<String>>,
    pub hostile: Option<Spanned<bool>>,
}

/// `distribution = { kind = "...", ... }`. On a value column it shapes the
/// values within the column's range; on a foreign key column it shapes which
/// parent rows are picked (zipf: a few parents get most children; normal:
/// `mean` and `stddev` are fractions of the parent count); in `per_parent`
/// it is the number of children per parent row.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Distribution {
    Uniform {
        min: Option<f64>,
        max: Option<f64>,
    },
    Normal {
        mean: f64,
        stddev: f64,
    },
    /// Rank-frequency skew: the first value (or parent) is the most common.
    Zipf {
        exponent: f64,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Values {
    List(Vec<ValueLiteral>),
    Weighted(BTreeMap<String, f64>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ValueLiteral {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl ValueLiteral {
    pub(crate) fn to_text(&self) -> String {
        match self {
            ValueLiteral::Bool(b) => b.to_string(),
            ValueLiteral::Int(i) => i.to_string(),
            ValueLiteral::Float(f) => f.to_string(),
            ValueLiteral::Text(s) => s.clone(),
        }
    }
}

impl Values {
    /// (value, weight) pairs in file order for lists, key order for tables.
    pub(crate) fn weighted(&self) -> Vec<(String, f64)> {
        match self {
            Values::List(items) => items.iter().map(|v| (v.to_text(), 1.0)).collect(),
            Values::Weighted(map) => map.iter().map(|(k, w)| (k.clone(), *w)).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LengthRange {
    pub min: usize,
    pub max: usize,
}

impl SeedSpec {
    /// Reads and parses a seeds file.
    pub fn load(path: &Path) -> Result<SeedSpec, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|e| SeedError::Read {
            path: path.display().to_string(),
            message: e.to_string().to_lowercase(),
        })?;
        SeedSpec::parse(&text, path)
    }

    /// Parses seeds file text; `origin` is the path used in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<SeedSpec, SeedError> {
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            SeedError::Spec {
                location: location(origin, text, offset),
                field: field_of_toml_error(text, offset),
                message: e.message().trim().to_owned(),
            }
        })?;
        let spec = SeedSpec {
            origin: origin.to_owned(),
            text: text.to_owned(),
            raw,
            stats: None,
        };
        spec.check_shape()?;
        Ok(spec)
    }

    /// An empty spec: every table at the default row count.
    #[must_use]
    pub fn empty() -> SeedSpec {
        SeedSpec {
            origin: PathBuf::from("<defaults>"),
            text: String::new(),
            raw: RawSpec::default(),
            stats: None,
        }
    }

    /// Shapes tables and columns this spec does not describe after captured
    /// statistics: row counts (times `scale`), NULL fractions, distinct
    /// values, skew, histograms, widths and physical order.
    #[must_use]
    pub fn with_stats(mut self, stats: std::sync::Arc<crate::stats::StatsSnapshot>) -> SeedSpec {
        self.stats = Some(stats);
        self
    }

    /// The path the spec was read from.
    #[must_use]
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The `seed` the file asks for, if any.
    #[must_use]
    pub fn seed(&self) -> Option<u64> {
        self.raw.seed.as_ref().map(|s| *s.get_ref())
    }

    /// The file's `scale`, 1.0 when absent.
    #[must_use]
    pub fn scale(&self) -> f64 {
        self.raw.scale.as_ref().map_or(1.0, |s| *s.get_ref())
    }

    /// An error at a span of this file.
    pub(crate) fn error_at(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> SeedError {
        SeedError::Spec {
            location: location(&self.origin, &self.text, span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Checks that need no schema: ranges, fractions, weights.
    fn check_shape(&self) -> Result<(), SeedError> {
        if let Some(scale) = &self.raw.scale
            && !(scale.get_ref().is_finite() && *scale.get_ref() >= 0.0)
        {
            return Err(self.error_at(scale.span(), "scale", "must be a finite number >= 0"));
        }
        // Bounds that turn a typo (1e300, an extra zero run) into an error
        // instead of zero rows (a scale past u64) or a run without end.
        if let Some(scale) = &self.raw.scale
            && *scale.get_ref() > MAX_SCALE
        {
            return Err(self.error_at(
                scale.span(),
                "scale",
                format!("must be at most {MAX_SCALE}"),
            ));
        }
        if let Some(rows) = &self.raw.default_rows
            && *rows.get_ref() > MAX_ROWS
        {
            return Err(self.error_at(
                rows.span(),
                "default_rows",
                format!("must be at most {MAX_ROWS}"),
            ));
        }
        for (table, t) in &self.raw.tables {
            if let Some(rows) = &t.rows
                && *rows.get_ref() > MAX_ROWS
            {
                return Err(self.error_at(
                    rows.span(),
                    format!("tables.{}.rows", table.get_ref()),
                    format!("must be at most {MAX_ROWS}"),
                ));
            }
            if let Some(pp) = &t.per_parent {
                self.check_distribution(
                    &pp.get_ref().distribution,
                    &format!("tables.{}.per_parent.distribution", table.get_ref()),
                )?;
                if let Some(rows) = &t.rows {
                    return Err(self.error_at(
                        rows.span(),
                        format!("tables.{}.rows", table.get_ref()),
                        "rows and per_parent are exclusive: per_parent decides the row count",
                    ));
                }
            }
            for (column, c) in &t.columns {
                let field = format!("tables.{}.columns.{}", table.get_ref(), column.get_ref());
                let spec = c.get_ref();
                if let Some(f) = &spec.null_fraction
                    && !(0.0..=1.0).contains(f.get_ref())
                {
                    return Err(self.error_at(
                        f.span(),
                        format!("{field}.null_fraction"),
                        "must be between 0 and 1",
                    ));
                }
                if let Some(len) = &spec.length
                    && len.get_ref().min > len.get_ref().max
                {
                    return Err(self.error_at(len.span(), format!("{field}.length"), "min > max"));
                }
                if let (Some(min), Some(max)) = (&spec.min, &spec.max)
                    && min.get_ref() > max.get_ref()
                {
                    return Err(self.error_at(min.span(), format!("{field}.min"), "min > max"));
                }
                if let Some(d) = &spec.distribution {
                    self.check_distribution(d, &format!("{field}.distribution"))?;
                }
                if let Some(values) = &spec.values {
                    let pairs = values.get_ref().weighted();
                    if pairs.is_empty()
                        || pairs.iter().any(|(_, w)| !(w.is_finite() && *w >= 0.0))
                        || pairs.iter().all(|(_, w)| *w == 0.0)
                    {
                        return Err(self.error_at(
                            values.span(),
                            format!("{field}.values"),
                            "needs at least one value and non-negative weights, not all zero",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn check_distribution(&self, d: &Spanned<Distribution>, field: &str) -> Result<(), SeedError> {
        let problem = match d.get_ref() {
            Distribution::Uniform {
                min: Some(a),
                max: Some(b),
            } if a > b => Some("min > max"),
            Distribution::Normal { stddev, .. } if !(*stddev >= 0.0 && stddev.is_finite()) => {
                Some("stddev must be a finite number >= 0")
            }
            Distribution::Zipf { exponent } if !(*exponent > 0.0 && exponent.is_finite()) => {
                Some("exponent must be a finite number > 0")
            }
            _ => None,
        };
        match problem {
            Some(p) => Err(self.error_at(d.span(), field, p)),
            None => Ok(()),
        }
    }
}

/// The dotted key path in effect at a byte offset: the last `[table]` header
/// before it plus the key on its line. Good enough to name the field of a
/// parse error, which toml reports only by position.
fn field_of_toml_error(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let header = before
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']'))
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned())
        })
        .next_back();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_owned())
        .filter(|k| !k.starts_with('['));
    match (header, key) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => k,
        (None, None) => "(top level)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        SeedSpec::parse(text, Path::new("seeds/x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_full_spec() {
        let spec = SeedSpec::parse(
            r#"
seed = 7
scale = 0.5
default_rows = 10

[tables.orders]
rows = 100
[tables.orders.columns.status]
values = { pending = 1, paid = 8 }
[tables.orders.columns.customer_id]
distribution = { kind = "zipf", exponent = 1.1 }
[tables.order_items.per_parent]
column = "order_id"
distribution = { kind = "uniform", min = 1, max = 5 }
"#,
            Path::new("seeds/x.toml"),
        )
        .unwrap();
        assert_eq!(spec.seed(), Some(7));
        assert_eq!(spec.scale(), 0.5);
    }

    #[test]
    fn unknown_field_names_file_line_col_and_field() {
        let e =
            err("[tables.orders]\nrows = 1\n\n[tables.orders.columns.total]\nnul_fraction = 0.5\n");
        assert!(
            e.starts_with("seeds/x.toml:5:1: tables.orders.columns.total.nul_fraction: "),
            "{e}"
        );
        assert!(e.contains("unknown field `nul_fraction`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = err("scale = 1e300\n");
        assert!(
            e.starts_with("seeds/x.toml:1:9: scale: must be at most"),
            "{e}"
        );
        let e = err("[tables.orders]\nrows = 99999999999999\n");
        assert!(
            e.starts_with("seeds/x.toml:2:8: tables.orders.rows: must be at most"),
            "{e}"
        );
        let e = err("[tables.orders]\nrows = \"many\"\n");
        assert!(
            e.starts_with("seeds/x.toml:2:8: tables.orders.rows: "),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_fraction_is_an_error_at_the_value() {
        let e = err("[tables.t.columns.c]\nnull_fraction = 1.5\n");
        assert_eq!(
            e,
            "seeds/x.toml:2:17: tables.t.columns.c.null_fraction: must be between 0 and 1"
        );
    }

    #[test]
    fn bad_distribution_is_reported() {
        let e = err("[tables.t.columns.c]\ndistribution = { kind = \"zipf\", exponent = -1 }\n");
        assert!(
            e.starts_with("seeds/x.toml:2:16: tables.t.columns.c.distribution: exponent"),
            "{e}"
        );
        let e = err("[tables.t.columns.c]\ndistribution = { kind = \"poisson\" }\n");
        assert!(e.starts_with("seeds/x.toml:2:"), "{e}");
    }

    #[test]
    fn rows_and_per_parent_are_exclusive() {
        let e = err(
            "[tables.t]\nrows = 5\n[tables.t.per_parent]\ncolumn = \"p\"\ndistribution = { kind = \"uniform\", min = 1, max = 2 }\n",
        );
        assert!(
            e.starts_with("seeds/x.toml:2:8: tables.t.rows: rows and per_parent"),
            "{e}"
        );
    }
}
