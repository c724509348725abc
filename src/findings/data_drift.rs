//! `data-drift`: the touched tables' contents (row count, checksum of the
//! sorted rows) differ from a serial run, other than by extra rows (that is
//! `duplicate-data`): e.g. an UPDATE backfill applied twice, or rows lost.

use serde_json::json;

use super::{CheckId, Finding, Severity};
use crate::timeline::RaceRecord;

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
        if raced.rows != serial.rows || raced.checksum != serial.checksum {
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
