//! Hostile values: what production data really contains and empty test
//! databases never do. Boundaries, quotes, unicode, very long strings.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Share of values replaced by a hostile one in hostile mode.
pub(crate) const HOSTILE_SHARE: f64 = 0.3;
/// Share of NULLs in nullable columns in hostile mode.
pub(crate) const HOSTILE_NULLS: f64 = 0.25;
/// Share of values that repeat the previous row's value in hostile mode.
pub(crate) const HOSTILE_DUPLICATES: f64 = 0.1;
/// Length of "long" strings in unbounded text columns.
const LONG_TEXT: usize = 10_000;

/// Strings that break naive quoting, encodings, trimming and comparisons.
const NASTY_STRINGS: &[&str] = &[
    "",
    " ",
    "'",
    "\"",
    "\\",
    "O'Brien",
    "Robert'); DROP TABLE students;--",
    "\"quoted\" and 'single'",
    "tab\tnew\nline\r\n",
    "Ünïcödé ñ ß ø å",
    "日本語のテキスト",
    "مرحبا بالعالم",
    "emoji 😀🎉👩‍👩‍👧‍👦",
    "zero\u{200B}width",
    "NULL",
    "null",
    "-1",
    "0",
    "   leading and trailing   ",
    "%_ like wildcards %",
    "$1 ? :name",
];

/// A hostile string, cut to `max_chars` and padded to `min_chars`.
pub(crate) fn text(rng: &mut ChaCha8Rng, min_chars: usize, max_chars: Option<usize>) -> String {
    let pick = rng.random_range(0..NASTY_STRINGS.len() + 2);
    let mut s = match pick {
        // The longest string the column takes.
        i if i == NASTY_STRINGS.len() => {
            let n = max_chars.unwrap_or(LONG_TEXT);
            "x".repeat(n)
        }
        i if i == NASTY_STRINGS.len() + 1 => {
            let n = max_chars.unwrap_or(LONG_TEXT);
            "é".repeat(n)
        }
        i => NASTY_STRINGS[i].to_owned(),
    };
    fit_chars(&mut s, min_chars, max_chars);
    s
}

/// Cuts to at most `max` characters and pads with `x` to at least `min`.
pub(crate) fn fit_chars(s: &mut String, min: usize, max: Option<usize>) {
    if let Some(max) = max
        && let Some((cut, _)) = s.char_indices().nth(max)
    {
        s.truncate(cut);
    }
    let len = s.chars().count();
    if len < min {
        s.extend(std::iter::repeat_n('x', min - len));
    }
}

/// A boundary integer within `[lo, hi]`.
pub(crate) fn integer(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    let candidates = [lo, hi, 0, -1, 1, lo.saturating_add(1), hi.saturating_sub(1)];
    let within: Vec<i64> = candidates
        .into_iter()
        .filter(|v| (lo..=hi).contains(v))
        .collect();
    // Contradictory checks leave nothing in range; the load will say so.
    if within.is_empty() {
        lo
    } else {
        within[rng.random_range(0..within.len())]
    }
}

/// A boundary float within `[lo, hi]`.
pub(crate) fn float(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    let candidates = [lo, hi, 0.0, -0.0, f64::EPSILON, -1.0, 1e-300];
    let within: Vec<f64> = candidates
        .into_iter()
        .filter(|v| *v >= lo && *v <= hi)
        .collect();
    if within.is_empty() {
        lo
    } else {
        within[rng.random_range(0..within.len())]
    }
}

/// Hostile JSON documents: empty, scalar, deep, unicode keys, quotes.
pub(crate) fn json(rng: &mut ChaCha8Rng) -> String {
    const DOCS: &[&str] = &[
        "{}",
        "[]",
        "null",
        "\"\"",
        "0",
        r#"{"a":{"b":{"c":{"d":{"e":{"f":{"g":[[[[[]]]]]}}}}}}}"#,
        r#"{"ключ":"значение","emoji":"😀","quote":"it's \"x\"","nul":"\\u0000"}"#,
        r#"{"id":null,"tags":[null,"",0,false],"amount":-1e308}"#,
    ];
    DOCS[rng.random_range(0..DOCS.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hostile_text_respects_length_limits() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..500 {
            let s = text(&mut rng, 2, Some(5));
            let n = s.chars().count();
            assert!((2..=5).contains(&n), "{s:?}");
        }
    }

    #[test]
    fn boundaries_stay_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            assert!((5..=9).contains(&integer(&mut rng, 5, 9)));
        }
    }
}
