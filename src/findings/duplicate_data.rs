//! `duplicate-data`: a table the pending migrations insert into has more
//! rows after the race than after a serial run of the same migrations on an
//! identical clone: a data migration ran more than once.

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
        if serial.rows >= 0 && raced.rows > serial.rows {
            out.push(Finding::new(
                CheckId::DuplicateData,
                Severity::Error,
                format!(
                    "{} has {} rows after the race but {} after a serial run: a data migration inserted rows more than once",
                    raced.table, raced.rows, serial.rows
                ),
                json!({ "table": raced.table, "rows": raced.rows, "serial_rows": serial.rows }),
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

    fn data(rows: i64) -> Vec<TableData> {
        vec![TableData {
            table: "public.plans".into(),
            rows,
            checksum: Some(format!("{rows}")),
        }]
    }

    #[test]
    fn bad_more_rows_than_the_serial_run() {
        let mut r = record(vec![]);
        r.data = data(8);
        r.reference = Some(ReferenceRun {
            data: data(1),
            ..Default::default()
        });
        let f = check(&r);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].message.contains("8 rows after the race but 1"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn good_same_rows_or_no_reference() {
        let mut r = record(vec![]);
        r.data = data(1);
        assert!(check(&r).is_empty());
        r.reference = Some(ReferenceRun {
            data: data(1),
            ..Default::default()
        });
        assert!(check(&r).is_empty());
    }
}
