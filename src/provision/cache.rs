//! The persistent template cache: seeded templates kept on disk between
//! runs, so a second `rehearse run` of a scenario restores its template
//! instead of re-applying the baseline and re-seeding it.
//!
//! Local backend only (see docs/performance.md for the others). An entry is
//! a whole stopped cluster, data directory and all, holding one or more
//! template databases: the cluster a run stopped cleanly, with its
//! templates inside. A database cannot be moved between clusters on its own
//! (its tuples' transaction ids refer to the cluster's commit log), so the
//! unit is the cluster. The next run whose template is in an entry starts
//! its server from a copy of that entry instead of from the initdb cache.
//!
//! Layout under the cache directory:
//!
//! ```text
//! <dir>/<id>/manifest.json   what the entry holds (keys, versions)
//! <dir>/<id>/data/           the stopped cluster's data directory
//! <dir>/<id>/lock            flock: shared while copied out, exclusive to delete
//! <dir>/<id>/used            its mtime is the last use (LRU)
//! <dir>/.tmp-*/              an entry being written (owner.json names the
//!                            process); renamed into place when complete
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};

use super::owner::{Owner, RunId};

/// Environment variable naming the cache directory.
pub const CACHE_DIR_ENV: &str = "REHEARSE_CACHE_DIR";
/// Default bound on the cache's total size: a few seeded clusters.
pub const DEFAULT_MAX_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Bumped whenever the entry layout changes: old entries then miss.
const FORMAT: u32 = 1;
const MANIFEST: &str = "manifest.json";
const LOCK: &str = "lock";
const USED: &str = "used";
const OWNER: &str = "owner.json";
const TMP_PREFIX: &str = ".tmp-";
const DELETING_PREFIX: &str = ".del-";

/// Where and how big the cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub dir: PathBuf,
    /// Total size above which the least recently used entries are evicted.
    pub max_size: u64,
}

impl CacheSettings {
    /// `--cache-dir`, else `$REHEARSE_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/rehearse`, else `~/.cache/rehearse`.
    pub fn new(dir: Option<PathBuf>, max_size: u64) -> Result<CacheSettings, CacheError> {
        let dir = dir
            .or_else(|| std::env::var_os(CACHE_DIR_ENV).map(PathBuf::from))
            .or_else(default_dir)
            .ok_or(CacheError::NoDir)?;
        Ok(CacheSettings { dir, max_size })
    }
}

fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("rehearse"))
}

/// The cache cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: set {CACHE_DIR_ENV}, XDG_CACHE_HOME or HOME, or pass --cache-dir")]
    NoDir,
    #[error("template cache {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> CacheError {
    CacheError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// One template inside an entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedTemplate {
    /// The content hash the rehearsal keys templates by.
    pub key: String,
    /// The template database's name inside the cluster.
    pub database: String,
}

/// What an entry holds, and for which binaries and tool version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool_version: String,
    /// The local backend's cluster key: binaries, version, owner, initdb
    /// arguments. A cluster only starts under the binaries that made it.
    pub cluster: String,
    pub postgres_version: String,
    pub templates: Vec<CachedTemplate>,
    pub created_at: String,
}

impl Manifest {
    #[must_use]
    pub fn new(cluster: &str, postgres_version: &str, templates: Vec<CachedTemplate>) -> Self {
        Manifest {
            format: FORMAT,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            cluster: cluster.to_string(),
            postgres_version: postgres_version.to_string(),
            templates,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// The entry's directory name: a hash of what identifies its content.
    fn id(&self) -> String {
        use sha2::Digest;
        let mut keys: Vec<&str> = self.templates.iter().map(|t| t.key.as_str()).collect();
        keys.sort_unstable();
        let mut hasher = sha2::Sha256::new();
        hasher.update(format!(
            "{}\n{}\n{}\n",
            self.format, self.tool_version, self.cluster
        ));
        for key in keys {
            hasher.update(key.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())[..20].to_string()
    }

    fn matches(&self, cluster: &str) -> bool {
        self.format == FORMAT
            && self.tool_version == env!("CARGO_PKG_VERSION")
            && self.cluster == cluster
    }

    fn holds(&self, key: &str) -> bool {
        self.templates.iter().any(|t| t.key == key)
    }
}

/// A complete entry of the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub last_used: SystemTime,
    /// Bytes on disk.
    pub size: u64,
}

impl Entry {
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    #[must_use]
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Every complete entry, most recently used first. A missing directory is
/// an empty cache.
pub fn list(dir: &Path) -> Result<Vec<Entry>, CacheError> {
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut entries = Vec::new();
    for item in read.flatten() {
        let name = item.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if let Some(entry) = read_entry(&item.path()) {
            entries.push(entry);
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.last_used));
    Ok(entries)
}

fn read_entry(dir: &Path) -> Option<Entry> {
    let text = fs::read_to_string(dir.join(MANIFEST)).ok()?;
    let manifest: Manifest = serde_json::from_str(&text).ok()?;
    let last_used = fs::metadata(dir.join(USED))
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(Entry {
        dir: dir.to_path_buf(),
        manifest,
        last_used,
        size: dir_size(dir),
    })
}

/// Bytes of the regular files under `dir`.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(read) = fs::read_dir(dir) else {
        return 0;
    };
    read.flatten()
        .map(|item| match item.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&item.path()),
            Ok(kind) if kind.is_file() => item.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// An entry held for reading: while this lives, no prune deletes it.
pub(crate) struct Hit {
    pub(crate) entry: Entry,
    _lock: Flock<fs::File>,
}

/// The most recently used entry for `cluster` holding template `key`,
/// locked against eviction and marked used.
pub(crate) fn find(settings: &CacheSettings, cluster: &str, key: &str) -> Option<Hit> {
    let entries = list(&settings.dir).ok()?;
    for entry in entries {
        if !entry.manifest.matches(cluster) || !entry.manifest.holds(key) {
            continue;
        }
        let Ok(file) = fs::File::open(entry.dir.join(LOCK)) else {
            continue;
        };
        let Ok(lock) = Flock::lock(file, FlockArg::LockSharedNonblock) else {
            // Being deleted right now.
            continue;
        };
        // A prune that renamed it away before we got the lock.
        if !entry.dir.join(MANIFEST).is_file() {
            continue;
        }
        touch(&entry.dir.join(USED));
        return Some(Hit { entry, _lock: lock });
    }
    None
}

fn touch(path: &Path) {
    // The mtime is the LRU clock; rewriting the file updates it.
    let _ = fs::write(path, b"");
}

/// An entry being written: a temporary directory that becomes the entry
/// when [`Pending::commit`] renames it, and is removed if dropped before.
pub(crate) struct Pending {
    tmp: PathBuf,
    root: PathBuf,
    committed: bool,
}

impl Pending {
    /// A fresh temporary entry directory (0700) recording its owner, so that
    /// `gc` can remove it if this process dies before committing.
    pub(crate) fn begin(settings: &CacheSettings, run_id: &RunId) -> Result<Pending, CacheError> {
        let root = settings.dir.clone();
        if !root.is_dir() {
            fs::create_dir_all(&root).map_err(|e| io_error(&root, e))?;
            // Only a directory we created: `--cache-dir /tmp` must not
            // change /tmp's mode. Entries are 0700 themselves anyway.
            let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o700));
        }
        let tmp = root.join(format!(
            "{TMP_PREFIX}{run_id}-{:08x}",
            rand::random::<u32>()
        ));
        fs::create_dir(&tmp).map_err(|e| io_error(&tmp, e))?;
        let pending = Pending {
            tmp,
            root,
            committed: false,
        };
        fs::set_permissions(&pending.tmp, fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error(&pending.tmp, e))?;
        let owner = serde_json::to_string(&Owner::current(run_id)).unwrap_or_default();
        fs::write(pending.tmp.join(OWNER), owner).map_err(|e| io_error(&pending.tmp, e))?;
        Ok(pending)
    }

    /// Where the cluster's data directory goes.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.tmp.join("data")
    }

    /// Writes the manifest and renames the entry into place. An entry with
    /// the same content that another run committed first wins.
    pub(crate) fn commit(mut self, manifest: &Manifest) -> Result<PathBuf, CacheError> {
        let write = || -> std::io::Result<()> {
            fs::File::create(self.tmp.join(LOCK))?;
            fs::File::create(self.tmp.join(USED))?;
            let _ = fs::remove_file(self.tmp.join(OWNER));
            let mut file = fs::File::create(self.tmp.join(MANIFEST))?;
            file.write_all(serde_json::to_string_pretty(manifest)?.as_bytes())?;
            file.sync_all()
        };
        write().map_err(|e| io_error(&self.tmp, e))?;
        let target = self.root.join(manifest.id());
        if target.exists() {
            touch(&target.join(USED));
            return Ok(target);
        }
        fs::rename(&self.tmp, &target).map_err(|e| io_error(&target, e))?;
        self.committed = true;
        Ok(target)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// What a prune removed and kept.
#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub removed: Vec<PathBuf>,
    pub freed: u64,
    /// Entries some running `rehearse` is copying right now: left alone.
    pub in_use: usize,
    pub kept: usize,
    pub kept_size: u64,
    pub errors: Vec<String>,
}

/// Evicts least recently used entries until the cache holds at most
/// `max_size` bytes (0: every entry), never one in use; `keep` (an entry
/// just written) is evicted last.
pub fn prune(dir: &Path, max_size: u64, keep: Option<&Path>) -> PruneReport {
    let mut report = PruneReport::default();
    let mut entries = match list(dir) {
        Ok(entries) => entries,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    // Oldest first, `keep` at the very end.
    entries.reverse();
    entries.sort_by_key(|e| keep.is_some_and(|k| e.dir == k));
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    for entry in entries {
        if total <= max_size && max_size > 0 {
            report.kept += 1;
            report.kept_size += entry.size;
            continue;
        }
        match remove_entry(&entry) {
            Ok(true) => {
                total = total.saturating_sub(entry.size);
                report.freed += entry.size;
                report.removed.push(entry.dir);
            }
            Ok(false) => {
                report.in_use += 1;
                report.kept += 1;
                report.kept_size += entry.size;
            }
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    report
}

/// Deletes an entry unless a reader holds it: false when in use.
fn remove_entry(entry: &Entry) -> Result<bool, CacheError> {
    let file = fs::File::open(entry.dir.join(LOCK)).map_err(|e| io_error(&entry.dir, e))?;
    let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        return Ok(false);
    };
    // Renamed first, under the lock: a reader never finds half an entry.
    let parent = entry.dir.parent().unwrap_or(Path::new("."));
    let doomed = parent.join(format!(
        "{DELETING_PREFIX}{}-{:08x}",
        entry.id(),
        rand::random::<u32>()
    ));
    fs::rename(&entry.dir, &doomed).map_err(|e| io_error(&entry.dir, e))?;
    drop(lock);
    fs::remove_dir_all(&doomed).map_err(|e| io_error(&doomed, e))?;
    Ok(true)
}

/// Removes the entries in `keys`' place that a newer entry supersedes: those
/// for the same cluster whose templates are all in `newer`.
pub(crate) fn remove_superseded(dir: &Path, newer: &Path) {
    let Some(new) = read_entry(newer) else {
        return;
    };
    for entry in list(dir).unwrap_or_default() {
        let covered = entry.manifest.cluster == new.manifest.cluster
            && entry
                .manifest
                .templates
                .iter()
                .all(|t| new.manifest.holds(&t.key));
        if entry.dir != newer && covered {
            let _ = remove_entry(&entry);
        }
    }
}

/// Removes half-written entries whose writer no longer runs, and deletions
/// a killed process left (for `rehearse gc`). Entries themselves are never
/// garbage: `rehearse cache prune` evicts them.
pub fn collect_partials(dir: &Path, all: bool) -> (Vec<PathBuf>, Vec<String>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    let Ok(read) = fs::read_dir(dir) else {
        return (removed, errors);
    };
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        let orphan = if name.starts_with(DELETING_PREFIX) {
            true
        } else if name.starts_with(TMP_PREFIX) {
            let owner: Option<Owner> = fs::read_to_string(path.join(OWNER))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
            all || !owner.as_ref().is_some_and(Owner::is_alive)
        } else {
            false
        };
        if !orphan {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("removing {}: {e}", path.display())),
        }
    }
    (removed, errors)
}

/// Parses a size like `4G`, `500M`, `1024K` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let bad = || format!("`{text}`: expected a size such as 4G, 500M or 1048576");
    let upper = trimmed.to_ascii_uppercase();
    let digits = upper.trim_end_matches(['B', 'I']);
    let (number, unit) = match digits.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&digits[..i], Some(c)),
        _ => (digits, None),
    };
    let value: u64 = number.trim().parse().map_err(|_| bad())?;
    let shift = match unit {
        None => 0,
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        Some(_) => return Err(bad()),
    };
    value.checked_shl(shift).ok_or_else(bad)
}

/// A size for humans.
#[must_use]
pub fn human_size(bytes: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only")]
    let value = bytes as f64;
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", value / f64::from(1u32 << 30))
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", value / f64::from(1u32 << 20))
    } else {
        format!("{:.0} KiB", value / 1024.0)
    }
}

// SQL of the cache hooks, kept together.
const SQL_LEFTOVER_DATABASES: &str = "SELECT datname FROM pg_database \
     WHERE NOT datistemplate AND datname <> 'postgres'";
const SQL_TEMPLATE_DATABASES: &str = "SELECT datname FROM pg_database WHERE datistemplate";
const SQL_ALL_ROLES: &str = "SELECT rolname FROM pg_roles";

impl super::Postgres {
    /// Whether the template for `key` came from the persistent cache with
    /// this server (rather than being built by this process).
    #[must_use]
    pub fn template_from_cache(&self, key: &str) -> bool {
        self.restored.iter().any(|t| t.key == key)
    }

    /// Records a template this process built, to be saved at shutdown.
    pub(super) fn note_built(&self, key: &str, database: &str) {
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        built.push(CachedTemplate {
            key: key.to_string(),
            database: database.to_string(),
        });
    }

    /// Records the roles a template build may leave in a cached cluster:
    /// those that existed before the first build and those builds created.
    pub(super) fn note_template_roles(
        &self,
        before: std::collections::BTreeSet<String>,
        after: std::collections::BTreeSet<String>,
    ) {
        let mut keep = self
            .template_roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let created: Vec<String> = after.difference(&before).cloned().collect();
        keep.get_or_insert(before).extend(created);
    }

    /// The templates to save with this server's cluster at shutdown: `None`
    /// when there is no cache, nothing new was built, or the server is not
    /// answering. Drops what is not a template first (clones of failed
    /// rehearsals), so the entry holds nothing but templates.
    pub(super) async fn templates_to_cache(&self) -> Option<Vec<CachedTemplate>> {
        if self.template_cache.is_none() || self.backend != super::Backend::Local {
            return None;
        }
        let built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if built.is_empty() {
            return None;
        }
        let client = self.conn.connect("rehearse-cache").await.ok()?;
        client
            .batch_execute("SET statement_timeout = '60s'")
            .await
            .ok()?;
        for row in client.query(SQL_LEFTOVER_DATABASES, &[]).await.ok()? {
            let name: String = row.get(0);
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                super::quote_ident(&name)
            );
            client.batch_execute(&sql).await.ok()?;
        }
        // Roles are server-wide: one a race, reference run or trace
        // created would be in the next run's server and fail its migration
        // with 42710 ("role already exists"). Drop them (their databases
        // are gone); a role that cannot be dropped means no cache entry.
        let keep = self
            .template_roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        for row in client.query(SQL_ALL_ROLES, &[]).await.ok()? {
            let name: String = row.get(0);
            if keep.contains(&name) {
                continue;
            }
            let sql = format!("DROP ROLE IF EXISTS {}", super::quote_ident(&name));
            if let Err(e) = client.batch_execute(&sql).await {
                eprintln!(
                    "rehearse: template cache: not saved: role {name}, created by this run, \
                     could not be dropped: {}",
                    super::describe_pg_error(&e)
                );
                return None;
            }
        }
        let present: Vec<String> = client
            .query(SQL_TEMPLATE_DATABASES, &[])
            .await
            .ok()?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut templates: Vec<CachedTemplate> = Vec::new();
        for template in self.restored.iter().chain(&built) {
            if present.contains(&template.database) && !templates.contains(template) {
                templates.push(template.clone());
            }
        }
        Some(templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(keys: &[&str]) -> Manifest {
        Manifest::new(
            "pg15-abc",
            "15.18",
            keys.iter()
                .map(|k| CachedTemplate {
                    key: (*k).to_string(),
                    database: format!("rehearse_tpl_{k}"),
                })
                .collect(),
        )
    }

    fn store(settings: &CacheSettings, keys: &[&str], bytes: usize) -> PathBuf {
        let pending = Pending::begin(settings, &RunId::new()).unwrap();
        fs::create_dir(pending.data_dir()).unwrap();
        fs::write(pending.data_dir().join("f"), vec![0u8; bytes]).unwrap();
        pending.commit(&manifest(keys)).unwrap()
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
        assert_eq!(parse_size("12").unwrap(), 12);
        assert!(parse_size("4X").unwrap_err().contains("4X"));
        assert!(parse_size("").is_err());
    }

    #[test]
    fn entries_are_found_by_key_and_cluster_and_evicted_lru() {
        let dir = tempfile::tempdir().unwrap();
        let settings = CacheSettings {
            dir: dir.path().join("cache"),
            max_size: 1 << 30,
        };
        let old = store(&settings, &["a"], 1000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let new = store(&settings, &["b", "c"], 1000);
        assert!(find(&settings, "pg15-abc", "a").is_some());
        assert!(find(&settings, "pg15-other", "a").is_none());
        assert!(find(&settings, "pg15-abc", "z").is_none());
        // Using `new` now makes `old` (used by the find above) the newer...
        std::thread::sleep(std::time::Duration::from_millis(20));
        let hit = find(&settings, "pg15-abc", "c").unwrap();
        assert_eq!(hit.entry.dir, new);
        // ...and a live reader's entry is never deleted.
        let report = prune(&settings.dir, 1, None);
        assert_eq!(report.removed, vec![old.clone()]);
        assert_eq!(report.in_use, 1);
        drop(hit);
        let report = prune(&settings.dir, 0, None);
        assert_eq!(report.removed, vec![new]);
        assert!(list(&settings.dir).unwrap().is_empty());
    }

    #[test]
    fn a_dropped_pending_entry_leaves_nothing_and_superseded_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let settings = CacheSettings {
            dir: dir.path().to_path_buf(),
            max_size: 1 << 30,
        };
        drop(Pending::begin(&settings, &RunId::new()).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let small = store(&settings, &["a"], 10);
        let big = store(&settings, &["a", "b"], 10);
        remove_superseded(&settings.dir, &big);
        assert!(!small.exists());
        assert_eq!(list(&settings.dir).unwrap().len(), 1);
        // A partial entry of a dead writer is gc's.
        let stale = dir.path().join(format!("{TMP_PREFIX}dead"));
        fs::create_dir(&stale).unwrap();
        let (removed, errors) = collect_partials(dir.path(), false);
        assert_eq!((removed, errors.len()), (vec![stale], 0));
    }
}
