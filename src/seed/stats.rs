//! Seeding to the shape of captured production statistics
//! (`[seed] stats`, see `crate::stats`).
//!
//! Per table the row count comes from `reltuples` (times the scale); per
//! column a [`Shaped`] generator reproduces what `pg_stats` describes:
//!
//! - NULL fraction: `null_frac` (the plan's `null_fraction`).
//! - Most common values: picked with their captured frequencies.
//! - The rest: `n_distinct` distinct values (scaled with the row count when
//!   the capture stored it as a fraction), laid out along the histogram's
//!   equal-population buckets, so every bucket gets its share of rows.
//! - Physical order: the values are dealt out along a permutation of the
//!   rows whose correlation with the physical order is the captured one
//!   (see `Shaped::position`).
//! - Text widths: values are `n_distinct` distinct, order-preserving tokens
//!   whose lengths follow the captured histogram bound lengths (or
//!   `avg_width`).
//!
//! Columns a seeds file describes keep the seeds file's generator, and so do
//! keys, foreign keys and types this module does not shape.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::distribution::Weighted;
use super::generate::{self, Gen};
use super::schema::{Column, ColumnType};
use super::value::Value;
use crate::stats::{ColumnStats, StatsSnapshot, ValueKind};

/// Rows for a table from the snapshot, before the scale.
pub(crate) fn table_rows(stats: &StatsSnapshot, schema: &str, name: &str) -> Option<u64> {
    let table = stats
        .tables
        .iter()
        .find(|t| t.schema == schema && t.name == name)?;
    table.rows.map(|r| r.max(0.0).round() as u64)
}

/// The captured column, if the snapshot has an analyzed entry for it.
pub(crate) fn column_stats<'s>(
    stats: &'s StatsSnapshot,
    schema: &str,
    table: &str,
    column: &str,
) -> Option<&'s ColumnStats> {
    stats
        .tables
        .iter()
        .find(|t| t.schema == schema && t.name == table)?
        .column(column)
        .filter(|c| c.analyzed)
}

/// The plan's hook: a shaped generator and the captured NULL fraction for
/// a plain column (no check bounds, not a key) the snapshot describes;
/// otherwise what the plan chose.
pub(crate) fn shape(
    stats: &StatsSnapshot,
    table: &super::schema::Table,
    column: &Column,
    rows: u64,
    generator: Gen,
    null_fraction: f64,
) -> (Gen, f64) {
    if matches!(generator, Gen::ForeignKey { .. } | Gen::Null)
        || column.sequence
        || column.bounds != super::schema::Bounds::default()
    {
        return (generator, null_fraction);
    }
    let Some(captured) = column_stats(stats, &table.schema, &table.name, &column.name) else {
        return (generator, null_fraction);
    };
    let null_fraction = if column.not_null {
        0.0
    } else {
        captured.null_frac.clamp(0.0, 1.0)
    };
    match Shaped::new(column, captured, rows) {
        Some(shaped) => (shaped.into_gen(), null_fraction),
        None => (generator, null_fraction),
    }
}

/// The kind of values a shaped column produces.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    I16,
    I32,
    I64,
    F32,
    F64,
    Numeric(u16),
    Date,
    Timestamp,
    Text { max_chars: Option<usize> },
    Bool,
}

/// A generator shaped after one column's statistics.
#[derive(Debug, Clone)]
pub(crate) struct Shaped {
    kind: Kind,
    /// Probability that a non-NULL value is one of the most common ones.
    mcv_share: f64,
    mcv: Vec<Value>,
    mcv_weights: Option<Weighted>,
    /// Distinct values outside the MCV list.
    distinct: u64,
    /// Histogram bounds as numbers (numeric kinds); empty for text.
    bounds: Vec<f64>,
    /// Lengths for text tokens, in order.
    lengths: Vec<usize>,
    correlation: f64,
    rows: u64,
}

impl Shaped {
    /// A shaped generator for `column` at `rows` rows, or `None` when the
    /// type or the captured values do not allow one.
    pub(crate) fn new(column: &Column, stats: &ColumnStats, rows: u64) -> Option<Shaped> {
        let kind = match &column.ty {
            ColumnType::Int2 => Kind::I16,
            ColumnType::Int4 => Kind::I32,
            ColumnType::Int8 => Kind::I64,
            ColumnType::Float4 => Kind::F32,
            ColumnType::Float8 => Kind::F64,
            ColumnType::Numeric { scale, .. } => Kind::Numeric(scale.unwrap_or(2).min(30) as u16),
            ColumnType::Date => Kind::Date,
            ColumnType::Timestamp | ColumnType::Timestamptz => Kind::Timestamp,
            ColumnType::Text { max_chars } => Kind::Text {
                max_chars: *max_chars,
            },
            ColumnType::Bool => Kind::Bool,
            _ => return None,
        };
        let numeric = !matches!(kind, Kind::Text { .. } | Kind::Bool);
        let non_null = (1.0 - stats.null_frac).max(1e-9);
        let mut mcv = Vec::new();
        let mut weights = Vec::new();
        for (text, freq) in stats.most_common_vals.iter().zip(&stats.most_common_freqs) {
            let value = if stats.values == ValueKind::Omitted {
                None
            } else {
                parse(kind, text)
            };
            if let Some(value) = value {
                mcv.push(value);
                weights.push(*freq);
            }
        }
        let mcv_share = (weights.iter().sum::<f64>() / non_null).clamp(0.0, 1.0);
        let bounds: Vec<f64> = if numeric {
            stats
                .histogram_bounds
                .iter()
                .filter_map(|b| parse(kind, b).and_then(|v| as_f64(&v)))
                .collect()
        } else {
            Vec::new()
        };
        if numeric && bounds.len() < 2 && mcv.is_empty() {
            return None;
        }
        if kind == Kind::Bool && mcv.is_empty() {
            return None;
        }
        let rows_f = rows as f64;
        let distinct_total = stats.distinct_at(rows_f * non_null).round() as u64;
        let distinct = distinct_total.saturating_sub(mcv.len() as u64).max(1);
        let mut lengths = stats.histogram_lengths.clone();
        if lengths.is_empty() {
            // avg_width counts the 1-byte header of a short varlena.
            lengths.push((stats.avg_width.max(2) - 1) as usize);
        }
        Some(Shaped {
            kind,
            mcv_share: if bounds.len() < 2 && !matches!(kind, Kind::Text { .. }) {
                1.0
            } else {
                mcv_share
            },
            mcv_weights: Weighted::new(&weights).ok(),
            mcv,
            distinct,
            bounds,
            lengths,
            correlation: stats.correlation.unwrap_or(0.0).clamp(-1.0, 1.0),
            rows,
        })
    }

    /// The generator to plug into the plan.
    pub(crate) fn into_gen(self) -> Gen {
        Gen::Shaped(Box::new(self))
    }

    /// A value for row `row`.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng, row: u64) -> Value {
        if let Some(weights) = &self.mcv_weights
            && !self.mcv.is_empty()
            && rng.random_bool(self.mcv_share)
        {
            return self.mcv[weights.sample(rng)].clone();
        }
        let q = self.position(row);
        let rank = ((q * self.distinct as f64) as u64).min(self.distinct - 1);
        match self.kind {
            Kind::Text { max_chars } => Value::Text(self.token(rank, max_chars)),
            Kind::Bool => self.mcv[0].clone(),
            kind => {
                // The rank's quantile, read off the equal-population buckets.
                let quantile = (rank as f64 + 0.5) / self.distinct as f64;
                let buckets = self.bounds.len() - 1;
                let at = quantile * buckets as f64;
                let i = (at as usize).min(buckets - 1);
                let (lo, hi) = (self.bounds[i], self.bounds[i + 1]);
                from_f64(kind, lo + (hi - lo) * (at - i as f64))
            }
        }
    }

    /// The row's value position in [0, 1): a permutation of the rows that
    /// keeps blocks in order and shuffles within each. With blocks of
    /// `B = n * sqrt(1 - |c|)` rows the position's correlation with the row
    /// number is `1 - (B / n)^2 = |c|` (the shuffle within a block adds
    /// variance `B^2 / 12` to the `n^2 / 12` of the order). A permutation,
    /// not independent draws: all-distinct columns stay all distinct.
    fn position(&self, row: u64) -> f64 {
        let n = self.rows.max(1);
        let r = row % n;
        let block = ((n as f64) * (1.0 - self.correlation.abs()).sqrt()).round() as u64;
        let block = block.clamp(1, n);
        let start = r - r % block;
        let size = block.min(n - start);
        let within = super::distribution::scatter((r - start) as usize, size as usize) as u64;
        let mut pos = start + within;
        if self.correlation < 0.0 {
            pos = n - 1 - pos;
        }
        (pos as f64 + 0.5) / n as f64
    }

    /// The `rank`-th of `distinct` text tokens: a fixed-width base-26 rank
    /// (so tokens sort by rank) padded to a length from the captured ones.
    fn token(&self, rank: u64, max_chars: Option<usize>) -> String {
        let width = {
            let mut w = 1;
            let mut cap = 26u64;
            while cap < self.distinct {
                w += 1;
                cap = cap.saturating_mul(26);
            }
            w
        };
        let slot = (rank as usize * self.lengths.len()) / self.distinct.max(1) as usize;
        let len = self.lengths[slot.min(self.lengths.len() - 1)]
            .max(width)
            .min(max_chars.unwrap_or(usize::MAX));
        let mut s = String::with_capacity(len);
        let mut digits = vec![b'a'; width];
        let mut r = rank;
        for d in digits.iter_mut().rev() {
            *d = b'a' + (r % 26) as u8;
            r /= 26;
        }
        s.push_str(std::str::from_utf8(&digits).unwrap_or("a"));
        let filler = b"etaoinshrdlu";
        let mut i = rank as usize;
        while s.len() < len {
            s.push(filler[i % filler.len()] as char);
            i = i.wrapping_mul(31).wrapping_add(7);
        }
        s.truncate(len);
        s
    }
}

fn parse(kind: Kind, text: &str) -> Option<Value> {
    Some(match kind {
        Kind::I16 => Value::I16(text.parse().ok()?),
        Kind::I32 => Value::I32(text.parse().ok()?),
        Kind::I64 => Value::I64(text.parse().ok()?),
        Kind::F32 => Value::F32(text.parse().ok()?),
        Kind::F64 => Value::F64(text.parse().ok()?),
        Kind::Numeric(_) => from_f64(kind, text.parse::<f64>().ok()?),
        Kind::Date => Value::Date(generate::micros_to_days(generate::parse_timestamp(text)?)),
        Kind::Timestamp => Value::Timestamp(parse_pg_timestamp(text)?),
        Kind::Text { max_chars } => {
            let mut s = text.to_owned();
            if let Some(m) = max_chars {
                s = s.chars().take(m).collect();
            }
            Value::Text(s)
        }
        Kind::Bool => Value::Bool(match text {
            "t" | "true" => true,
            "f" | "false" => false,
            _ => return None,
        }),
    })
}

/// A timestamp as the capture session prints it (UTC, ISO):
/// `2024-01-01 00:01:00+00`, possibly with fractional seconds.
fn parse_pg_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let bare = text
        .strip_suffix("+00")
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let dt = chrono::NaiveDateTime::parse_from_str(bare, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(bare, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    let epoch = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)?;
    (dt - epoch).num_microseconds()
}

fn as_f64(value: &Value) -> Option<f64> {
    Some(match value {
        Value::I16(v) => f64::from(*v),
        Value::I32(v) => f64::from(*v),
        Value::I64(v) => *v as f64,
        Value::F32(v) => f64::from(*v),
        Value::F64(v) => *v,
        Value::Numeric { mantissa, scale } => *mantissa as f64 / 10f64.powi(i32::from(*scale)),
        Value::Date(d) => f64::from(*d),
        Value::Timestamp(t) => *t as f64,
        _ => return None,
    })
}

fn from_f64(kind: Kind, v: f64) -> Value {
    match kind {
        Kind::I16 => Value::I16(v.round() as i16),
        Kind::I32 => Value::I32(v.round() as i32),
        Kind::I64 => Value::I64(v.round() as i64),
        Kind::F32 => Value::F32(v as f32),
        Kind::F64 => Value::F64(v),
        Kind::Numeric(scale) => Value::Numeric {
            mantissa: (v * 10f64.powi(i32::from(scale))).round() as i128,
            scale,
        },
        Kind::Date => Value::Date(v.round() as i32),
        Kind::Timestamp => Value::Timestamp(v.round() as i64),
        Kind::Text { .. } | Kind::Bool => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_the_capture_prints_them() {
        let base = generate::parse_timestamp("2024-01-01").unwrap();
        assert_eq!(parse_pg_timestamp("2024-01-01 00:00:00+00"), Some(base));
        assert_eq!(
            parse_pg_timestamp("2024-01-01 00:01:00.5+00"),
            Some(base + 60_500_000)
        );
    }
}
