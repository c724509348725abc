//! The JSON report.

use std::io;

use super::RunReport;

/// Writes the report as pretty JSON.
pub fn write_json(report: &RunReport, out: &mut impl io::Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}
