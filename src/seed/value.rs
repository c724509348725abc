//! Generated values and their binary COPY encoding.
//!
//! Values are encoded by hand rather than through the `ToSql` impls of Rust
//! types because those refuse enums, domains and `numeric`, and checking the
//! type for every value costs time on a million-row load. The generator
//! already knows the column type, so `accepts` is always true here.

use std::error::Error;

use bytes::{BufMut, Bytes, BytesMut};
use postgres_protocol::types as wire;
use tokio_postgres::types::{IsNull, Kind, ToSql, Type, to_sql_checked};

/// One generated value, already in the shape of its column type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    /// `mantissa * 10^-scale`.
    Numeric {
        mantissa: i128,
        scale: u16,
    },
    /// text, varchar, char, name, citext, enum labels.
    Text(String),
    Json(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    /// Days since 2000-01-01.
    Date(i32),
    /// Microseconds since 2000-01-01 00:00 (UTC for timestamptz).
    Timestamp(i64),
    /// Microseconds since midnight.
    Time(i64),
    Interval {
        micros: i64,
        days: i32,
        months: i32,
    },
    Inet([u8; 4]),
    Array(Vec<Value>),
    /// A value read back from the server in binary form (a parent key), passed
    /// through unchanged.
    Raw(Bytes),
}

impl Value {
    /// The text of a text-like value.
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Json(s) => Some(s),
            _ => None,
        }
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match self {
            Value::Null => return Ok(IsNull::Yes),
            Value::Bool(v) => wire::bool_to_sql(*v, out),
            Value::I16(v) => wire::int2_to_sql(*v, out),
            Value::I32(v) => wire::int4_to_sql(*v, out),
            Value::I64(v) => wire::int8_to_sql(*v, out),
            Value::F32(v) => wire::float4_to_sql(*v, out),
            Value::F64(v) => wire::float8_to_sql(*v, out),
            Value::Numeric { mantissa, scale } => numeric_to_sql(*mantissa, *scale, out),
            Value::Text(v) => wire::text_to_sql(v, out),
            Value::Json(v) => {
                if is_type(ty, &Type::JSONB) {
                    // jsonb's binary format is a version byte and the text.
                    out.put_u8(1);
                }
                out.put_slice(v.as_bytes());
            }
            Value::Bytes(v) => wire::bytea_to_sql(v, out),
            Value::Uuid(v) => wire::uuid_to_sql(*v, out),
            Value::Date(v) => wire::date_to_sql(*v, out),
            Value::Timestamp(v) => wire::timestamp_to_sql(*v, out),
            Value::Time(v) => wire::time_to_sql(*v, out),
            Value::Interval {
                micros,
                days,
                months,
            } => {
                out.put_i64(*micros);
                out.put_i32(*days);
                out.put_i32(*months);
            }
            Value::Inet(addr) => {
                // family AF_INET (2 in Postgres' own numbering), mask bits,
                // is_cidr, address length, address.
                out.put_slice(&[2, 32, 0, 4]);
                out.put_slice(addr);
            }
            Value::Array(items) => {
                let member = element_type(ty);
                wire::array_to_sql(
                    Some(wire::ArrayDimension {
                        len: i32::try_from(items.len())?,
                        lower_bound: 1,
                    }),
                    member.oid(),
                    items.iter(),
                    |item, buf| match item.to_sql(&member, buf)? {
                        IsNull::No => Ok(postgres_protocol::IsNull::No),
                        IsNull::Yes => Ok(postgres_protocol::IsNull::Yes),
                    },
                    out,
                )?;
            }
            Value::Raw(bytes) => out.put_slice(bytes),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Whether `ty` is `target` or a domain over it.
fn is_type(ty: &Type, target: &Type) -> bool {
    match ty.kind() {
        Kind::Domain(base) => is_type(base, target),
        _ => ty == target,
    }
}

/// The element type of an array type, looking through domains.
fn element_type(ty: &Type) -> Type {
    match ty.kind() {
        Kind::Array(member) => member.clone(),
        Kind::Domain(base) => element_type(base),
        _ => Type::TEXT,
    }
}

/// Postgres' binary numeric: base-10000 digits with a weight, sign and
/// display scale.
fn numeric_to_sql(mantissa: i128, scale: u16, out: &mut BytesMut) {
    let negative = mantissa < 0;
    let mut magnitude = mantissa.unsigned_abs();
    // Pad the fractional part to a multiple of 4 decimal digits so digit
    // groups line up with the decimal point.
    let pad = (4 - scale % 4) % 4;
    magnitude *= 10u128.pow(u32::from(pad));
    let frac_groups = i32::from(scale.div_ceil(4));
    let mut groups = Vec::new();
    while magnitude > 0 {
        groups.push((magnitude % 10_000) as i16);
        magnitude /= 10_000;
    }
    // groups is least significant first; the group at index frac_groups is
    // the units group (weight 0).
    let mut weight = i32::try_from(groups.len()).unwrap_or(0) - 1 - frac_groups;
    // Trailing zero groups carry no information.
    let mut low = 0;
    while low < groups.len() && groups[low] == 0 {
        low += 1;
    }
    let digits: Vec<i16> = groups[low..].iter().rev().copied().collect();
    if digits.is_empty() {
        weight = 0;
    }
    out.put_i16(i16::try_from(digits.len()).unwrap_or(0));
    out.put_i16(i16::try_from(weight).unwrap_or(0));
    out.put_u16(if negative && !digits.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(scale);
    for digit in digits {
        out.put_i16(digit);
    }
}
