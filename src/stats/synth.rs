//! Synthetic stand-ins for text sample values.
//!
//! `pg_stats` holds real values: the most common ones and the histogram
//! bounds. For text-like columns these can be e-mail addresses or names, so
//! by default the capture replaces them. A stand-in keeps what matters to a
//! migration's cost and to the seeder: its length in characters (the
//! column's width distribution) and, for histogram bounds, the order. The
//! i-th of n values becomes a fixed-width base-26 rank in lowercase ASCII
//! letters, padded with `x` to the original length: lowercase ASCII letters
//! sort the same under the C collation and the common ICU/glibc ones.
//! Values shorter than the rank width are cut, so their order may tie.

/// Types whose values are kept by default: numbers, dates and times,
/// booleans, enum labels (already in the schema). `pg_type.typcategory`
/// letters (PostgreSQL manual, "pg_type", Table 53.65).
pub const KEPT_CATEGORIES: &[&str] = &["N", "D", "T", "B", "E"];
/// String types: replaced by stand-ins.
pub const STRING_CATEGORY: &str = "S";

/// Stand-ins for `values`, keeping each one's length and the list's order.
#[must_use]
pub fn stand_ins(values: &[String], first_letter: Option<char>) -> Vec<String> {
    let width = rank_width(values.len());
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let len = v.chars().count();
            let mut s = String::with_capacity(len);
            if let Some(c) = first_letter {
                s.push(c);
            }
            s.push_str(&base26(i, width));
            let mut s: String = s.chars().take(len).collect();
            while s.chars().count() < len {
                s.push('x');
            }
            s
        })
        .collect()
}

/// Letters needed to write ranks `0..n` in base 26.
fn rank_width(n: usize) -> usize {
    let mut width = 1;
    let mut cap = 26usize;
    while cap < n {
        width += 1;
        cap = cap.saturating_mul(26);
    }
    width
}

fn base26(mut i: usize, width: usize) -> String {
    let mut out = vec![b'a'; width];
    for slot in out.iter_mut().rev() {
        *slot = b'a' + (i % 26) as u8;
        i /= 26;
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_keep_length_and_order() {
        let values: Vec<String> = (0..200)
            .map(|i| format!("person{i:04}@example.com"))
            .collect();
        let out = stand_ins(&values, None);
        for (a, b) in values.iter().zip(&out) {
            assert_eq!(a.chars().count(), b.chars().count());
            assert!(!b.contains("example"), "{b}");
        }
        assert!(out.windows(2).all(|w| w[0] < w[1]), "order kept");
    }

    #[test]
    fn multibyte_values_keep_their_character_count() {
        let out = stand_ins(&["Zoë".to_owned(), "Ærøskøbing".to_owned()], Some('m'));
        assert_eq!(out[0].chars().count(), 3);
        assert_eq!(out[1].chars().count(), 10);
        assert!(out.iter().all(|s| s.is_ascii()));
    }

    #[test]
    fn rank_width_grows_with_count() {
        assert_eq!(rank_width(1), 1);
        assert_eq!(rank_width(26), 1);
        assert_eq!(rank_width(27), 2);
        assert_eq!(rank_width(10_001), 3);
    }
}
