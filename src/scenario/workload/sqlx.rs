//! Importing sqlx's offline query files (`.sqlx/query-<hash>.json`, written
//! by `cargo sqlx prepare`) as workload queries that run live.
//!
//! Each parameter gets a source from two facts: the column the SQL compares
//! it with or writes it to (see `infer.rs`), and the type sqlx recorded for
//! it in `describe.parameters`. Lookups sample the column's real values, so
//! they find rows; written values are generated from the type, so an INSERT
//! does not replay an existing primary key (23505 every time). When the
//! clients start, the catalog refines writes: a foreign key column takes
//! values of the column it references, a `varchar(n)` gets at most `n`
//! characters (see `WorkloadRun::prepare`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

use super::infer::sites;
use super::{ParamHint, ParamSource, ParamUse, Query, is_write, max_placeholder};

/// The fields sqlx writes into `.sqlx/query-<hash>.json` that we use.
#[derive(Debug, Deserialize)]
struct SqlxQueryFile {
    query: String,
    #[serde(default)]
    describe: Option<Describe>,
}

#[derive(Debug, Deserialize)]
struct Describe {
    /// `{"Left": [<type>, ...]}`: sqlx-core's `Describe::parameters` is an
    /// `Option<Either<Vec<TypeInfo>, usize>>`, `Right` being a bare count
    /// for databases that cannot type parameters.
    #[serde(default)]
    parameters: Option<Json>,
}

/// Count and bounds of the values a `LIMIT` / `OFFSET` parameter gets.
const LIMIT_RANGE: [i64; 2] = [1, 100];
/// Length of generated text: short enough for most `varchar(n)` (the
/// catalog caps it for the rest), long enough not to repeat.
const TEXT_LEN: usize = 8;

/// Imports every `query-*.json` in a sqlx offline folder, in file name
/// order; each query is named `sqlx-<first 12 hex of its hash>`.
///
/// Every parameter gets a source (see the module docs): a query whose
/// parameters all have one runs live with weight 1, like a hand-written
/// query; one with a parameter that has neither a column nor a type
/// rehearse can generate is only prepared (weight 0, the compatibility
/// matrix), with a [`Query::note`] saying which parameter and why.
pub fn import_sqlx(dir: &Path) -> Result<Vec<Query>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("query-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let parsed: SqlxQueryFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("query-");
        let hash = stem.trim_start_matches("query-");
        let name = format!("sqlx-{}", &hash[..hash.len().min(12)]);
        let types = parsed
            .describe
            .and_then(|d| d.parameters)
            .and_then(|p| p.get("Left").and_then(Json::as_array).cloned());
        queries.push(imported(name, parsed.query, types.as_deref()));
    }
    Ok(queries)
}

/// The query `sql` with parameter sources from its syntax and `types`
/// (sqlx's, `None` when the file records none).
pub(crate) fn imported(name: String, sql: String, types: Option<&[Json]>) -> Query {
    let needed = max_placeholder(&sql);
    let mut hints = Vec::with_capacity(needed);
    let mut params = Vec::with_capacity(needed);
    let mut note = None;
    for (i, site) in sites(&sql, needed).into_iter().enumerate() {
        let ty = types.and_then(|t| t.get(i));
        let (mut generated, array_type) = ty.map_or((None, false), generator);
        if site.usage == ParamUse::Limit {
            generated = Some(ParamSource::Int(LIMIT_RANGE));
        }
        let hint = ParamHint {
            column: site.column,
            usage: site.usage,
            sqlx_type: ty.map(type_name),
            generated,
            array: array_type || site.array,
        };
        match hint.initial() {
            Some(source) => params.push(source),
            None => {
                note.get_or_insert_with(|| format!("${}: {}", i + 1, hint.unresolved()));
                params.push(ParamSource::Value(toml::Value::String(String::new())));
            }
        }
        hints.push(hint);
    }
    Query {
        writes: is_write(&sql),
        name,
        weight: u32::from(note.is_none()),
        params,
        statements: vec![sql],
        hints,
        note,
    }
}

/// A generator of values of sqlx's type `ty`, and whether the parameter is
/// an array of them. sqlx-postgres writes built-in types as their `PgType`
/// variant name (`"Int8"`, `"TextArray"`) and user types as
/// `{"Custom": {"name": ..., "kind": ...}}` (`type_info.rs`).
fn generator(ty: &Json) -> (Option<ParamSource>, bool) {
    if let Some(name) = ty.as_str() {
        return match name.strip_suffix("Array") {
            Some(element) => (scalar(element), true),
            None => (scalar(name), false),
        };
    }
    let Some(kind) = ty.get("Custom").and_then(|c| c.get("kind")) else {
        return (None, false);
    };
    if let Some(labels) = kind.get("Enum").and_then(Json::as_array) {
        let first = labels.first().and_then(Json::as_str);
        return (
            first.map(|l| ParamSource::Value(toml::Value::String(l.into()))),
            false,
        );
    }
    if let Some(base) = kind.get("Domain") {
        return generator(base);
    }
    if let Some(element) = kind.get("Array") {
        return (generator(element).0, true);
    }
    (None, false)
}

/// Values of a built-in scalar type, as text literals the server casts.
fn scalar(name: &str) -> Option<ParamSource> {
    let value = |v: &str| Some(ParamSource::Value(toml::Value::String(v.into())));
    match name {
        "Int2" => Some(ParamSource::Int([1, i64::from(i16::MAX)])),
        // Wide enough that generated keys rarely meet existing ones.
        "Int4" | "Int8" => Some(ParamSource::Int([1, i64::from(i32::MAX)])),
        "Text" | "Varchar" | "Bpchar" | "Name" => Some(ParamSource::Text(TEXT_LEN)),
        "Char" => Some(ParamSource::Text(1)),
        "Uuid" => Some(ParamSource::Uuid(true)),
        "Bool" => Some(ParamSource::Value(toml::Value::Boolean(true))),
        "Float4" | "Float8" => value("1.5"),
        "Numeric" => value("1"),
        "Money" => value("1.00"),
        "Date" => value("2024-01-01"),
        "Time" => value("12:00:00"),
        "Timetz" => value("12:00:00+00"),
        "Timestamp" => value("2024-01-01 12:00:00"),
        "Timestamptz" => value("2024-01-01 12:00:00+00"),
        "Interval" => value("1 hour"),
        "Json" | "Jsonb" => value("{}"),
        "Inet" => value("192.0.2.1"),
        "Cidr" => value("192.0.2.0/24"),
        "Macaddr" => value("08:00:2b:01:02:03"),
        // Hex format; literals are sent with standard_conforming_strings.
        "Bytea" => value("\\x00"),
        _ => None,
    }
}

/// sqlx's name for `ty`, for notes.
fn type_name(ty: &Json) -> String {
    ty.as_str()
        .or_else(|| {
            ty.get("Custom")
                .and_then(|c| c.get("name"))
                .and_then(Json::as_str)
        })
        .map_or_else(|| ty.to_string(), str::to_string)
}

impl ParamHint {
    /// The source before the catalog is read: the column's values for a
    /// lookup, a generated value otherwise (a written column's own values
    /// when its type has no generator).
    pub(crate) fn initial(&self) -> Option<ParamSource> {
        match (&self.column, self.usage) {
            (Some(c), ParamUse::Lookup) => Some(ParamSource::From(c.clone())),
            (Some(c), ParamUse::Write) => self
                .generated
                .clone()
                .or_else(|| Some(ParamSource::From(c.clone()))),
            _ => self.generated.clone(),
        }
    }

    /// Why no source fits, for notes.
    pub(crate) fn unresolved(&self) -> String {
        let ty = match &self.sqlx_type {
            Some(ty) => format!("sqlx's type `{ty}` has no generator"),
            None => "sqlx recorded no type for it".into(),
        };
        match (&self.column, self.usage) {
            (Some(c), ParamUse::Write) => {
                format!("`{c}` has no values to reuse (missing, empty or unique) and {ty}")
            }
            (Some(c), _) => format!("`{c}` cannot be sampled and {ty}"),
            (None, _) => format!("no column found for it and {ty}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn import(sql: &str, types: Json) -> Query {
        imported("q".into(), sql.into(), types.as_array().map(Vec::as_slice))
    }

    fn from(c: &str) -> ParamSource {
        ParamSource::From(c.into())
    }

    fn value(v: &str) -> ParamSource {
        ParamSource::Value(toml::Value::String(v.into()))
    }

    #[test]
    fn parameters_get_real_values_for_lookups_and_generated_ones_for_writes() {
        let int = ParamSource::Int([1, i64::from(i32::MAX)]);
        let cases: Vec<(&str, Json, Vec<ParamSource>)> = vec![
            (
                "SELECT * FROM customers c WHERE c.id = $1 AND c.email = $2",
                json!(["Int8", "Text"]),
                vec![from("customers.id"), from("customers.email")],
            ),
            (
                "SELECT * FROM customers WHERE id IN ($1, $2)",
                json!(["Int4", "Int4"]),
                vec![from("customers.id"), from("customers.id")],
            ),
            // Inserted values are generated: no replayed primary keys.
            (
                "INSERT INTO customers (id, email, ref, vip) VALUES ($1, $2, $3, $4)",
                json!(["Int8", "Varchar", "Uuid", "Bool"]),
                vec![
                    int.clone(),
                    ParamSource::Text(TEXT_LEN),
                    ParamSource::Uuid(true),
                    ParamSource::Value(toml::Value::Boolean(true)),
                ],
            ),
            (
                "UPDATE customers SET seen_at = $1, score = $2 WHERE id = $3",
                json!(["Timestamptz", "Numeric", "Int8"]),
                vec![
                    value("2024-01-01 12:00:00+00"),
                    value("1"),
                    from("customers.id"),
                ],
            ),
            // No column: by type; LIMIT counts stay small.
            (
                "SELECT * FROM customers ORDER BY id LIMIT $1 OFFSET $2",
                json!(["Int8", "Int8"]),
                vec![ParamSource::Int(LIMIT_RANGE), ParamSource::Int(LIMIT_RANGE)],
            ),
            (
                "SELECT $1::jsonb, $2::date, $3::int2",
                json!(["Jsonb", "Date", "Int2"]),
                vec![
                    value("{}"),
                    value("2024-01-01"),
                    ParamSource::Int([1, i64::from(i16::MAX)]),
                ],
            ),
            // An enum takes its first label; a domain its base type's values.
            (
                "SELECT $1::mood, $2::email",
                json!([
                    {"Custom": {"name": "mood", "kind": {"Enum": ["happy", "sad"]}}},
                    {"Custom": {"name": "email", "kind": {"Domain": "Text"}}}
                ]),
                vec![value("happy"), ParamSource::Text(TEXT_LEN)],
            ),
            // Written to a column whose type rehearse cannot generate: that
            // column's own values.
            (
                "INSERT INTO shapes (area) VALUES ($1)",
                json!(["Polygon"]),
                vec![from("shapes.area")],
            ),
        ];
        for (sql, types, expected) in cases {
            let q = import(sql, types);
            assert_eq!(q.params, expected, "{sql}");
            assert_eq!((q.weight, &q.note), (1, &None), "{sql}");
        }
    }

    #[test]
    fn arrays_are_marked_and_generated_by_element() {
        let q = import(
            "SELECT * FROM orders WHERE id = ANY($1) AND tags && $2",
            json!(["Int8Array", "TextArray"]),
        );
        assert_eq!(
            q.params,
            vec![from("orders.id"), ParamSource::Text(TEXT_LEN)]
        );
        assert!(q.hints.iter().all(|h| h.array));
    }

    #[test]
    fn a_parameter_without_column_or_generator_keeps_the_query_prepared_only() {
        let q = import(
            "SELECT * FROM places WHERE id = $1 AND area && $2",
            json!(["Int8", "Box"]),
        );
        assert_eq!(q.weight, 0);
        assert_eq!(
            q.note.as_deref(),
            Some("$2: no column found for it and sqlx's type `Box` has no generator")
        );
        // No types recorded at all: lookups still run on real values.
        let q = import("SELECT * FROM places WHERE id = $1", json!(null));
        assert_eq!((q.weight, q.params), (1, vec![from("places.id")]));
        let q = import("SELECT pg_sleep($1)", json!(null));
        assert_eq!(q.weight, 0);
        assert!(q.note.unwrap().contains("sqlx recorded no type"), "no type");
    }
}
