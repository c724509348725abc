//! `data-drift`: the touched tables' contents (row count, checksum of the
//! sorted rows) differ from a serial run, other than by extra rows (that is
//! `duplicate-data`): e.g. an UPDATE backfill applied twice, or rows lost.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::timeline::RaceRecord;

/// Functions whose value differs between two runs of the same statement
/// (manual, "Current Date/Time", "UUID Functions", "Mathematical
/// Functions": volatile). A column filled from one of them is different
/// in the race and in the serial run by nature, whatever its type.
const VOLATILE: [&str; 9] = [
    "gen_random_uuid(",
    "uuid_generate_v4(",
    "random(",
    "clock_timestamp(",
    "now(",
    "current_timestamp",
    "statement_timestamp(",
    "transaction_timestamp(",
    "timeofday(",
];

/// The columns of `table` whose default is volatile, in the raced schema.
fn volatile_columns<'a>(record: &'a RaceRecord, table: &str) -> Vec<&'a str> {
    record
        .schema
        .tables
        .get(table)
        .map(|t| {
            t.columns
                .iter()
                .filter(|c| {
                    c.default.as_deref().is_some_and(|d| {
                        let d = d.to_ascii_lowercase();
                        VOLATILE.iter().any(|f| d.contains(f))
                    })
                })
                .map(|c| c.name.as_str())
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn check(record: &RaceRecord) -> Vec<Finding> {
    let Some(reference) = &record.reference else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raced in &record.data {
        let Some(serial) = reference.data.iter().find(|d| d.table == raced.table) else {
            continue;
        };
        if raced.rows > serial.rows && serial.rows >= 0 {
            continue;
        }
        // A volatile default makes the checksums differ between any two
        // runs: the rows are then compared by count only.
        let volatile = volatile_columns(record, &raced.table);
        let checksums_differ = raced.checksum != serial.checksum && volatile.is_empty();
        if raced.rows != serial.rows || checksums_differ {
            out.push(Finding::new(
                CheckId::DataDrift,
                Severity::Error,
                format!(
                    "the data of {} differs from a serial run ({} rows vs {}, checksums {})",
                    raced.table,
                    raced.rows,
                    serial.rows,
                    if raced.checksum == serial.checksum {
                        "equal"
                    } else {
                        "differ"
                    }
                ),
                json!({ "table": raced.table, "rows": raced.rows, "serial_rows": serial.rows,
                        "checksum": raced.checksum, "serial_checksum": serial.checksum }),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::timeline::{ReferenceRun, TableData};

    fn data(rows: i64, sum: &str) -> Vec<TableData> {
        vec![TableData {
            table: "public.plans".into(),
            rows,
            checksum: Some(sum.into()),
        }]
    }

    #[test]
    fn bad_same_count_other_content() {
        let mut r = record(vec![]);
        r.data = data(3, "aaa");
        r.reference = Some(ReferenceRun {
            data: data(3, "bbb"),
            ..Default::default()
        });
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("checksums differ"));
    }

    #[test]
    fn good_a_volatile_default_is_compared_by_row_count() {
        let mut r = record(vec![]);
        let mut table = crate::timeline::Table::default();
        table.columns.push(crate::timeline::Column {
            name: "token".into(),
            data_type: "text".into(),
            not_null: false,
            default: Some("(gen_random_uuid())::text".into()),
        });
        r.schema.tables.insert("public.plans".into(), table);
        r.data = data(3, "aaa");
        r.reference = Some(ReferenceRun {
            data: data(3, "bbb"),
            ..Default::default()
        });
        assert!(check(&r).is_empty());
        r.data = data(2, "aaa");
        assert_eq!(check(&r).len(), 1, "rows lost still count");
    }

    #[test]
    fn good_identical_or_left_to_duplicate_data() {
        let mut r = record(vec![]);
        r.data = data(3, "aaa");
        r.reference = Some(ReferenceRun {
            data: data(3, "aaa"),
            ..Default::default()
        });
        assert!(check(&r).is_empty());
        r.data = data(6, "ccc");
        assert!(
            check(&r).is_empty(),
            "extra rows are duplicate-data's finding"
        );
    }
}
