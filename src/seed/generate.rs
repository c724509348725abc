//! Column generators: realistic values picked by type, name and spec.

use chrono::{NaiveDate, NaiveDateTime};
use fake::Fake;
use fake::faker::address::en::{
    BuildingNumber, CityName, CountryCode, CountryName, StateName, StreetName, StreetSuffix,
    TimeZone, ZipCode,
};
use fake::faker::company::en::{CompanySuffix, Industry};
use fake::faker::currency::en::CurrencyCode;
use fake::faker::internet::en::{DomainSuffix, FreeEmailProvider, IPv4, UserAgent, Username};
use fake::faker::lorem::en::{Paragraph, Sentence, Word, Words};
use fake::faker::name::en::{FirstName, LastName};
use fake::faker::phone_number::en::PhoneNumber;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::distribution::{NumSampler, Weighted};
use super::hostile;
use super::value::Value;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Which realistic text to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKind {
    Email,
    FirstName,
    LastName,
    FullName,
    Username,
    Phone,
    Street,
    City,
    State,
    Zip,
    CountryCode,
    Country,
    Company,
    Url,
    Ip,
    UserAgent,
    Word,
    Words,
    Sentence,
    Paragraph,
    Slug,
    Code,
    Currency,
    Hex,
    Timezone,
    Industry,
}

/// Generator names a spec may use for text columns.
pub(crate) const TEXT_GENERATORS: &[(&str, TextKind)] = &[
    ("email", TextKind::Email),
    ("first_name", TextKind::FirstName),
    ("last_name", TextKind::LastName),
    ("name", TextKind::FullName),
    ("username", TextKind::Username),
    ("phone", TextKind::Phone),
    ("street", TextKind::Street),
    ("address", TextKind::Street),
    ("city", TextKind::City),
    ("state", TextKind::State),
    ("zip", TextKind::Zip),
    ("country_code", TextKind::CountryCode),
    ("country", TextKind::Country),
    ("company", TextKind::Company),
    ("url", TextKind::Url),
    ("ip", TextKind::Ip),
    ("user_agent", TextKind::UserAgent),
    ("word", TextKind::Word),
    ("words", TextKind::Words),
    ("sentence", TextKind::Sentence),
    ("paragraph", TextKind::Paragraph),
    ("text", TextKind::Paragraph),
    ("slug", TextKind::Slug),
    ("code", TextKind::Code),
    ("currency", TextKind::Currency),
    ("hex", TextKind::Hex),
    ("timezone", TextKind::Timezone),
    ("industry", TextKind::Industry),
];

/// Picks a text generator from a column (and table) name.
pub(crate) fn text_kind_for(table: &str, column: &str, max_chars: Option<usize>) -> TextKind {
    let c = column.to_lowercase();
    let t = table.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| c.contains(w));
    if has(&["email", "e_mail"]) {
        TextKind::Email
    } else if has(&["first_name", "firstname", "given_name"]) {
        TextKind::FirstName
    } else if has(&["last_name", "lastname", "surname", "family_name"]) {
        TextKind::LastName
    } else if has(&["username", "user_name", "login", "handle", "nickname"]) {
        TextKind::Username
    } else if has(&["phone", "mobile", "fax"]) || c == "tel" {
        TextKind::Phone
    } else if has(&["country_code", "country_iso"])
        || (c == "country" && max_chars.is_some_and(|m| m <= 3))
    {
        TextKind::CountryCode
    } else if c.contains("country") {
        TextKind::Country
    } else if has(&["street", "address", "line1", "line2"]) {
        TextKind::Street
    } else if c.contains("city") || c == "town" {
        TextKind::City
    } else if has(&["state", "province", "region"]) && !c.contains("status") {
        TextKind::State
    } else if has(&["zip", "postal", "postcode"]) {
        TextKind::Zip
    } else if has(&[
        "company",
        "organization",
        "organisation",
        "employer",
        "org_name",
    ]) {
        TextKind::Company
    } else if has(&["url", "website", "homepage", "link", "avatar", "image"]) {
        TextKind::Url
    } else if c == "ip" || has(&["ip_address", "ipaddr", "_ip", "remote_addr"]) {
        TextKind::Ip
    } else if has(&["user_agent", "useragent"]) || c == "ua" {
        TextKind::UserAgent
    } else if c.contains("slug") {
        TextKind::Slug
    } else if has(&["sku", "code", "reference", "ref_no", "number"]) {
        TextKind::Code
    } else if c.contains("currency") {
        TextKind::Currency
    } else if has(&["hash", "token", "secret", "password", "digest", "checksum"]) {
        TextKind::Hex
    } else if has(&["timezone", "time_zone"]) || c == "tz" {
        TextKind::Timezone
    } else if c.contains("industry") {
        TextKind::Industry
    } else if has(&["title", "subject", "headline", "summary"]) {
        TextKind::Sentence
    } else if has(&[
        "description",
        "body",
        "content",
        "comment",
        "note",
        "bio",
        "message",
        "text",
    ]) {
        TextKind::Paragraph
    } else if c == "name" || c.ends_with("_name") || c == "display_name" {
        if has(&["company", "tenant", "org", "account", "team", "workspace"])
            || [
                "tenants",
                "organizations",
                "organisations",
                "companies",
                "accounts",
                "teams",
                "workspaces",
            ]
            .contains(&t.as_str())
        {
            TextKind::Company
        } else if [
            "products",
            "items",
            "categories",
            "tags",
            "plans",
            "projects",
        ]
        .contains(&t.as_str())
        {
            TextKind::Words
        } else {
            TextKind::FullName
        }
    } else {
        TextKind::Words
    }
}

fn fake_text(kind: TextKind, rng: &mut ChaCha8Rng) -> String {
    match kind {
        TextKind::Email => {
            // Built from borrowed pieces into one allocation: this is the
            // hottest generator in most schemas.
            let first: &str = FirstName().fake_with_rng(rng);
            let last: &str = LastName().fake_with_rng(rng);
            let domain: &str = FreeEmailProvider().fake_with_rng(rng);
            let mut s = String::with_capacity(first.len() + last.len() + domain.len() + 8);
            push_local_part(&mut s, first);
            s.push('.');
            push_local_part(&mut s, last);
            s.push('@');
            s.push_str(domain);
            s
        }
        TextKind::FirstName => FirstName().fake_with_rng(rng),
        TextKind::LastName => LastName().fake_with_rng(rng),
        TextKind::FullName => {
            let first: &str = FirstName().fake_with_rng(rng);
            let last: &str = LastName().fake_with_rng(rng);
            let mut s = String::with_capacity(first.len() + last.len() + 1);
            s.push_str(first);
            s.push(' ');
            s.push_str(last);
            s
        }
        TextKind::Username => Username().fake_with_rng(rng),
        TextKind::Phone => PhoneNumber().fake_with_rng(rng),
        TextKind::Street => {
            let number: String = BuildingNumber().fake_with_rng(rng);
            let street: String = StreetName().fake_with_rng(rng);
            let suffix: String = StreetSuffix().fake_with_rng(rng);
            format!("{number} {street} {suffix}")
        }
        TextKind::City => CityName().fake_with_rng(rng),
        TextKind::State => StateName().fake_with_rng(rng),
        TextKind::Zip => ZipCode().fake_with_rng(rng),
        TextKind::CountryCode => CountryCode().fake_with_rng(rng),
        TextKind::Country => CountryName().fake_with_rng(rng),
        TextKind::Company => {
            let a: &str = LastName().fake_with_rng(rng);
            let mut s = String::with_capacity(40);
            s.push_str(a);
            match rng.random_range(0..3) {
                0 => {
                    let suffix: &str = CompanySuffix().fake_with_rng(rng);
                    s.push(' ');
                    s.push_str(suffix);
                }
                1 => {
                    let b: &str = LastName().fake_with_rng(rng);
                    s.push('-');
                    s.push_str(b);
                }
                _ => {
                    let b: &str = LastName().fake_with_rng(rng);
                    let c: &str = LastName().fake_with_rng(rng);
                    s.push_str(", ");
                    s.push_str(b);
                    s.push_str(" and ");
                    s.push_str(c);
                }
            }
            s
        }
        TextKind::Url => {
            let word: String = Word().fake_with_rng(rng);
            let suffix: String = DomainSuffix().fake_with_rng(rng);
            let path: String = Word().fake_with_rng(rng);
            format!("https://www.{word}.{suffix}/{path}")
        }
        TextKind::Ip => IPv4().fake_with_rng(rng),
        TextKind::UserAgent => UserAgent().fake_with_rng(rng),
        TextKind::Word => Word().fake_with_rng(rng),
        TextKind::Words => {
            let words: Vec<String> = Words(1..4).fake_with_rng(rng);
            words.join(" ")
        }
        TextKind::Sentence => Sentence(3..10).fake_with_rng(rng),
        TextKind::Paragraph => Paragraph(1..4).fake_with_rng(rng),
        TextKind::Slug => {
            let words: Vec<String> = Words(2..5).fake_with_rng(rng);
            words.join("-").to_lowercase()
        }
        TextKind::Code => {
            const ALNUM: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
            (0..8)
                .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
                .collect()
        }
        TextKind::Currency => CurrencyCode().fake_with_rng(rng),
        TextKind::Hex => {
            let bytes: [u8; 16] = rng.random();
            hex::encode(bytes)
        }
        TextKind::Timezone => TimeZone().fake_with_rng(rng),
        TextKind::Industry => Industry().fake_with_rng(rng),
    }
}

/// Appends a name as an email local part: lowercase ASCII letters only.
fn push_local_part(out: &mut String, name: &str) {
    out.extend(
        name.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase()),
    );
}

/// Integer widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntWidth {
    I16,
    I32,
    I64,
}

impl IntWidth {
    pub(crate) fn range(self) -> (i64, i64) {
        match self {
            IntWidth::I16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
            IntWidth::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
            IntWidth::I64 => (i64::MIN, i64::MAX),
        }
    }

    fn value(self, v: i64) -> Value {
        match self {
            IntWidth::I16 => Value::I16(v as i16),
            IntWidth::I32 => Value::I32(v as i32),
            IntWidth::I64 => Value::I64(v),
        }
    }
}

/// How one column's values are made.
#[derive(Debug, Clone)]
pub(crate) enum Gen {
    Null,
    /// `start + row`: primary keys, serials, other unique integers.
    Sequence {
        width: IntWidth,
        start: i64,
    },
    Int {
        width: IntWidth,
        lo: i64,
        hi: i64,
        sampler: NumSampler,
    },
    Float {
        double: bool,
        lo: f64,
        hi: f64,
        sampler: NumSampler,
    },
    /// Mantissa bounds at `scale`.
    Numeric {
        scale: u16,
        lo: i128,
        hi: i128,
        sampler: NumSampler,
        unique: bool,
    },
    Bool {
        p_true: f64,
    },
    Choice {
        values: Vec<Value>,
        weights: Weighted,
    },
    Text {
        kind: TextKind,
        min_chars: usize,
        max_chars: Option<usize>,
        target: Option<(usize, usize)>,
        unique: bool,
        pad_to: Option<usize>,
    },
    Uuid,
    Date {
        from: i32,
        to: i32,
        unique: bool,
    },
    Timestamp {
        from: i64,
        to: i64,
        unique: bool,
    },
    Time,
    Interval,
    Json,
    Bytea,
    Inet,
    Array {
        inner: Box<Gen>,
        max_len: usize,
    },
    /// Shaped after captured production statistics (`super::stats`).
    Shaped(Box<super::stats::Shaped>),
    /// Filled from the parent key picked for the row.
    ForeignKey {
        group: usize,
        component: usize,
    },
}

/// Text for a date in `YYYY-MM-DD` or a timestamp, as micros since 2000.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let dt = if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)?
    } else if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(text) {
        dt.naive_utc()
    } else {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
            .ok()?
    };
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)?.and_hms_opt(0, 0, 0)?;
    (dt - epoch).num_microseconds()
}

/// Days since 2000-01-01 for a timestamp in micros since 2000.
pub(crate) fn micros_to_days(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Default time window of generated dates: 2019-01-01 .. 2025-12-31.
pub(crate) fn default_window() -> (i64, i64) {
    (
        parse_timestamp("2019-01-01").unwrap_or(0),
        parse_timestamp("2025-12-31").unwrap_or(MICROS_PER_DAY),
    )
}

impl Gen {
    /// A normal value for row `row`.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng, row: u64) -> Value {
        match self {
            Gen::Null | Gen::ForeignKey { .. } => Value::Null,
            Gen::Shaped(shaped) => shaped.sample(rng, row),
            Gen::Sequence { width, start } => width.value(start.saturating_add(row as i64)),
            Gen::Int {
                width,
                lo,
                hi,
                sampler,
            } => width.value((sampler.sample(rng).round() as i64).clamp(*lo, *hi)),
            Gen::Float {
                double,
                lo,
                hi,
                sampler,
            } => {
                let v = sampler.sample(rng).clamp(*lo, *hi);
                if *double {
                    Value::F64(v)
                } else {
                    Value::F32(v as f32)
                }
            }
            Gen::Numeric {
                scale,
                lo,
                hi,
                sampler,
                unique,
            } => {
                let mantissa = if *unique {
                    lo.saturating_add(i128::from(row) * 10i128.pow(u32::from(*scale)))
                } else {
                    let x = sampler.sample(rng) * 10f64.powi(i32::from(*scale));
                    (x.round() as i128).clamp(*lo, *hi)
                };
                Value::Numeric {
                    mantissa,
                    scale: *scale,
                }
            }
            Gen::Bool { p_true } => Value::Bool(rng.random_bool(*p_true)),
            Gen::Choice { values, weights } => values[weights.sample(rng)].clone(),
            Gen::Text {
                kind,
                min_chars,
                max_chars,
                target,
                unique,
                pad_to,
            } => {
                let mut s = match target {
                    Some((lo, hi)) => {
                        let want = rng.random_range(*lo..=*hi);
                        let mut s = fake_text(*kind, rng);
                        while s.chars().count() < want {
                            let word: String = Word().fake_with_rng(rng);
                            s.push(' ');
                            s.push_str(&word);
                        }
                        hostile::fit_chars(&mut s, 0, Some(want));
                        s
                    }
                    None => fake_text(*kind, rng),
                };
                if *unique {
                    make_unique(&mut s, *kind, row, *max_chars);
                }
                hostile::fit_chars(&mut s, *min_chars, *max_chars);
                if let Some(n) = pad_to {
                    hostile::fit_chars(&mut s, 0, Some(*n));
                }
                Value::Text(s)
            }
            Gen::Uuid => {
                let mut bytes: [u8; 16] = rng.random();
                // Version 4, RFC 4122 variant.
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                Value::Uuid(bytes)
            }
            Gen::Date { from, to, unique } => {
                if *unique {
                    Value::Date(from.saturating_add(row as i32))
                } else {
                    Value::Date(rng.random_range(*from..=(*to).max(*from)))
                }
            }
            Gen::Timestamp { from, to, unique } => {
                if *unique {
                    Value::Timestamp(from.saturating_add(row as i64 * 1_000_000))
                } else {
                    Value::Timestamp(rng.random_range(*from..=(*to).max(*from)))
                }
            }
            Gen::Time => Value::Time(rng.random_range(0..MICROS_PER_DAY)),
            Gen::Interval => Value::Interval {
                micros: rng.random_range(0..MICROS_PER_DAY),
                days: rng.random_range(0..30),
                months: 0,
            },
            Gen::Json => Value::Json(json_document(rng)),
            Gen::Bytea => {
                let len = rng.random_range(8..64);
                Value::Bytes((0..len).map(|_| rng.random()).collect())
            }
            Gen::Inet => Value::Inet([
                rng.random_range(1..224),
                rng.random(),
                rng.random(),
                rng.random_range(1..255),
            ]),
            Gen::Array { inner, max_len } => {
                let len = rng.random_range(0..=*max_len);
                Value::Array((0..len).map(|_| inner.sample(rng, row)).collect())
            }
        }
    }

    /// A hostile value of this generator's type, or `None` when the normal
    /// value must stand (keys, sequences, fixed choices).
    pub(crate) fn hostile(&self, rng: &mut ChaCha8Rng) -> Option<Value> {
        Some(match self {
            Gen::Int { width, lo, hi, .. } => width.value(hostile::integer(rng, *lo, *hi)),
            Gen::Float { double, lo, hi, .. } => {
                let v = hostile::float(rng, *lo, *hi);
                if *double {
                    Value::F64(v)
                } else {
                    Value::F32(v as f32)
                }
            }
            Gen::Numeric {
                scale,
                lo,
                hi,
                unique: false,
                ..
            } => {
                let picks = [*lo, *hi, 0, 1, -1];
                let within: Vec<i128> = picks.into_iter().filter(|v| v >= lo && v <= hi).collect();
                Value::Numeric {
                    mantissa: if within.is_empty() {
                        *lo
                    } else {
                        within[rng.random_range(0..within.len())]
                    },
                    scale: *scale,
                }
            }
            Gen::Text {
                min_chars,
                max_chars,
                unique: false,
                pad_to: None,
                ..
            } => Value::Text(hostile::text(rng, *min_chars, *max_chars)),
            Gen::Date {
                from,
                to,
                unique: false,
            } => Value::Date(if rng.random_bool(0.5) { *from } else { *to }),
            Gen::Timestamp {
                from,
                to,
                unique: false,
            } => Value::Timestamp(if rng.random_bool(0.5) { *from } else { *to }),
            Gen::Json => Value::Json(hostile::json(rng)),
            Gen::Array { .. } => Value::Array(Vec::new()),
            Gen::Bytea => Value::Bytes(Vec::new()),
            _ => return None,
        })
    }

    /// Whether values of this generator are unique by construction.
    pub(crate) fn is_unique(&self) -> bool {
        matches!(
            self,
            Gen::Sequence { .. }
                | Gen::Uuid
                | Gen::Numeric { unique: true, .. }
                | Gen::Text { unique: true, .. }
                | Gen::Date { unique: true, .. }
                | Gen::Timestamp { unique: true, .. }
        )
    }
}

/// Makes a text value unique by weaving in the row number, keeping it
/// plausible (`jane.doe.17@example.com`) and within `max_chars`.
fn make_unique(s: &mut String, kind: TextKind, row: u64, max_chars: Option<usize>) {
    let tag = row.to_string();
    let budget = max_chars.map(|m| m.saturating_sub(tag.len() + 1));
    if kind == TextKind::Email
        && let Some((local, domain)) = s.split_once('@')
    {
        let mut local = local.to_owned();
        let domain = domain.to_owned();
        if let Some(b) = budget {
            hostile::fit_chars(
                &mut local,
                0,
                Some(b.saturating_sub(domain.chars().count() + 1)),
            );
        }
        *s = format!("{local}.{tag}@{domain}");
        return;
    }
    if let Some(b) = budget {
        hostile::fit_chars(s, 0, Some(b));
    }
    s.push('-');
    s.push_str(&tag);
}

/// A realistic event-ish JSON object.
fn json_document(rng: &mut ChaCha8Rng) -> String {
    let action: String = Word().fake_with_rng(rng);
    let ip: String = IPv4().fake_with_rng(rng);
    let agent: String = UserAgent().fake_with_rng(rng);
    let tags: Vec<String> = Words(0..4).fake_with_rng(rng);
    serde_json::json!({
        "action": action,
        "ip": ip,
        "user_agent": agent,
        "tags": tags,
        "count": rng.random_range(0..1000),
        "ok": rng.random_bool(0.9),
        "meta": { "version": rng.random_range(1..5), "source": if rng.random_bool(0.5) { "web" } else { "api" } },
    })
    .to_string()
}

/// Moves a value forward by a random amount up to `span` units (micros for
/// timestamps, days for dates, units for numbers): for `a <= b` orderings.
pub(crate) fn after(base: &Value, rng: &mut ChaCha8Rng, strict: bool) -> Option<Value> {
    // Half the rows were never touched again: the greater value equals the
    // lesser one (unless strict).
    let moved = strict || rng.random_bool(0.5);
    let min = i64::from(strict);
    Some(match base {
        Value::Timestamp(t) => {
            let d = if moved {
                rng.random_range(min..=60 * MICROS_PER_DAY)
            } else {
                0
            };
            Value::Timestamp(t.saturating_add(d))
        }
        Value::Date(d) => Value::Date(d.saturating_add(if moved {
            rng.random_range(min as i32..=60)
        } else {
            0
        })),
        Value::I16(v) => Value::I16(v.saturating_add(if moved {
            rng.random_range(min as i16..=100)
        } else {
            0
        })),
        Value::I32(v) => Value::I32(v.saturating_add(if moved {
            rng.random_range(min as i32..=100)
        } else {
            0
        })),
        Value::I64(v) => Value::I64(v.saturating_add(if moved {
            rng.random_range(min..=100)
        } else {
            0
        })),
        Value::Numeric { mantissa, scale } => Value::Numeric {
            mantissa: mantissa.saturating_add(if moved {
                rng.random_range(i128::from(min)..=10_000)
            } else {
                0
            }),
            scale: *scale,
        },
        Value::F64(v) => Value::F64(
            v + if moved {
                rng.random_range(0.001..100.0)
            } else {
                0.0
            },
        ),
        Value::F32(v) => Value::F32(
            v + if moved {
                rng.random_range(0.001f32..100.0)
            } else {
                0.0
            },
        ),
        _ => return None,
    })
}

/// Whether `a <= b` (or `<` when strict) for comparable values.
pub(crate) fn ordered(a: &Value, b: &Value, strict: bool) -> bool {
    let cmp = match (a, b) {
        (Value::Timestamp(x), Value::Timestamp(y)) | (Value::I64(x), Value::I64(y)) => x.cmp(y),
        (Value::Date(x), Value::Date(y)) | (Value::I32(x), Value::I32(y)) => x.cmp(y),
        (Value::I16(x), Value::I16(y)) => x.cmp(y),
        (Value::Numeric { mantissa: x, .. }, Value::Numeric { mantissa: y, .. }) => x.cmp(y),
        (Value::F64(x), Value::F64(y)) => x.total_cmp(y),
        (Value::F32(x), Value::F32(y)) => x.total_cmp(y),
        _ => return true,
    };
    if strict { cmp.is_lt() } else { cmp.is_le() }
}
