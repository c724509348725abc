//! `--report json=PATH,...`: which reports to write where.

use std::path::PathBuf;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `json=PATH`: the whole model, see `docs/report.schema.json`.
    Json,
    /// `junit=PATH`: JUnit XML for CI test tabs.
    Junit,
    /// `md=PATH`: a Markdown pull-request comment.
    Markdown,
    /// `html=PATH`: one self-contained HTML page.
    Html,
}

impl ReportFormat {
    /// Every format, with the name `--report` knows it by.
    pub const ALL: [(ReportFormat, &'static str); 4] = [
        (ReportFormat::Json, "json"),
        (ReportFormat::Junit, "junit"),
        (ReportFormat::Markdown, "md"),
        (ReportFormat::Html, "html"),
    ];

    /// Writes `report` in this format.
    pub fn write(
        self,
        report: &super::RunReport,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<()> {
        match self {
            ReportFormat::Json => super::write_json(report, out),
            ReportFormat::Junit => super::write_junit(report, out),
            ReportFormat::Markdown => super::write_markdown(report, out),
            ReportFormat::Html => super::write_html(report, out),
        }
    }
}

/// One `format=path` item of `--report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTarget {
    pub format: ReportFormat,
    pub path: PathBuf,
}

/// The items of one `--report` value (a newtype, so clap treats it as one
/// value rather than a list of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTargets(pub Vec<ReportTarget>);

/// Parses `json=out/report.json[,FORMAT=PATH...]`; formats are `json`,
/// `junit`, `md` and `html`.
pub fn parse_targets(text: &str) -> Result<ReportTargets, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (format, path) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected FORMAT=PATH, e.g. json=report.json"))?;
            let format = ReportFormat::ALL
                .into_iter()
                .find(|(_, name)| *name == format.trim())
                .map(|(format, _)| format)
                .ok_or_else(|| {
                    format!(
                        "`{}`: unknown report format (known: json, junit, md, html)",
                        format.trim()
                    )
                })?;
            if path.trim().is_empty() {
                return Err(format!("`{item}`: the path is empty"));
            }
            Ok(ReportTarget {
                format,
                path: PathBuf::from(path.trim()),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(ReportTargets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_why() {
        let targets = parse_targets("json=a.json").unwrap();
        assert_eq!(
            targets.0,
            vec![ReportTarget {
                format: ReportFormat::Json,
                path: "a.json".into()
            }]
        );
        assert!(
            parse_targets("xml=a")
                .unwrap_err()
                .contains("unknown report format")
        );
        assert!(parse_targets("a.json").unwrap_err().contains("FORMAT=PATH"));
        let all = parse_targets("json=a,junit=b.xml,md=c.md,html=d.html").unwrap();
        let formats: Vec<_> = all.0.iter().map(|t| t.format).collect();
        assert_eq!(
            formats,
            [
                ReportFormat::Json,
                ReportFormat::Junit,
                ReportFormat::Markdown,
                ReportFormat::Html
            ]
        );
        assert!(parse_targets("json=").unwrap_err().contains("empty"));
    }
}
