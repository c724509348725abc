//! The CI recipes under ci/ parse as YAML, and every `rehearse ...` command
//! they run parses with the real command line (so a renamed flag or
//! subcommand breaks this test, not a user's pipeline). Scripts and benches
//! they name exist.

use clap::Parser;
use pg_rehearse::cli::Cli;

fn recipes() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from("ci")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every shell snippet: GitHub `run:` and GitLab `script` lists.
fn snippets(value: &serde_norway::Value, out: &mut Vec<String>) {
    match value {
        serde_norway::Value::Mapping(map) => {
            for (key, value) in map {
                let key = key.as_str().unwrap_or_default();
                match (key, value) {
                    (
                        "run" | "script" | "before_script" | "after_script",
                        serde_norway::Value::String(s),
                    ) => {
                        out.push(s.clone());
                    }
                    (
                        "script" | "before_script" | "after_script",
                        serde_norway::Value::Sequence(items),
                    ) => {
                        out.extend(items.iter().filter_map(|i| i.as_str().map(str::to_string)));
                    }
                    _ => snippets(value, out),
                }
            }
        }
        serde_norway::Value::Sequence(items) => items.iter().for_each(|i| snippets(i, out)),
        _ => {}
    }
}

/// Replaces `${{ expr }}` and `${VAR}` with `1`, so a partition reads `1/1`.
fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let close = if rest[start..].starts_with("${{") {
            "}}"
        } else {
            "}"
        };
        let end = rest[start..]
            .find(close)
            .map_or(rest.len(), |e| start + e + close.len());
        out.push('1');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The `rehearse` invocations of a snippet, as argument vectors.
fn rehearse_commands(snippet: &str) -> Vec<Vec<String>> {
    let joined = substitute(&snippet.replace("\\\n", " "));
    joined
        .lines()
        .flat_map(|line| line.split(['|', ';', '&']))
        .map(|command| {
            command
                .split_whitespace()
                .take_while(|t| !t.starts_with('>'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|words| words.first().is_some_and(|w| w == "rehearse"))
        .collect()
}

#[test]
fn every_recipe_parses_and_its_rehearse_commands_exist() {
    let files = recipes();
    assert!(
        files.len() >= 3,
        "expected the GitHub and GitLab recipes, found {files:?}"
    );
    let cargo_toml = std::fs::read_to_string("Cargo.toml").unwrap();
    let mut commands = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut found = Vec::new();
        snippets(&yaml, &mut found);
        assert!(!found.is_empty(), "{}: no run/script steps", file.display());
        for snippet in &found {
            for args in rehearse_commands(snippet) {
                commands += 1;
                if let Err(e) = Cli::try_parse_from(&args) {
                    panic!(
                        "{}: `{}` does not parse:\n{e}",
                        file.display(),
                        args.join(" ")
                    );
                }
            }
            for word in snippet.split_whitespace() {
                if word.starts_with("ci/") && word.ends_with(".sh") {
                    assert!(
                        std::path::Path::new(word).is_file(),
                        "{}: {word} is missing",
                        file.display()
                    );
                }
            }
            if let Some(rest) = snippet.split("--bench ").nth(1) {
                let bench = rest.split_whitespace().next().unwrap();
                assert!(
                    cargo_toml.contains(&format!("name = \"{bench}\"")),
                    "{}: no bench named {bench}",
                    file.display()
                );
            }
        }
    }
    assert!(
        commands >= 5,
        "only {commands} rehearse commands found in {files:?}"
    );
}

/// The name `rehearse` on crates.io belongs to an unrelated crate: every
/// recipe installs this project's package (`pg-rehearse`, the name in
/// Cargo.toml) from its repository at a pinned tag, never a bare name.
#[test]
fn recipes_install_this_package_from_its_repository_at_a_pinned_tag() {
    let cargo_toml = std::fs::read_to_string("Cargo.toml").unwrap();
    assert!(
        cargo_toml.contains("name = \"pg-rehearse\""),
        "the package is pg-rehearse"
    );
    let mut installs = 0;
    for file in recipes() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| l.contains("cargo install")) {
            let line = line
                .trim_start()
                .trim_start_matches("- ")
                .trim_start_matches("run: ");
            if line.starts_with('#') {
                continue;
            }
            installs += 1;
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                words.contains(&"--git") && words.contains(&"--tag"),
                "{}: `{line}` must install from the repository at a pinned tag",
                file.display()
            );
            assert_eq!(
                words.last(),
                Some(&"pg-rehearse"),
                "{}: `{line}` must name the pg-rehearse package",
                file.display()
            );
        }
    }
    assert!(installs >= 3, "only {installs} install steps found");
}

#[test]
fn the_command_extraction_sees_through_continuations_and_pipes() {
    let commands = rehearse_commands(
        "rehearse run a \\\n  --partition ${{ matrix.shard }}/2 > out.txt && rehearse gc | tee x",
    );
    assert_eq!(
        commands,
        vec![
            vec!["rehearse", "run", "a", "--partition", "1/2"],
            vec!["rehearse", "gc"]
        ]
    );
}

/// `check-jsonschema` (PyPI), which bundles GitHub's workflow schema and
/// GitLab's CI schema: the recipes validate against what the platforms
/// publish, offline. `.ci/run` installs it; elsewhere a missing validator
/// is a loud skip.
fn check_jsonschema() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("REHEARSE_CHECK_JSONSCHEMA") {
        return Some(path.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("check-jsonschema"))
        .find(|path| path.is_file())
}

#[test]
fn recipes_validate_against_the_platforms_published_schemas() {
    let Some(validator) = check_jsonschema() else {
        pg_rehearse::testing::skip::<()>(
            "check-jsonschema (pip install check-jsonschema)",
            &"it is not on PATH and REHEARSE_CHECK_JSONSCHEMA is not set",
        );
        return;
    };
    let recipes = recipes();
    let github: Vec<_> = recipes
        .iter()
        .filter(|p| p.starts_with("ci/github"))
        .collect();
    let gitlab: Vec<_> = recipes
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "gitlab-ci.yml"))
        .collect();
    assert!(!github.is_empty() && !gitlab.is_empty(), "{recipes:?}");
    for (schema, files) in [
        ("vendor.github-workflows", github),
        ("vendor.gitlab-ci", gitlab),
    ] {
        let out = std::process::Command::new(&validator)
            .arg("--builtin-schema")
            .arg(schema)
            .args(&files)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{files:?} do not validate against {schema}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
