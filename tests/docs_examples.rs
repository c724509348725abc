//! The examples in docs/scenario-format.md are real: every ```toml block
//! parses. A complete scenario (it has `name =`) is parsed as it stands; a
//! section alone gets a minimal `name` and `[migrations]` in front; a block
//! whose first line is `# workload file` goes to the workload parser. Files
//! a scenario names (migrations dir, seeds spec, workloads) are stubbed in a
//! temporary folder, so the parser's own checks run. The links into the
//! format's headings, from the README and from the file itself, resolve.

use std::path::{Path, PathBuf};

use pg_rehearse::findings::CheckId;
use pg_rehearse::scenario::Scenario;
use pg_rehearse::workload::Workload;

const DOC: &str = "docs/scenario-format.md";

fn doc() -> String {
    std::fs::read_to_string(DOC).unwrap()
}

/// The ```toml blocks of `text`, with the line each starts on.
fn toml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_start() == "```toml" => open = Some((i + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "{DOC}: a ```toml block is never closed");
    blocks
}

/// A minimal workload file that parses.
const STUB_WORKLOAD: &str = "[[query]]\nname = \"q\"\nsql = \"SELECT 1\"\n";

/// Creates what the scenario text names, under `root` (never outside it).
fn stub_files(text: &str, scenario_dir: &Path, root: &Path) {
    let value: toml::Table = text.parse().unwrap();
    let inside = |relative: &str| -> PathBuf {
        let path = scenario_dir.join(relative);
        let normal: PathBuf = path.components().fold(PathBuf::new(), |mut p, c| {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                other => p.push(other),
            }
            p
        });
        assert!(
            normal.starts_with(root),
            "{relative} leaves the test folder"
        );
        normal
    };
    if let Some(dir) = value
        .get("migrations")
        .and_then(|m| m.get("dir"))
        .and_then(|d| d.as_str())
    {
        std::fs::create_dir_all(inside(dir)).unwrap();
    }
    if let Some(spec) = value
        .get("seed")
        .and_then(|s| s.get("spec"))
        .and_then(|s| s.as_str())
    {
        let path = inside(spec);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }
    if let Some(workloads) = value.get("workloads").and_then(|w| w.as_table()) {
        for file in workloads.values().filter_map(|f| f.as_str()) {
            let path = inside(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, STUB_WORKLOAD).unwrap();
        }
    }
}

#[test]
fn every_toml_example_in_the_scenario_format_parses() {
    let text = doc();
    let blocks = toml_blocks(&text);
    assert!(blocks.len() >= 8, "only {} toml blocks found", blocks.len());
    let (mut scenarios, mut fragments, mut workloads) = (0, 0, 0);
    for (line, block) in &blocks {
        let at = format!("{DOC}:{line}");
        let root = tempfile::tempdir().unwrap();
        // Two levels down, so `../../seeds/x.toml` stays inside.
        let dir = root.path().join("scenarios/example");
        std::fs::create_dir_all(&dir).unwrap();
        if block.starts_with("# workload file") {
            let path = dir.join("workload.toml");
            Workload::parse("old", block, &path)
                .unwrap_or_else(|e| panic!("{at}: the workload example does not parse: {e}"));
            workloads += 1;
            continue;
        }
        let complete = block.lines().any(|l| l.starts_with("name ="));
        let scenario = if complete {
            scenarios += 1;
            block.clone()
        } else {
            fragments += 1;
            assert!(
                block.trim_start().starts_with('['),
                "{at}: a fragment must start with its section header"
            );
            let header = if block.contains("[migrations]") {
                "name = \"doc example\"\n".to_string()
            } else {
                "name = \"doc example\"\n[migrations]\ndir = \"migrations\"\n".to_string()
            };
            let mut text = header + block;
            // A rollout runs along workloads, and workloads along a rollout.
            if text.contains("[rollout]") && !text.contains("[workloads]") {
                text.push_str(
                    "[workloads]\nold = \"workloads/old.toml\"\nnew = \"workloads/new.toml\"\n",
                );
            }
            text
        };
        stub_files(&scenario, &dir, root.path());
        let file = dir.join("scenario.toml");
        if let Err(e) = Scenario::parse(&scenario, &file) {
            panic!("{at}: the example does not parse: {e}\n{scenario}");
        }
    }
    // The examples the format promises: a race, a real tool, a rollout, a
    // lock budget (complete), sections, and a workload file.
    assert!(scenarios >= 4, "{scenarios} complete scenarios");
    assert!(fragments >= 3, "{fragments} fragments");
    assert!(workloads >= 1, "{workloads} workload files");
}

/// Slugs of a Markdown file's headings, as GitHub makes them.
fn anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn links_into_the_scenario_format_resolve() {
    let text = doc();
    let known = anchors(&text);
    let readme = std::fs::read_to_string("README.md").unwrap();
    let mut links: Vec<String> = Vec::new();
    for (source, prefix) in [(&readme, "docs/scenario-format.md#"), (&text, "(#")] {
        for (i, _) in source.match_indices(prefix) {
            let rest = &source[i + prefix.len()..];
            let end = rest.find(')').unwrap();
            links.push(rest[..end].to_string());
        }
    }
    assert!(links.len() > 10, "{links:?}");
    for link in links {
        assert!(known.contains(&link), "no heading for #{link}: {known:?}");
    }
}

#[test]
fn every_check_id_is_documented() {
    let text = doc();
    for check in CheckId::ALL {
        assert!(
            text.contains(&format!("| `{}` |", check.id())),
            "{DOC} has no row for `{check}`"
        );
    }
}
