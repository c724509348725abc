//! The JSON report. Its shape is documented by `docs/report.schema.json`
//! (JSON Schema 2020-12), versioned by [`super::SCHEMA_VERSION`].

use std::io;

use super::RunReport;
use super::redact::scrub_json;

/// Writes the report as pretty JSON, with every string scrubbed of passwords.
pub fn write_json(report: &RunReport, out: &mut impl io::Write) -> io::Result<()> {
    let mut value = serde_json::to_value(report)?;
    scrub_json(&mut value);
    serde_json::to_writer_pretty(&mut *out, &value)?;
    writeln!(out)
}
