//! Migration directories in the layouts real tools use.
//!
//! Loading is pure file reading and parsing: no database. Each layout's file
//! naming and "no transaction" marker follows the tool's documentation:
//!
//! | layout | files | no-transaction marker |
//! |---|---|---|
//! | sqlx | `<ver>_<desc>.sql`, `<ver>_<desc>.up.sql` / `.down.sql` | first line `-- no-transaction` |
//! | Flyway | `V<ver>__<desc>.sql`, `R__<desc>.sql` | `V..sql.conf` with `executeInTransaction=false` |
//! | golang-migrate | `<ver>_<desc>.up.sql` / `.down.sql` | none: a multi-statement file is one implicit transaction |
//! | diesel | `<ts>_<name>/up.sql`, `down.sql` | `metadata.toml` with `run_in_transaction = false` |
//! | dbmate | `<ver>_<desc>.sql` with `-- migrate:up` / `-- migrate:down` | `-- migrate:up transaction:false` |
//! | refinery | `V<n>__<name>.sql` | `-- refinery:noTransaction` |

mod layout;
mod split;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use layout::Layout;

/// Errors of loading a migration directory. Messages are lowercase and name
/// the file (and line) at fault.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("{path}:{line}: unterminated {what}")]
    Unterminated {
        path: PathBuf,
        line: usize,
        what: &'static str,
    },
    #[error("duplicate migration version {version}: {first} and {second}")]
    DuplicateVersion {
        version: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "mixed migration layouts in {dir}: {first} looks like {first_layout}, {second} like {second_layout}"
    )]
    MixedLayouts {
        dir: PathBuf,
        first: PathBuf,
        first_layout: Layout,
        second: PathBuf,
        second_layout: Layout,
    },
    #[error("no migrations found in {dir} (layout {layout})")]
    Empty { dir: PathBuf, layout: Layout },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("baseline version {version} is not a migration in this directory")]
    UnknownBaseline { version: String },
    #[error("{path}:{line}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One SQL statement of a migration and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub sql: String,
    pub line: usize,
}

/// Whether a migration has a version (applied once) or is re-applied
/// whenever its content changes (Flyway `R__` scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationKind {
    Versioned,
    Repeatable,
}

/// The reverse script of a migration, when the layout has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownScript {
    pub path: PathBuf,
    pub statements: Vec<Statement>,
    pub transactional: bool,
}

/// One migration, as the tool that owns the directory would see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The version as written in the file name (`0001`, `1.2`, `20240101120000`).
    /// For a repeatable migration, its description.
    pub version: String,
    pub description: String,
    pub kind: MigrationKind,
    pub path: PathBuf,
    pub statements: Vec<Statement>,
    /// `false` when the tool would run the statements outside a transaction.
    pub transactional: bool,
    pub down: Option<DownScript>,
}

impl Migration {
    /// The location of statement `index` (0-based) for messages: `file:line`.
    #[must_use]
    pub fn location(&self, index: usize) -> String {
        let line = self.statements.get(index).map_or(1, |s| s.line);
        format!("{}:{line}", self.path.display())
    }

    /// Numeric version for bookkeeping tables with integer versions (sqlx,
    /// golang-migrate): digits only, leading zeros dropped, `None` if it
    /// does not fit.
    #[must_use]
    pub fn numeric_version(&self) -> Option<i64> {
        let digits: String = self.version.chars().filter(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
}

/// The migrations of one directory, in the order the tool applies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationSet {
    pub layout: Layout,
    pub migrations: Vec<Migration>,
}

/// `.sql` files in `dir` whose names fit no migration layout, which
/// [`MigrationSet::load`] skips.
#[must_use]
pub fn unmatched_files(dir: &Path) -> Vec<PathBuf> {
    layout::unmatched(dir)
}

impl MigrationSet {
    /// Reads `dir` in the given layout; [`Layout::Auto`] detects it from the
    /// file names (and, to tell dbmate from sqlx, the `-- migrate:up` marker).
    pub fn load(dir: &Path, layout: Layout) -> Result<MigrationSet, MigrateError> {
        let layout = match layout {
            Layout::Auto => layout::detect(dir)?,
            other => other,
        };
        let mut migrations = layout::load(dir, layout)?;
        if migrations.is_empty() {
            return Err(MigrateError::Empty {
                dir: dir.to_path_buf(),
                layout,
            });
        }
        migrations.sort_by(compare_migrations);
        for pair in migrations.windows(2) {
            if pair[0].kind == MigrationKind::Versioned
                && pair[1].kind == MigrationKind::Versioned
                && compare_versions(&pair[0].version, &pair[1].version) == Ordering::Equal
            {
                return Err(MigrateError::DuplicateVersion {
                    version: pair[1].version.clone(),
                    first: pair[0].path.clone(),
                    second: pair[1].path.clone(),
                });
            }
        }
        Ok(MigrationSet { layout, migrations })
    }

    /// Splits into (already in production, pending). `baseline` is the last
    /// version production has; `None` means everything is pending.
    /// Repeatable migrations count as applied at the baseline, as Flyway
    /// re-runs them only when their checksum changes.
    pub fn split_at(
        &self,
        baseline: Option<&str>,
    ) -> Result<(Vec<Migration>, Vec<Migration>), MigrateError> {
        let Some(baseline) = baseline else {
            return Ok((Vec::new(), self.migrations.clone()));
        };
        let found = self.migrations.iter().any(|m| {
            m.kind == MigrationKind::Versioned
                && compare_versions(&m.version, baseline) == Ordering::Equal
        });
        if !found {
            return Err(MigrateError::UnknownBaseline {
                version: baseline.to_string(),
            });
        }
        let (applied, pending) = self.migrations.iter().cloned().partition(|m| {
            m.kind == MigrationKind::Repeatable
                || compare_versions(&m.version, baseline) != Ordering::Greater
        });
        Ok((applied, pending))
    }
}

fn compare_migrations(a: &Migration, b: &Migration) -> Ordering {
    match (a.kind, b.kind) {
        (MigrationKind::Versioned, MigrationKind::Versioned) => {
            compare_versions(&a.version, &b.version)
        }
        // Flyway applies repeatable migrations after all versioned ones, in
        // the order of their descriptions.
        (MigrationKind::Repeatable, MigrationKind::Repeatable) => a.description.cmp(&b.description),
        (MigrationKind::Versioned, MigrationKind::Repeatable) => Ordering::Less,
        (MigrationKind::Repeatable, MigrationKind::Versioned) => Ordering::Greater,
    }
}

/// Compares versions numerically part by part: `1.10 > 1.9`, `0002 == 2`.
/// Flyway writes `1_1` for `1.1`; both separators count.
#[must_use]
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> Vec<u128> {
        v.split(['.', '_'])
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u128>().unwrap_or(u128::MAX))
            .collect()
    }
    let (pa, pb) = (parts(a), parts(b));
    let len = pa.len().max(pb.len());
    for i in 0..len {
        let x = pa.get(i).copied().unwrap_or(0);
        let y = pb.get(i).copied().unwrap_or(0);
        match x.cmp(&y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// Splits `text` from `path`, turning lexer errors into file:line errors.
fn split_file(path: &Path, text: &str, first_line: usize) -> Result<Vec<Statement>, MigrateError> {
    split::split_statements(text, first_line).map_err(|e| match e {
        split::SplitError::Unterminated { what, line } => MigrateError::Unterminated {
            path: path.to_path_buf(),
            line,
            what,
        },
    })
}

fn read(path: &Path) -> Result<String, MigrateError> {
    let text = std::fs::read_to_string(path).map_err(|e| MigrateError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // Postgres cannot take a NUL byte in query text (the protocol's strings
    // are NUL-terminated): refuse it here, with its line, rather than at
    // run time without one.
    if let Some(at) = text.find('\0') {
        return Err(MigrateError::At {
            path: path.to_path_buf(),
            line: text[..at].matches('\n').count() + 1,
            message: "a NUL byte, which PostgreSQL cannot take in a statement".into(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("0002", "2"), Ordering::Equal);
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("1_1", "1.1"), Ordering::Equal);
        assert_eq!(compare_versions("20240101", "20231231"), Ordering::Greater);
    }
}
