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

/// The JSON report written scenario by scenario as a run goes: the same
/// document as [`write_json`] (keys in another order: `duration_ms`, known
/// last, comes last), but each scenario is on disk as soon as it is done
/// and need not be kept for the report.
pub struct JsonStream<W: io::Write> {
    out: W,
    scenarios: usize,
}

impl<W: io::Write> JsonStream<W> {
    /// Writes everything before the scenarios.
    pub fn begin(
        mut out: W,
        schema_version: u32,
        tool_version: &str,
        run_id: &str,
        started_at: &str,
    ) -> io::Result<Self> {
        let field = |value: &str| -> io::Result<String> {
            let mut value = serde_json::Value::from(value);
            scrub_json(&mut value);
            Ok(serde_json::to_string(&value)?)
        };
        write!(
            out,
            "{{\n  \"schema_version\": {schema_version},\n  \"tool_version\": {},\n  \
             \"run_id\": {},\n  \"started_at\": {},\n  \"scenarios\": [",
            field(tool_version)?,
            field(run_id)?,
            field(started_at)?
        )?;
        Ok(JsonStream { out, scenarios: 0 })
    }

    /// Appends one scenario (scrubbed like the whole report) and flushes.
    pub fn scenario(&mut self, scenario: &super::ScenarioReport) -> io::Result<()> {
        let mut value = serde_json::to_value(scenario)?;
        scrub_json(&mut value);
        let text = serde_json::to_string_pretty(&value)?;
        let separator = if self.scenarios == 0 { "" } else { "," };
        writeln!(self.out, "{separator}")?;
        // String values carry no raw newlines (JSON escapes them), so
        // indenting every line nests the object without changing it.
        for (i, line) in text.lines().enumerate() {
            if i > 0 {
                writeln!(self.out)?;
            }
            write!(self.out, "    {line}")?;
        }
        self.scenarios += 1;
        self.out.flush()
    }

    /// Closes the document.
    pub fn finish(mut self, duration_ms: u64) -> io::Result<W> {
        let close = if self.scenarios == 0 { "]" } else { "\n  ]" };
        write!(self.out, "{close},\n  \"duration_ms\": {duration_ms}\n}}\n")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunReport, ScenarioReport};

    fn report(scenarios: usize) -> RunReport {
        RunReport {
            schema_version: super::super::SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            run_id: "abc".into(),
            started_at: "2026-11-30T00:00:00.000Z".into(),
            duration_ms: 42,
            scenarios: (0..scenarios)
                .map(|i| {
                    let mut scenario = ScenarioReport::new(
                        &format!("s{i}"),
                        std::path::Path::new("postgres://u:secret@h/db"),
                    );
                    scenario.error = Some("line\n\"two\"".into());
                    scenario
                })
                .collect(),
        }
    }

    #[test]
    fn the_stream_writes_the_document_write_json_writes() {
        for count in [0, 1, 3] {
            let report = report(count);
            let mut whole = Vec::new();
            write_json(&report, &mut whole).unwrap();
            let mut stream = JsonStream::begin(
                Vec::new(),
                report.schema_version,
                &report.tool_version,
                &report.run_id,
                &report.started_at,
            )
            .unwrap();
            for scenario in &report.scenarios {
                stream.scenario(scenario).unwrap();
            }
            let streamed = stream.finish(report.duration_ms).unwrap();
            let text = String::from_utf8(streamed).unwrap();
            assert!(!text.contains("secret"), "{text}");
            let a: serde_json::Value = serde_json::from_slice(&whole).unwrap();
            let b: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(a, b, "{text}");
        }
    }
}
