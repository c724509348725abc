//! Finding scenarios under a path given on the command line.

use std::path::{Path, PathBuf};

use super::ScenarioError;

/// Scenario files under `path`, sorted: the file itself; a folder's
/// `scenario.toml`; otherwise every `*.toml` file and scenario folder below.
pub fn discover(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let io = |e: std::io::Error| ScenarioError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    collect(path, &mut found).map_err(io)?;
    if found.is_empty() {
        return Err(ScenarioError::Empty {
            path: path.to_path_buf(),
        });
    }
    found.sort();
    Ok(found)
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let own = dir.join("scenario.toml");
    if own.is_file() {
        // A scenario folder: its other files (workloads, seeds) are not
        // scenarios of their own.
        found.push(own);
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
    Ok(())
}
