//! `--report json=PATH,...`: which reports to write where.

use std::path::PathBuf;

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
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

/// Parses `json=out/report.json[,FORMAT=PATH...]`.
pub fn parse_targets(text: &str) -> Result<ReportTargets, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (format, path) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected FORMAT=PATH, e.g. json=report.json"))?;
            let format = match format.trim() {
                "json" => ReportFormat::Json,
                other => return Err(format!("`{other}`: unknown report format (known: json)")),
            };
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
        assert!(parse_targets("json=").unwrap_err().contains("empty"));
    }
}
