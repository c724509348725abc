//! File naming of each tool's migration directory, detection and loading.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DownScript, MigrateError, Migration, MigrationKind, Statement, read, split_file};

/// The migration directory layout of a tool; `Auto` detects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    #[default]
    Auto,
    Sqlx,
    Flyway,
    GolangMigrate,
    Diesel,
    Dbmate,
    Refinery,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Auto => "auto",
            Layout::Sqlx => "sqlx",
            Layout::Flyway => "flyway",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Diesel => "diesel",
            Layout::Dbmate => "dbmate",
            Layout::Refinery => "refinery",
        })
    }
}

/// What one directory entry looks like, before knowing the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `<ts>_<name>/up.sql` (diesel).
    Folder { version: String, name: String },
    /// `V<ver>__<desc>.sql` (Flyway, refinery), `U<ver>__` undo scripts.
    Prefixed {
        prefix: char,
        version: String,
        desc: String,
    },
    /// `R__<desc>.sql` (Flyway repeatable).
    Repeatable { desc: String },
    /// `<ver>_<desc>.up.sql` / `.down.sql` (sqlx reversible, golang-migrate).
    UpDown {
        version: String,
        desc: String,
        up: bool,
    },
    /// `<ver>_<desc>.sql` (sqlx simple, dbmate).
    Plain { version: String, desc: String },
}

/// Classifies a file or folder name; `None` for files no tool would read
/// (README, `.sql.conf`, hidden files).
fn classify(name: &str, is_dir: bool) -> Option<Shape> {
    if name.starts_with('.') {
        return None;
    }
    if is_dir {
        let (version, rest) = name.split_once('_')?;
        let version: String = version.chars().filter(|c| *c != '-').collect();
        if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        return Some(Shape::Folder {
            version,
            name: rest.to_string(),
        });
    }
    let stem = name.strip_suffix(".sql")?;
    if let Some(desc) = stem.strip_prefix("R__") {
        return Some(Shape::Repeatable {
            desc: desc.to_string(),
        });
    }
    let mut chars = stem.chars();
    if let Some(prefix @ ('V' | 'U')) = chars.next()
        && let Some((version, desc)) = chars.as_str().split_once("__")
        && !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    {
        return Some(Shape::Prefixed {
            prefix,
            version: version.to_string(),
            desc: desc.to_string(),
        });
    }
    let (version, desc) = stem.split_once('_')?;
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if let Some(desc) = desc.strip_suffix(".up") {
        return Some(Shape::UpDown {
            version: version.into(),
            desc: desc.into(),
            up: true,
        });
    }
    if let Some(desc) = desc.strip_suffix(".down") {
        return Some(Shape::UpDown {
            version: version.into(),
            desc: desc.into(),
            up: false,
        });
    }
    Some(Shape::Plain {
        version: version.into(),
        desc: desc.into(),
    })
}

struct Entry {
    path: PathBuf,
    shape: Shape,
}

fn entries(dir: &Path) -> Result<Vec<Entry>, MigrateError> {
    let unreadable = |e: std::io::Error| MigrateError::Unreadable {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = path.is_dir();
        if is_dir && !path.join("up.sql").exists() {
            continue;
        }
        if let Some(shape) = classify(&name, is_dir) {
            out.push(Entry { path, shape });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The layout an entry suggests when nothing else is known.
fn suggested(entry: &Entry) -> Result<Layout, MigrateError> {
    Ok(match &entry.shape {
        Shape::Folder { .. } => Layout::Diesel,
        Shape::Prefixed { .. } | Shape::Repeatable { .. } => Layout::Flyway,
        Shape::UpDown { .. } => {
            // Both sqlx (reversible) and golang-migrate use this naming; only
            // sqlx knows the `-- no-transaction` marker.
            if entry_has_sqlx_marker(entry) {
                Layout::Sqlx
            } else {
                Layout::GolangMigrate
            }
        }
        Shape::Plain { .. } => {
            if read(&entry.path)?
                .lines()
                .any(|l| is_dbmate_section(l, "up"))
            {
                Layout::Dbmate
            } else {
                Layout::Sqlx
            }
        }
    })
}

fn entry_has_sqlx_marker(entry: &Entry) -> bool {
    std::fs::read_to_string(&entry.path).is_ok_and(|t| t.starts_with("-- no-transaction"))
}

/// Whether `shape` belongs in a directory of `layout`.
fn fits(shape: &Shape, layout: Layout) -> bool {
    matches!(
        (layout, shape),
        (Layout::Diesel, Shape::Folder { .. })
            | (
                Layout::Flyway,
                Shape::Prefixed { .. } | Shape::Repeatable { .. }
            )
            | (Layout::Refinery, Shape::Prefixed { .. })
            | (Layout::Sqlx, Shape::Plain { .. } | Shape::UpDown { .. })
            | (Layout::GolangMigrate, Shape::UpDown { .. })
            | (Layout::Dbmate, Shape::Plain { .. })
    )
}

/// `.sql` files directly in `dir` whose names fit no layout: loading skips
/// them, so callers warn (a misnamed migration silently not rehearsed is
/// worse than a warning).
pub(super) fn unmatched(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path.extension().is_some_and(|e| e == "sql")
                && path
                    .file_name()
                    .is_some_and(|name| classify(&name.to_string_lossy(), false).is_none())
        })
        .collect();
    out.sort();
    out
}

/// Detects the layout of `dir` from its entries.
pub(super) fn detect(dir: &Path) -> Result<Layout, MigrateError> {
    let entries = entries(dir)?;
    let Some(first) = entries.first() else {
        return Err(MigrateError::Empty {
            dir: dir.to_path_buf(),
            layout: Layout::Auto,
        });
    };
    let mut layout = suggested(first)?;
    let mut layout_source = first;
    for entry in &entries[1..] {
        if fits(&entry.shape, layout) {
            continue;
        }
        let other = suggested(entry)?;
        // golang-migrate names are valid sqlx names too: upgrade silently.
        if layout == Layout::GolangMigrate && other == Layout::Sqlx {
            layout = Layout::Sqlx;
            layout_source = entry;
            continue;
        }
        return Err(mixed(dir, layout_source, layout, entry, other));
    }
    if layout == Layout::GolangMigrate && entries.iter().any(entry_has_sqlx_marker) {
        layout = Layout::Sqlx;
    }
    Ok(layout)
}

fn mixed(
    dir: &Path,
    first: &Entry,
    first_layout: Layout,
    second: &Entry,
    second_layout: Layout,
) -> MigrateError {
    MigrateError::MixedLayouts {
        dir: dir.to_path_buf(),
        first: first.path.clone(),
        first_layout,
        second: second.path.clone(),
        second_layout,
    }
}

/// Loads every migration of `dir` in `layout` (not `Auto`), unsorted.
pub(super) fn load(dir: &Path, layout: Layout) -> Result<Vec<Migration>, MigrateError> {
    let entries = entries(dir)?;
    if let Some(bad) = entries.iter().find(|e| !fits(&e.shape, layout)) {
        let other = suggested(bad)?;
        let first = entries
            .iter()
            .find(|e| fits(&e.shape, layout))
            .unwrap_or(bad);
        return Err(mixed(dir, first, layout, bad, other));
    }
    // sqlx refuses to mix simple and reversible files (`migrate add` errors),
    // as the two imply different bookkeeping of down scripts.
    if layout == Layout::Sqlx {
        let plain = entries
            .iter()
            .find(|e| matches!(e.shape, Shape::Plain { .. }));
        let updown = entries
            .iter()
            .find(|e| matches!(e.shape, Shape::UpDown { .. }));
        if let (Some(p), Some(u)) = (plain, updown) {
            return Err(mixed(dir, p, Layout::Sqlx, u, Layout::Sqlx));
        }
    }
    let mut out = Vec::new();
    for entry in &entries {
        if let Some(m) = load_entry(entry, &entries, layout)? {
            out.push(m);
        }
    }
    Ok(out)
}

fn human(desc: &str) -> String {
    desc.replace('_', " ")
}

fn load_entry(
    entry: &Entry,
    all: &[Entry],
    layout: Layout,
) -> Result<Option<Migration>, MigrateError> {
    let path = entry.path.clone();
    let m = match (&entry.shape, layout) {
        (Shape::Folder { version, name }, _) => {
            let text = read(&path.join("up.sql"))?;
            let transactional = diesel_runs_in_transaction(&path)?;
            let down_path = path.join("down.sql");
            let down = if down_path.exists() {
                let t = read(&down_path)?;
                Some(DownScript {
                    statements: split_file(&down_path, &t, 1)?,
                    path: down_path,
                    transactional,
                })
            } else {
                None
            };
            Migration {
                version: version.clone(),
                description: human(name),
                kind: MigrationKind::Versioned,
                statements: split_file(&path.join("up.sql"), &text, 1)?,
                path: path.join("up.sql"),
                transactional,
                down,
            }
        }
        (Shape::Prefixed { prefix: 'U', .. }, _) => return Ok(None),
        (Shape::Prefixed { version, desc, .. }, Layout::Refinery) => {
            let text = read(&path)?;
            Migration {
                version: version.clone(),
                description: desc.clone(),
                kind: MigrationKind::Versioned,
                statements: split_file(&path, &text, 1)?,
                transactional: !refinery_no_transaction(&text),
                path,
                down: None,
            }
        }
        (Shape::Prefixed { version, desc, .. }, _) => {
            let text = read(&path)?;
            let undo = all.iter().find(|e| {
                matches!(&e.shape, Shape::Prefixed { prefix: 'U', version: v, .. } if v == version)
            });
            let down = match undo {
                Some(u) => {
                    let t = read(&u.path)?;
                    Some(DownScript {
                        statements: split_file(&u.path, &t, 1)?,
                        transactional: flyway_in_transaction(&u.path)?,
                        path: u.path.clone(),
                    })
                }
                None => None,
            };
            Migration {
                version: version.replace('_', "."),
                description: human(desc),
                kind: MigrationKind::Versioned,
                statements: split_file(&path, &text, 1)?,
                transactional: flyway_in_transaction(&path)?,
                path,
                down,
            }
        }
        (Shape::Repeatable { desc }, _) => {
            let text = read(&path)?;
            Migration {
                version: format!("R__{desc}"),
                description: human(desc),
                kind: MigrationKind::Repeatable,
                statements: split_file(&path, &text, 1)?,
                transactional: flyway_in_transaction(&path)?,
                path,
                down: None,
            }
        }
        (Shape::UpDown { up: false, .. }, _) => return Ok(None),
        (
            Shape::UpDown {
                version,
                desc,
                up: true,
            },
            layout,
        ) => {
            let text = read(&path)?;
            let statements = split_file(&path, &text, 1)?;
            // golang-migrate's postgres driver sends a whole file as one
            // simple-protocol query: PostgreSQL runs several statements of
            // one query in an implicit transaction, a single one alone.
            let transactional = match layout {
                Layout::GolangMigrate => statements.len() > 1,
                _ => !text.starts_with("-- no-transaction"),
            };
            let down_name = path
                .file_name()
                .map(|n| n.to_string_lossy().replace(".up.sql", ".down.sql"));
            let down_path = down_name.map(|n| path.with_file_name(n));
            let down = match down_path.filter(|p| p.exists()) {
                Some(p) => {
                    let t = read(&p)?;
                    let statements = split_file(&p, &t, 1)?;
                    let transactional = match layout {
                        Layout::GolangMigrate => statements.len() > 1,
                        _ => !t.starts_with("-- no-transaction"),
                    };
                    Some(DownScript {
                        statements,
                        path: p,
                        transactional,
                    })
                }
                None => None,
            };
            Migration {
                version: version.clone(),
                description: human(desc),
                kind: MigrationKind::Versioned,
                statements,
                transactional,
                path,
                down,
            }
        }
        (Shape::Plain { version, desc }, Layout::Dbmate) => dbmate(&path, version, desc)?,
        (Shape::Plain { version, desc }, _) => {
            let text = read(&path)?;
            Migration {
                version: version.clone(),
                description: human(desc),
                kind: MigrationKind::Versioned,
                statements: split_file(&path, &text, 1)?,
                // sqlx: "-- no-transaction" must be the very first line.
                transactional: !text.starts_with("-- no-transaction"),
                path,
                down: None,
            }
        }
    };
    Ok(Some(m))
}

/// refinery: the annotation `refinery:noTransaction` at the start of a
/// commented line.
fn refinery_no_transaction(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start()
            .strip_prefix("--")
            .is_some_and(|rest| rest.trim_start().starts_with("refinery:noTransaction"))
    })
}

/// Flyway: a per-script configuration file `<script>.conf` may say
/// `executeInTransaction=false`.
fn flyway_in_transaction(path: &Path) -> Result<bool, MigrateError> {
    let mut conf = path.as_os_str().to_owned();
    conf.push(".conf");
    let conf = PathBuf::from(conf);
    if !conf.exists() {
        return Ok(true);
    }
    let text = read(&conf)?;
    Ok(!text.lines().any(|l| {
        let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
        l.eq_ignore_ascii_case("executeInTransaction=false")
    }))
}

/// diesel 2: `metadata.toml` beside `up.sql` may set `run_in_transaction = false`.
fn diesel_runs_in_transaction(folder: &Path) -> Result<bool, MigrateError> {
    #[derive(Deserialize)]
    struct Metadata {
        run_in_transaction: Option<bool>,
    }
    let path = folder.join("metadata.toml");
    if !path.exists() {
        return Ok(true);
    }
    let text = read(&path)?;
    let meta: Metadata = toml::from_str(&text).map_err(|e| MigrateError::Malformed {
        path: path.clone(),
        message: e.message().to_lowercase(),
    })?;
    Ok(meta.run_in_transaction.unwrap_or(true))
}

/// `-- migrate:up` / `-- migrate:down` section headers (dbmate).
fn is_dbmate_section(line: &str, which: &str) -> bool {
    line.trim_start()
        .strip_prefix("--")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix("migrate:"))
        .is_some_and(|r| r.split_whitespace().next() == Some(which))
}

/// dbmate: one file, an up and an optional down section; options follow the
/// section header (`-- migrate:up transaction:false`).
fn dbmate(path: &Path, version: &str, desc: &str) -> Result<Migration, MigrateError> {
    let text = read(path)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let up = lines
        .iter()
        .position(|l| is_dbmate_section(l, "up"))
        .ok_or_else(|| MigrateError::Malformed {
            path: path.to_path_buf(),
            message: "dbmate migration has no `-- migrate:up` section".into(),
        })?;
    let down = lines.iter().position(|l| is_dbmate_section(l, "down"));
    let transactional = |header: &str| !header.split_whitespace().any(|w| w == "transaction:false");
    let section = |from: usize, to: usize| -> Result<Vec<Statement>, MigrateError> {
        let body: String = lines[from + 1..to].concat();
        split_file(path, &body, from + 2)
    };
    let up_end = match down {
        Some(d) if d > up => d,
        _ => lines.len(),
    };
    let down_script = match down {
        Some(d) => {
            let end = if up > d { up } else { lines.len() };
            Some(DownScript {
                statements: section(d, end)?,
                path: path.to_path_buf(),
                transactional: transactional(lines[d]),
            })
        }
        None => None,
    };
    Ok(Migration {
        version: version.to_string(),
        description: human(desc),
        kind: MigrationKind::Versioned,
        statements: section(up, up_end)?,
        transactional: transactional(lines[up]),
        path: path.to_path_buf(),
        down: down_script,
    })
}

#[cfg(test)]
mod tests {
    use super::super::MigrationSet;
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        d
    }

    fn versions(set: &MigrationSet) -> Vec<&str> {
        set.migrations.iter().map(|m| m.version.as_str()).collect()
    }

    #[test]
    fn sqlx_simple_with_no_transaction_marker() {
        let d = dir(&[
            (
                "0002_add_index.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            ),
            (
                "0001_create_t.sql",
                "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);",
            ),
            ("README.md", "not a migration"),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Sqlx);
        assert_eq!(versions(&set), ["0001", "0002"]);
        assert!(set.migrations[0].transactional);
        assert!(!set.migrations[1].transactional);
        assert_eq!(set.migrations[1].statements[0].line, 2);
        assert_eq!(set.migrations[0].description, "create t");
        assert_eq!(set.migrations[0].statements.len(), 2);
    }

    #[test]
    fn golang_migrate_up_down_and_implicit_transactions() {
        let d = dir(&[
            (
                "1_a.up.sql",
                "CREATE TABLE a (id int); CREATE TABLE b (id int);",
            ),
            ("1_a.down.sql", "DROP TABLE b; DROP TABLE a;"),
            ("2_b.up.sql", "CREATE INDEX CONCURRENTLY i ON a (id);"),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::GolangMigrate);
        assert_eq!(versions(&set), ["1", "2"]);
        assert!(
            set.migrations[0].transactional,
            "two statements run as one implicit transaction"
        );
        assert!(
            !set.migrations[1].transactional,
            "a lone statement runs outside a transaction"
        );
        assert_eq!(set.migrations[0].down.as_ref().unwrap().statements.len(), 2);
    }

    #[test]
    fn sqlx_reversible_is_detected_by_its_marker() {
        let d = dir(&[
            ("1_a.up.sql", "CREATE TABLE a (id int);"),
            (
                "2_b.up.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON a (id);",
            ),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Sqlx);
        assert!(!set.migrations[1].transactional);
    }

    #[test]
    fn flyway_versioned_repeatable_and_conf() {
        let d = dir(&[
            ("V1__init.sql", "CREATE TABLE a (id int);"),
            ("V1_1__more.sql", "CREATE TABLE b (id int);"),
            ("V2__index.sql", "CREATE INDEX CONCURRENTLY i ON a (id);"),
            ("V2__index.sql.conf", "executeInTransaction = false\n"),
            ("R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1;"),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Flyway);
        assert_eq!(versions(&set), ["1", "1.1", "2", "R__views"]);
        assert!(!set.migrations[2].transactional);
        assert_eq!(set.migrations[3].kind, MigrationKind::Repeatable);
        let (applied, pending) = set.split_at(Some("1.1")).unwrap();
        assert_eq!(applied.len(), 3);
        assert_eq!(
            pending
                .iter()
                .map(|m| m.version.as_str())
                .collect::<Vec<_>>(),
            ["2"]
        );
    }

    #[test]
    fn refinery_marker_when_selected_explicitly() {
        let d = dir(&[
            ("V1__init.sql", "CREATE TABLE a (id int);"),
            (
                "V2__idx.sql",
                "-- refinery:noTransaction\nCREATE INDEX CONCURRENTLY i ON a (id);",
            ),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Refinery).unwrap();
        assert!(set.migrations[0].transactional);
        assert!(!set.migrations[1].transactional);
    }

    #[test]
    fn diesel_folders_and_metadata() {
        let d = dir(&[
            (
                "2024-01-01-000000_create_users/up.sql",
                "CREATE TABLE users (id int);",
            ),
            (
                "2024-01-01-000000_create_users/down.sql",
                "DROP TABLE users;",
            ),
            (
                "2024-02-01-000000_idx/up.sql",
                "CREATE INDEX CONCURRENTLY i ON users (id);",
            ),
            (
                "2024-02-01-000000_idx/metadata.toml",
                "run_in_transaction = false\n",
            ),
            ("2024-02-01-000000_idx/down.sql", "DROP INDEX i;"),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Diesel);
        assert_eq!(versions(&set), ["20240101000000", "20240201000000"]);
        assert!(set.migrations[0].transactional);
        assert!(!set.migrations[1].transactional);
        assert!(set.migrations[0].down.is_some());
    }

    #[test]
    fn dbmate_sections_with_lines_and_transaction_option() {
        let d = dir(&[
            (
                "20240101_init.sql",
                "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n",
            ),
            (
                "20240102_idx.sql",
                "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (id);\n-- migrate:down\nDROP INDEX i;\n",
            ),
        ]);
        let set = MigrationSet::load(d.path(), Layout::Auto).unwrap();
        assert_eq!(set.layout, Layout::Dbmate);
        let first = &set.migrations[0];
        assert_eq!(
            first.statements,
            vec![Statement {
                sql: "CREATE TABLE a (id int)".into(),
                line: 2
            }]
        );
        assert_eq!(first.down.as_ref().unwrap().statements[0].line, 5);
        assert!(first.transactional);
        assert!(!set.migrations[1].transactional);
    }

    #[test]
    fn dbmate_without_up_section_is_malformed() {
        let d = dir(&[("1_x.sql", "CREATE TABLE a (id int);\n")]);
        let err = MigrationSet::load(d.path(), Layout::Dbmate).unwrap_err();
        assert!(err.to_string().contains("migrate:up"), "{err}");
    }

    #[test]
    fn mixed_layouts_are_rejected() {
        let d = dir(&[("V1__a.sql", "SELECT 1;"), ("0002_b.sql", "SELECT 1;")]);
        let err = MigrationSet::load(d.path(), Layout::Auto).unwrap_err();
        assert!(matches!(err, MigrateError::MixedLayouts { .. }), "{err}");
        assert!(err.to_string().starts_with("mixed migration layouts"));
        let err = MigrationSet::load(d.path(), Layout::Sqlx).unwrap_err();
        assert!(matches!(err, MigrateError::MixedLayouts { .. }), "{err}");
    }

    #[test]
    fn duplicate_versions_are_rejected() {
        let d = dir(&[("0001_a.sql", "SELECT 1;"), ("1_b.sql", "SELECT 1;")]);
        let err = MigrationSet::load(d.path(), Layout::Sqlx).unwrap_err();
        assert!(
            matches!(err, MigrateError::DuplicateVersion { .. }),
            "{err}"
        );
    }

    #[test]
    fn unterminated_quote_names_file_and_line() {
        let d = dir(&[("0001_a.sql", "SELECT 1;\nSELECT 'oops;\n")]);
        let err = MigrationSet::load(d.path(), Layout::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("0001_a.sql:2: unterminated string literal"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_directory_and_unknown_baseline() {
        let err = MigrationSet::load(Path::new("/nonexistent/rehearse"), Layout::Sqlx).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/rehearse"),
            "{err}"
        );
        let d = dir(&[("0001_a.sql", "SELECT 1;")]);
        let set = MigrationSet::load(d.path(), Layout::Sqlx).unwrap();
        assert!(matches!(
            set.split_at(Some("9")),
            Err(MigrateError::UnknownBaseline { .. })
        ));
        let (applied, pending) = set.split_at(Some("1")).unwrap();
        assert_eq!((applied.len(), pending.len()), (1, 0));
    }

    #[test]
    fn empty_directory_is_an_error() {
        let d = dir(&[]);
        assert!(matches!(
            MigrationSet::load(d.path(), Layout::Auto),
            Err(MigrateError::Empty { .. })
        ));
    }

    #[test]
    fn layout_serde_is_kebab_case() {
        #[derive(Deserialize)]
        struct W {
            layout: Layout,
        }
        let w: W = toml::from_str("layout = \"golang-migrate\"").unwrap();
        assert_eq!(w.layout, Layout::GolangMigrate);
        assert_eq!(Layout::GolangMigrate.to_string(), "golang-migrate");
    }
}
