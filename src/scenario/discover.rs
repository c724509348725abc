//! Finding scenarios under a path given on the command line.
//!
//! Symbolic links are followed, but each directory is entered once and
//! each file is listed once, keyed by device and inode: a link back to an
//! ancestor (a loop) or a second link to the same scenario adds nothing,
//! as with `find -L`, which reports loops instead of descending forever.
//! The walk is bounded in depth and in entries, so a hostile tree ends with
//! an error naming it instead of exhausting memory.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::ScenarioError;

/// Deeper than any real scenario tree; a deeper walk is refused.
pub const MAX_DEPTH: usize = 32;
/// Directory entries looked at, at most (files and folders together).
pub const MAX_ENTRIES: usize = 100_000;

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
    let mut walk = Walk::default();
    walk.collect(path, &meta, 0)?;
    let mut found = walk.found;
    if found.is_empty() {
        return Err(ScenarioError::Empty {
            path: path.to_path_buf(),
        });
    }
    found.sort();
    Ok(found)
}

#[derive(Default)]
struct Walk {
    found: Vec<PathBuf>,
    /// (device, inode) of every directory entered and file listed.
    seen: HashSet<(u64, u64)>,
    entries: usize,
}

impl Walk {
    fn collect(
        &mut self,
        dir: &Path,
        meta: &std::fs::Metadata,
        depth: usize,
    ) -> Result<(), ScenarioError> {
        let io = |e: std::io::Error| ScenarioError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        };
        if !self.seen.insert((meta.dev(), meta.ino())) {
            // Entered already: a loop or a second link to the same folder.
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(ScenarioError::Io {
                path: dir.to_path_buf(),
                message: format!("folders nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let own = dir.join("scenario.toml");
        if let Ok(own_meta) = std::fs::metadata(&own)
            && own_meta.is_file()
        {
            // A scenario folder: its other files (workloads, seeds) are not
            // scenarios of their own.
            if self.seen.insert((own_meta.dev(), own_meta.ino())) {
                self.found.push(own);
            }
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(ScenarioError::Io {
                    path: dir.to_path_buf(),
                    message: format!("more than {MAX_ENTRIES} entries below the scenario path"),
                });
            }
            entries.push(entry.map_err(io)?.path());
        }
        // Sorted, so which of two links to one file is listed is stable.
        entries.sort();
        for path in entries {
            // Follows links; a dangling link is skipped like a missing file.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                self.collect(&path, &meta, depth + 1)?;
            } else if meta.is_file()
                && path.extension().is_some_and(|e| e == "toml")
                && self.seen.insert((meta.dev(), meta.ino()))
            {
                self.found.push(path);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn loops_and_duplicate_links_add_nothing() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("one.toml"), "").unwrap();
        // A loop back to the root, a loop to itself, and a second name for
        // the same scenario file.
        symlink(root.path(), a.join("up")).unwrap();
        symlink(&a, a.join("self")).unwrap();
        symlink(a.join("one.toml"), root.path().join("again.toml")).unwrap();
        symlink(
            root.path().join("nowhere"),
            root.path().join("dangling.toml"),
        )
        .unwrap();
        let found = discover(root.path()).unwrap();
        assert_eq!(found, vec![a.join("one.toml")]);
    }

    #[test]
    fn deep_trees_are_refused_with_the_path() {
        let root = tempfile::tempdir().unwrap();
        let mut dir = root.path().to_path_buf();
        for _ in 0..=MAX_DEPTH + 1 {
            dir = dir.join("d");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let error = discover(root.path()).unwrap_err().to_string();
        assert!(error.contains("deeper than 32"), "{error}");
    }
}
