//! `schema-drift`: the final schema after the race differs from a serial
//! run of the same migrations on an identical clone. The diff is pure data:
//! tables, columns (type, nullability, default), constraints (and whether
//! validated), indexes (and validity), triggers, enums, sequences.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::timeline::{RaceRecord, SchemaSnapshot};

/// Differences of `a` (after the race) against `b` (serial reference), one
/// line each, sorted.
#[must_use]
pub fn diff_schema(a: &SchemaSnapshot, b: &SchemaSnapshot) -> Vec<String> {
    let mut out = Vec::new();
    diff_maps(
        &mut out,
        "table",
        &a.tables,
        &b.tables,
        |out, name, x, y| {
            let cols = |t: &crate::timeline::Table| {
                t.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            diff_maps(
                out,
                &format!("column of {name}"),
                &cols(x),
                &cols(y),
                |out, col, p, q| {
                    if p.data_type != q.data_type {
                        out.push(format!(
                            "column {name}.{col}: type {} vs {}",
                            p.data_type, q.data_type
                        ));
                    }
                    if p.not_null != q.not_null {
                        out.push(format!(
                            "column {name}.{col}: not null {} vs {}",
                            p.not_null, q.not_null
                        ));
                    }
                    if p.default != q.default {
                        out.push(format!(
                            "column {name}.{col}: default {:?} vs {:?}",
                            p.default, q.default
                        ));
                    }
                },
            );
            let cons = |t: &crate::timeline::Table| {
                t.constraints
                    .iter()
                    .map(|c| (c.name.clone(), (c.definition.clone(), c.validated)))
                    .collect::<BTreeMap<_, _>>()
            };
            diff_values(out, &format!("constraint of {name}"), &cons(x), &cons(y));
            let idx = |t: &crate::timeline::Table| {
                t.indexes
                    .iter()
                    .map(|i| (i.name.clone(), (i.definition.clone(), i.valid)))
                    .collect::<BTreeMap<_, _>>()
            };
            diff_values(out, &format!("index of {name}"), &idx(x), &idx(y));
            let trg = |t: &crate::timeline::Table| {
                t.triggers
                    .iter()
                    .map(|g| (g.name.clone(), g.definition.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            diff_values(out, &format!("trigger of {name}"), &trg(x), &trg(y));
        },
    );
    diff_values(&mut out, "enum", &a.enums, &b.enums);
    diff_values(&mut out, "sequence", &a.sequences, &b.sequences);
    out.sort();
    out
}

fn diff_maps<V>(
    out: &mut Vec<String>,
    what: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    mut both: impl FnMut(&mut Vec<String>, &str, &V, &V),
) {
    for (k, x) in a {
        match b.get(k) {
            Some(y) => both(out, k, x, y),
            None => out.push(format!("{what} {k}: only after the race")),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        out.push(format!("{what} {k}: only in the serial run"));
    }
}

fn diff_values<V: PartialEq + Debug>(
    out: &mut Vec<String>,
    what: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
) {
    diff_maps(out, what, a, b, |out, k, x, y| {
        if x != y {
            out.push(format!("{what} {k}: {x:?} vs {y:?}"));
        }
    });
}

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let Some(reference) = &record.reference else {
        return Vec::new();
    };
    let diff = diff_schema(&record.schema, &reference.schema);
    if diff.is_empty() {
        return Vec::new();
    }
    vec![Finding::new(
        CheckId::SchemaDrift,
        Severity::Error,
        format!(
            "the schema after the race differs from a serial run in {} place(s): {}",
            diff.len(),
            diff[0]
        ),
        json!({ "differences": diff }),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{Column, Index, ReferenceRun, Table};

    fn schema(not_null: bool, valid: bool) -> SchemaSnapshot {
        let mut s = SchemaSnapshot::default();
        s.tables.insert(
            "public.users".into(),
            Table {
                columns: vec![Column {
                    name: "email".into(),
                    data_type: "text".into(),
                    not_null,
                    default: None,
                }],
                indexes: vec![Index {
                    name: "users_email".into(),
                    definition: "CREATE INDEX ...".into(),
                    valid,
                }],
                ..Default::default()
            },
        );
        s
    }

    #[test]
    fn bad_nullability_and_validity_differ() {
        let mut r = record(vec![]);
        r.schema = schema(false, false);
        r.reference = Some(ReferenceRun {
            schema: schema(true, true),
            ..Default::default()
        });
        let f = check(&r);
        assert_eq!(f.len(), 1);
        let diff = f[0].details["differences"].as_array().unwrap();
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(
            diff.iter()
                .any(|d| d.as_str().unwrap().contains("not null false vs true"))
        );
    }

    #[test]
    fn missing_and_extra_tables_are_named() {
        let a = schema(true, true);
        let d = diff_schema(&a, &SchemaSnapshot::default());
        assert_eq!(d, ["table public.users: only after the race"]);
        let d = diff_schema(&SchemaSnapshot::default(), &a);
        assert_eq!(d, ["table public.users: only in the serial run"]);
    }

    #[test]
    fn good_identical() {
        let mut r = record(vec![]);
        r.schema = schema(true, true);
        r.reference = Some(ReferenceRun {
            schema: schema(true, true),
            ..Default::default()
        });
        assert!(check(&r).is_empty());
    }
}
