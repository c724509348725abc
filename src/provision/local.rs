//! The local backend: a cluster from the Postgres binaries on this machine.
//!
//! Fast because it never runs `initdb` twice: the first start builds a
//! cluster directory into a cache (on tmpfs when there is one) and every
//! start copies it (measured on this kind of machine: ~43 ms copy on tmpfs
//! vs ~450 ms initdb). `postgres` is spawned directly as our child, not via
//! `pg_ctl`, which daemonizes (leaving zombies where PID 1 does not reap) and
//! polls readiness only every 100 ms.

use std::fs;
use std::io::{BufRead, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::owner::Owner;
use super::{
    ConnInfo, ProvisionError, ProvisionOptions, ServerVersion, describe_pg_error, random_password,
};

/// Environment variable naming the directory that holds `initdb` and `postgres`.
pub const LOCAL_BIN_ENV: &str = "REHEARSE_PG_BIN";
/// Environment variable naming where local clusters are created.
pub const LOCAL_TMPDIR_ENV: &str = "REHEARSE_TMPDIR";

/// Prefix of every instance directory; `gc` looks for it.
pub(crate) const INSTANCE_PREFIX: &str = "rehearse-";
const CACHE_DIR: &str = "rehearse-cache";
pub(crate) const OWNER_FILE: &str = "owner.json";
/// Prefix of a cache build in progress: `.build-KEY-PID-TICKS-RANDOM`.
pub(crate) const BUILD_PREFIX: &str = ".build-";

/// initdb processes this process runs (process group id, build folder):
/// the signal path kills them and removes their folders, since the
/// blocking thread waiting on initdb cannot be cancelled.
static BUILDS: std::sync::Mutex<Vec<(i32, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Kills the cache builds of this process and removes their folders
/// (after a signal).
pub(crate) fn abandon_builds() {
    let builds = std::mem::take(
        &mut *BUILDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for (group, dir) in builds {
        let _ = nix::sys::signal::killpg(Pid::from_raw(group), Signal::SIGKILL);
        // initdb is our child: reap it, bounded, so nothing writes into
        // the folder while it is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while nix::sys::wait::waitpid(
            Pid::from_raw(group),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        )
        .is_ok_and(|status| status == nix::sys::wait::WaitStatus::StillAlive)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The cache folders under a temp root (for gc).
pub(crate) fn cache_dir(root: &Path) -> PathBuf {
    root.join(CACHE_DIR)
}
const SUPERUSER: &str = "postgres";
/// Unix socket paths are limited to 107 bytes (sun_path); the socket file
/// name `.s.PGSQL.NNNNN` needs 15 of them.
const MAX_SOCKET_DIR_LEN: usize = 90;

/// A set of Postgres server binaries.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub dir: PathBuf,
    /// `postgres --version` number, e.g. `15.18`.
    pub version: String,
    pub major: u32,
}

impl PgBinaries {
    /// Finds `initdb` and `postgres`: the explicit directory, else
    /// `$REHEARSE_PG_BIN`, else PATH and the usual install locations; the
    /// wanted major version if given, else the newest.
    pub fn find(explicit: Option<&Path>, major: Option<u32>) -> Result<PgBinaries, ProvisionError> {
        let explicit = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(LOCAL_BIN_ENV).map(PathBuf::from));
        let candidates: Vec<PathBuf> = match &explicit {
            Some(dir) => vec![dir.clone()],
            None => candidate_dirs(),
        };
        let mut found: Vec<PgBinaries> = Vec::new();
        for dir in candidates {
            if !dir.join("initdb").is_file() || !dir.join("postgres").is_file() {
                continue;
            }
            if found.iter().any(|b| same_file(&b.dir, &dir)) {
                continue;
            }
            if let Some(binaries) = Self::probe(&dir) {
                found.push(binaries);
            }
        }
        let where_looked = match &explicit {
            Some(dir) => format!("{} (from --pg-bin or {LOCAL_BIN_ENV})", dir.display()),
            None => "PATH and /usr/lib/postgresql/*/bin".to_string(),
        };
        if found.is_empty() {
            return Err(ProvisionError::NoBinaries(format!(
                "no initdb and postgres in {where_looked}; install the postgres server \
                 (e.g. apt-get install postgresql) or set {LOCAL_BIN_ENV}"
            )));
        }
        found.sort_by_key(|b| std::cmp::Reverse(b.major));
        match major {
            None => Ok(found.swap_remove(0)),
            Some(wanted) => found
                .into_iter()
                .find(|b| b.major == wanted)
                .ok_or_else(|| {
                    ProvisionError::NoBinaries(format!(
                        "postgres {wanted} was asked for, but {where_looked} has no such version"
                    ))
                }),
        }
    }

    fn probe(dir: &Path) -> Option<PgBinaries> {
        let output = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().nth(2)?.to_string();
        let major = version.split('.').next()?.parse().ok()?;
        Some(PgBinaries {
            dir: dir.to_path_buf(),
            version,
            major,
        })
    }
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for root in [
        "/usr/lib/postgresql",
        "/usr/local/pgsql",
        "/opt/homebrew/opt",
    ] {
        if let Ok(entries) = fs::read_dir(root) {
            let mut found: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("bin")).collect();
            found.sort();
            dirs.extend(found);
        }
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Who runs `initdb` and `postgres`: ourselves, or the `postgres` system user
/// when we are root (both refuse to run as root).
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Option<(u32, u32)>,
}

impl RunAs {
    fn detect() -> Result<RunAs, ProvisionError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(RunAs { uid: None });
        }
        match nix::unistd::User::from_name(SUPERUSER) {
            Ok(Some(user)) => Ok(RunAs {
                uid: Some((user.uid.as_raw(), user.gid.as_raw())),
            }),
            _ => Err(ProvisionError::Local(
                "running as root needs a `postgres` system user to run initdb and postgres as \
                 (useradd --system postgres), or run rehearse as a normal user"
                    .into(),
            )),
        }
    }

    fn apply(self, command: &mut Command) {
        if let Some((uid, gid)) = self.uid {
            command.uid(uid).gid(gid);
        }
    }

    fn chown(self, path: &Path) -> std::io::Result<()> {
        match self.uid {
            Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }
}

/// The root under which instance and cache directories are created.
pub(crate) fn tmp_root(explicit: Option<&Path>) -> Result<PathBuf, ProvisionError> {
    let explicit = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(LOCAL_TMPDIR_ENV).map(PathBuf::from));
    if let Some(dir) = explicit {
        check_writable(&dir)?;
        return Ok(dir);
    }
    let shm = PathBuf::from("/dev/shm");
    if check_writable(&shm).is_ok() {
        return Ok(shm);
    }
    let tmp = std::env::temp_dir();
    check_writable(&tmp)?;
    Ok(tmp)
}

/// Every root `gc` should look in.
pub(crate) fn tmp_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/dev/shm"), std::env::temp_dir()];
    if let Some(dir) = std::env::var_os(LOCAL_TMPDIR_ENV) {
        roots.insert(0, PathBuf::from(dir));
    }
    roots.dedup();
    roots
}

fn check_writable(dir: &Path) -> Result<(), ProvisionError> {
    let error = |reason: String| ProvisionError::TempDir {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(dir).map_err(|e| error(format!("cannot use it: {e}")))?;
    if !meta.is_dir() {
        return Err(error("is not a directory".into()));
    }
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| {
        error(format!(
            "is not writable ({e}); set {LOCAL_TMPDIR_ENV} to another"
        ))
    })
}

/// A running local cluster; stopped and deleted on drop.
pub(crate) struct LocalCluster {
    child: Option<Child>,
    dir: PathBuf,
    bins: PgBinaries,
    conn: ConnInfo,
    version: ServerVersion,
    /// Identifies the binaries and initdb settings: a cached cluster only
    /// starts under the ones that made it.
    cluster_key: String,
    /// Templates the cluster came with from the persistent template cache.
    restored: Vec<super::cache::CachedTemplate>,
    run_as: RunAs,
    /// The copy of the cached cluster while it runs: cleanup cancels it
    /// and waits for it before removing the directory it writes into.
    copying: Option<CopyTask>,
}

/// A copy running on the blocking pool.
struct CopyTask {
    cancel: Arc<AtomicBool>,
    /// Disconnected when the copy's closure ends (done, failed or panicked).
    done: std::sync::mpsc::Receiver<()>,
}

impl CopyTask {
    /// Cancels the copy and waits (bounded) until it stops writing.
    fn cancel_and_wait(self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.done.recv_timeout(Duration::from_secs(10));
    }
}

impl LocalCluster {
    pub(crate) async fn start(options: &ProvisionOptions) -> Result<LocalCluster, ProvisionError> {
        let bins = PgBinaries::find(options.pg_bin_dir.as_deref(), options.pg_major)?;
        let run_as = RunAs::detect()?;
        let root = tmp_root(options.tmp_dir.as_deref())?;
        let deadline = Instant::now() + options.startup_timeout;
        let cluster_key = cache_key(&bins, run_as);
        // A cluster from the persistent template cache holding the wanted
        // template, else the initdb cache. The hit's shared lock keeps the
        // entry from eviction until the copy below is done.
        let hit = match (&options.template_cache, &options.cached_template) {
            (Some(settings), Some(key)) => super::cache::find(settings, &cluster_key, key),
            _ => None,
        };
        let template = match &hit {
            Some(hit) => hit.entry.data_dir(),
            None => {
                let (bins, root) = (bins.clone(), root.clone());
                tokio::task::spawn_blocking(move || cached_cluster(&bins, &root, run_as))
                    .await
                    .map_err(|e| {
                        ProvisionError::Local(format!("cluster cache task failed: {e}"))
                    })??
            }
        };
        let dir = create_instance_dir(&root, options, run_as)?;
        // From here on `cluster` owns the directory: any early return drops
        // it, which removes the directory and stops a started server.
        let mut cluster = LocalCluster {
            child: None,
            dir,
            bins,
            conn: ConnInfo::new("127.0.0.1", 0, SUPERUSER),
            version: ServerVersion::default(),
            copying: None,
            cluster_key,
            restored: hit
                .as_ref()
                .map(|hit| hit.entry.manifest.templates.clone())
                .unwrap_or_default(),
            run_as,
        };
        let data = cluster.dir.join("data");
        {
            let (template, data) = (template.clone(), data.clone());
            let cancel = Arc::new(AtomicBool::new(false));
            let (done_tx, done) = std::sync::mpsc::channel::<()>();
            // If a signal drops this future mid-copy, the cluster's Drop
            // cancels the copy and waits for it: removing the directory
            // while the copy still writes into it failed ("Directory not
            // empty") and left it behind.
            cluster.copying = Some(CopyTask {
                cancel: Arc::clone(&cancel),
                done,
            });
            tokio::task::spawn_blocking(move || {
                let _done = done_tx;
                copy_tree(&template, &data, run_as, &cancel)
            })
            .await
            .map_err(|e| ProvisionError::Local(format!("copy task failed: {e}")))?
            .map_err(|e| {
                ProvisionError::Local(format!("copying the cached cluster failed: {e}"))
            })?;
            cluster.copying = None;
        }
        drop(hit);
        let socket_dir = cluster.socket_dir()?;
        // A free port can be taken by someone else between our probe and the
        // server's bind; retry with another port when that happens.
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let port = free_port()?;
            let child = spawn_postgres(&cluster, &data, &socket_dir, port, options, run_as)?;
            cluster.child = Some(child);
            cluster.conn = ConnInfo::new("127.0.0.1", port, SUPERUSER);
            match cluster.wait_ready(&socket_dir, port, deadline).await {
                Ok(client) => {
                    cluster.finish_setup(&client, port, &socket_dir).await?;
                    return Ok(cluster);
                }
                Err(ReadyError::PortInUse) => {
                    cluster.kill_server();
                    last_error = format!("port {port} was taken");
                }
                Err(ReadyError::Fatal(e)) => return Err(e),
            }
        }
        Err(ProvisionError::Local(format!(
            "could not bind a free port: {last_error}"
        )))
    }

    pub(crate) fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub(crate) fn resources(&self) -> Vec<super::Resource> {
        let mut owned = vec![super::Resource::Directory(self.dir.clone())];
        if let Some(child) = &self.child {
            owned.push(super::Resource::Process(child.id()));
        }
        owned
    }

    pub(crate) fn bin_dir(&self) -> &Path {
        &self.bins.dir
    }

    fn socket_dir(&self) -> Result<PathBuf, ProvisionError> {
        let len = self.dir.as_os_str().len();
        if len > MAX_SOCKET_DIR_LEN {
            return Err(ProvisionError::TempDir {
                path: self.dir.clone(),
                reason: format!(
                    "is {len} bytes long; unix socket paths must stay under 107 bytes, so set \
                     {LOCAL_TMPDIR_ENV} to a shorter directory"
                ),
            });
        }
        Ok(self.dir.clone())
    }

    async fn wait_ready(
        &mut self,
        socket_dir: &Path,
        port: u16,
        deadline: Instant,
    ) -> Result<tokio_postgres::Client, ReadyError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(socket_dir)
            .port(port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2));
        let mut last_error;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                let log = self.log_tail();
                if log.contains("Address already in use") || log.contains("could not bind") {
                    return Err(ReadyError::PortInUse);
                }
                return Err(ReadyError::Fatal(ProvisionError::Local(format!(
                    "postgres exited during startup ({status}); its log says: {log}"
                ))));
            }
            match config.connect(tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    return Ok(client);
                }
                Err(e) => last_error = describe_pg_error(&e),
            }
            if Instant::now() >= deadline {
                return Err(ReadyError::Fatal(ProvisionError::NotReady {
                    target: self.conn.display_url(),
                    seconds: 0,
                    last_error: format!("{last_error}; log: {}", self.log_tail()),
                }));
            }
            // Measured: ready in 25-50 ms; a 2 ms poll costs nothing.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// TCP connections authenticate with a per-instance random password; the
    /// socket (in our 0700 directory) is trusted, which is how we set it, on
    /// the readiness connection, in the same round trip as the version.
    async fn finish_setup(
        &mut self,
        client: &tokio_postgres::Client,
        port: u16,
        socket_dir: &Path,
    ) -> Result<(), ProvisionError> {
        let password = random_password();
        let set_password = format!(
            "ALTER ROLE {SUPERUSER} PASSWORD {}",
            super::quote_literal(&password)
        );
        self.version = ServerVersion::read(client, &set_password)
            .await
            .map_err(|e| {
                ProvisionError::Local(format!("setting the password: {}", describe_pg_error(&e)))
            })?;
        self.conn = ConnInfo::new("127.0.0.1", port, SUPERUSER)
            .with_password(Some(password))
            .with_socket_dir(socket_dir);
        Ok(())
    }

    pub(crate) fn version(&self) -> &ServerVersion {
        &self.version
    }

    fn log_tail(&self) -> String {
        let Ok(file) = fs::File::open(self.dir.join("postgres.log")) else {
            return "(no log)".into();
        };
        let lines: Vec<String> = std::io::BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .collect();
        let start = lines.len().saturating_sub(3);
        lines[start..].join(" | ")
    }

    /// SIGQUIT (immediate shutdown: nothing to keep) and reap.
    fn kill_server(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_postmaster(&mut child);
        }
    }

    pub(crate) fn restored(&self) -> &[super::cache::CachedTemplate] {
        &self.restored
    }

    /// Stops the server cleanly (a fast shutdown writes a shutdown
    /// checkpoint, so the data directory is consistent without WAL replay)
    /// and moves its data directory into the template cache as an entry
    /// holding `templates`; then removes the instance like [`Self::stop`].
    pub(crate) fn stop_into_cache(
        mut self,
        settings: &super::cache::CacheSettings,
        run_id: &super::RunId,
        templates: Vec<super::cache::CachedTemplate>,
    ) -> Result<Result<PathBuf, String>, ProvisionError> {
        let cache_error = |e: super::cache::CacheError| e.to_string();
        let clean = self.child.take().is_some_and(|mut child| {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            // SIGINT: "fast" shutdown (manual, "Shutting Down the Server").
            let _ = kill(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break status.success(),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    _ => {
                        stop_postmaster(&mut child);
                        break false;
                    }
                }
            }
        });
        let saved = if clean {
            let data = self.dir.join("data");
            let size = super::cache::dir_size(&data);
            if size > settings.max_size {
                Err(format!(
                    "not cached: the cluster's {} exceed the template cache's size limit of {}",
                    super::cache::human_size(size),
                    super::cache::human_size(settings.max_size)
                ))
            } else {
                self.save_data(&data, settings, run_id, templates)
                    .map_err(cache_error)
            }
        } else {
            Err("not cached: the server did not shut down cleanly".into())
        };
        self.stop()?;
        Ok(saved)
    }

    fn save_data(
        &self,
        data: &Path,
        settings: &super::cache::CacheSettings,
        run_id: &super::RunId,
        templates: Vec<super::cache::CachedTemplate>,
    ) -> Result<PathBuf, super::cache::CacheError> {
        let pending = super::cache::Pending::begin(settings, run_id)?;
        // Same file system (a cache dir on tmpfs): a rename. Else a copy.
        if fs::rename(data, pending.data_dir()).is_err() {
            copy_tree(
                data,
                &pending.data_dir(),
                self.run_as,
                &AtomicBool::new(false),
            )
            .map_err(|e| super::cache::CacheError::Io {
                path: pending.data_dir(),
                reason: format!("copying {} into it: {e}", data.display()),
            })?;
        }
        let manifest =
            super::cache::Manifest::new(&self.cluster_key, &self.version.text, templates);
        let entry = pending.commit(&manifest)?;
        super::cache::remove_superseded(&settings.dir, &entry);
        let _ = super::cache::prune(&settings.dir, settings.max_size, Some(&entry));
        Ok(entry)
    }

    pub(crate) fn stop(mut self) -> Result<(), ProvisionError> {
        self.kill_server();
        let result = remove_instance_dir(&self.dir)
            .map_err(|e| ProvisionError::Local(format!("removing {}: {e}", self.dir.display())));
        // Already cleaned; keep Drop from trying again.
        self.dir = PathBuf::new();
        result
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if let Some(copy) = self.copying.take() {
            copy.cancel_and_wait();
        }
        self.kill_server();
        if !self.dir.as_os_str().is_empty()
            && let Err(e) = remove_instance_dir(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            super::cleanup_failed(&format!("could not remove {}: {e}", self.dir.display()));
        }
    }
}

enum ReadyError {
    PortInUse,
    Fatal(ProvisionError),
}

/// Stops a postmaster we spawned: SIGQUIT, wait up to 5 s, then SIGKILL.
fn stop_postmaster(child: &mut Child) {
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = kill(pid, Signal::SIGQUIT);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// The settings of a local cluster: where it listens, then the settings
/// every backend gets.
fn server_settings(port: u16, socket_dir: &Path, options: &ProvisionOptions) -> Vec<String> {
    let mut settings = vec![
        format!("port={port}"),
        "listen_addresses=127.0.0.1".to_string(),
        format!("unix_socket_directories={}", socket_dir.display()),
        "unix_socket_permissions=0700".to_string(),
        "password_encryption=scram-sha-256".to_string(),
        // POSIX segments would live in /dev/shm and outlive an immediate
        // shutdown; mmap keeps them inside the data dir we delete.
        "dynamic_shared_memory_type=mmap".to_string(),
    ];
    settings.extend(super::common_settings(options));
    settings
}

fn spawn_postgres(
    cluster: &LocalCluster,
    data: &Path,
    socket_dir: &Path,
    port: u16,
    options: &ProvisionOptions,
    run_as: RunAs,
) -> Result<Child, ProvisionError> {
    let log_path = cluster.dir.join("postgres.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| ProvisionError::Local(format!("creating {}: {e}", log_path.display())))?;
    let _ = run_as.chown(&log_path);
    let log_err = log
        .try_clone()
        .map_err(|e| ProvisionError::Local(format!("log file: {e}")))?;
    let mut command = Command::new(cluster.bins.dir.join("postgres"));
    command.arg("-D").arg(data);
    for setting in server_settings(port, socket_dir, options) {
        command.arg("-c").arg(setting);
    }
    command.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // Its own process group: a Ctrl-C in the terminal reaches only us, and we
    // stop the server in order.
    command.process_group(0);
    run_as.apply(&mut command);
    let child = command.spawn().map_err(|e| {
        ProvisionError::Local(format!(
            "starting {}: {e}",
            cluster.bins.dir.join("postgres").display()
        ))
    })?;
    Ok(child)
}

fn free_port() -> Result<u16, ProvisionError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ProvisionError::Local(format!("finding a free port on 127.0.0.1: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ProvisionError::Local(format!("finding a free port: {e}")))
}

fn create_instance_dir(
    root: &Path,
    options: &ProvisionOptions,
    run_as: RunAs,
) -> Result<PathBuf, ProvisionError> {
    let error = |reason: String| ProvisionError::TempDir {
        path: root.to_path_buf(),
        reason,
    };
    // Unique per instance even when one run starts several.
    let name = format!(
        "{INSTANCE_PREFIX}{}-{:04x}",
        options.run_id,
        rand::random::<u16>()
    );
    let dir = root.join(name);
    fs::create_dir(&dir).map_err(|e| error(format!("cannot create a directory in it: {e}")))?;
    let setup = || -> std::io::Result<()> {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        let owner = Owner::current(&options.run_id);
        let mut file = fs::File::create(dir.join(OWNER_FILE))?;
        file.write_all(serde_json::to_string(&owner).unwrap_or_default().as_bytes())?;
        run_as.chown(&dir)
    };
    if let Err(e) = setup() {
        let _ = fs::remove_dir_all(&dir);
        return Err(error(format!("setting up {}: {e}", dir.display())));
    }
    Ok(dir)
}

/// Returns the cached, already initdb'd data directory for these binaries,
/// building it first if needed. Concurrent first starts each build one and
/// the first rename wins.
fn cached_cluster(
    bins: &PgBinaries,
    root: &Path,
    run_as: RunAs,
) -> Result<PathBuf, ProvisionError> {
    let cache = root.join(CACHE_DIR);
    let local = |what: &str, e: std::io::Error| {
        ProvisionError::Local(format!("{what} {}: {e}", cache.display()))
    };
    fs::create_dir_all(&cache).map_err(|e| local("creating", e))?;
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o700))
        .map_err(|e| local("chmod", e))?;
    run_as.chown(&cache).map_err(|e| local("chown", e))?;
    let key = cache_key(bins, run_as);
    let ready = cache.join(&key);
    if ready.join("PG_VERSION").is_file() {
        return Ok(ready);
    }
    // The owner in the name (the folder must stay empty for initdb), so
    // `rehearse gc` can tell a build a killed run left behind.
    let me = Owner::current(&super::RunId::new());
    let building = cache.join(format!(
        "{BUILD_PREFIX}{key}-{}-{}-{:08x}",
        me.pid,
        me.start_ticks,
        rand::random::<u32>()
    ));
    fs::create_dir(&building).map_err(|e| local("creating a build dir in", e))?;
    fs::set_permissions(&building, fs::Permissions::from_mode(0o700))
        .and_then(|()| run_as.chown(&building))
        .map_err(|e| local("preparing a build dir in", e))?;
    let result = run_initdb(bins, &building, run_as);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&building);
        return Err(e);
    }
    trim_wal(bins, &building);
    if fs::rename(&building, &ready).is_err() {
        // Another process won the race; its cluster is as good as ours.
        let _ = fs::remove_dir_all(&building);
    }
    Ok(ready)
}

/// Removes the WAL segments a cleanly shut down cluster does not need: all
/// but the one holding the last checkpoint's REDO point (initdb leaves
/// recycled future segments behind). Every start copies the cluster, so
/// this is 4 of its 28 MB less to copy. Best effort: on any doubt, all
/// segments stay.
fn trim_wal(bins: &PgBinaries, dir: &Path) {
    // Beside initdb, or beside what a symlinked initdb points to.
    let Some(controldata) = [
        Some(bins.dir.join("pg_controldata")),
        fs::canonicalize(bins.dir.join("initdb"))
            .ok()
            .and_then(|p| Some(p.parent()?.join("pg_controldata"))),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file()) else {
        return;
    };
    let Ok(out) = Command::new(controldata)
        .arg(dir)
        .env("LC_ALL", "C")
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let (Some(state), Some(redo)) = (
        field("Database cluster state:"),
        field("Latest checkpoint's REDO WAL file:"),
    ) else {
        return;
    };
    let wal = dir.join("pg_wal");
    if !out.status.success() || state != "shut down" || !wal.join(&redo).is_file() {
        return;
    }
    let Ok(entries) = fs::read_dir(&wal) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let segment = name.len() == 24 && name.chars().all(|c| c.is_ascii_hexdigit());
        if segment && name != redo.as_str() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn cache_key(bins: &PgBinaries, run_as: RunAs) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(bins.dir.as_os_str().as_encoded_bytes());
    hasher.update(bins.version.as_bytes());
    if let Ok(meta) = fs::metadata(bins.dir.join("postgres")) {
        hasher.update(meta.mtime().to_le_bytes());
        hasher.update(meta.size().to_le_bytes());
    }
    hasher.update(format!("{:?}", run_as.uid).as_bytes());
    hasher.update(INITDB_ARGS.join(" ").as_bytes());
    format!("pg{}-{}", bins.major, &hex::encode(hasher.finalize())[..16])
}

/// initdb arguments. Trust on the socket only (the directory is 0700); TCP
/// needs the password set after start.
const INITDB_ARGS: &[&str] = &[
    "--username=postgres",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--no-locale",
    "--no-sync",
    "--no-instructions",
    // 1 MB WAL segments instead of 16: the copy every start makes shrinks
    // from 39 MB to about 24 MB.
    "--wal-segsize=1",
];

fn run_initdb(bins: &PgBinaries, dir: &Path, run_as: RunAs) -> Result<(), ProvisionError> {
    let mut command = Command::new(bins.dir.join("initdb"));
    command.arg("-D").arg(dir).args(INITDB_ARGS);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_as.apply(&mut command);
    // A group of its own, so it and the postgres it starts can be killed
    // together.
    command.process_group(0);
    let child = command
        .spawn()
        .map_err(|e| ProvisionError::Local(format!("running initdb: {e}")))?;
    let group = i32::try_from(child.id()).unwrap_or(i32::MAX);
    let builds = || {
        BUILDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    builds().push((group, dir.to_path_buf()));
    let output = child.wait_with_output();
    builds().retain(|(g, _)| *g != group);
    let output = output.map_err(|e| ProvisionError::Local(format!("running initdb: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProvisionError::Local(format!(
            "initdb failed ({}): {}",
            output.status,
            stderr.trim().lines().last().unwrap_or("")
        )));
    }
    Ok(())
}

/// Removes an instance directory with its owner file LAST: a removal cut
/// short (SIGKILL, an error) leaves a directory `rehearse gc` still
/// recognises as ours.
fn remove_instance_dir(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == OWNER_FILE {
            continue;
        }
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    match fs::remove_file(dir.join(OWNER_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::remove_dir(dir)
}

/// Copies a cluster directory, keeping modes and (as root) the owner. The
/// ~1000 files are copied by two threads: the copy is most of a start.
/// Stops early (with an error) once `cancel` is set.
fn copy_tree(from: &Path, to: &Path, run_as: RunAs, cancel: &AtomicBool) -> std::io::Result<()> {
    let mut files = Vec::new();
    create_dirs(from, to, run_as, &mut files)?;
    let half = files.len() / 2;
    let (first, second) = files.split_at(half);
    let copy = |pairs: &[(PathBuf, PathBuf)]| -> std::io::Result<()> {
        for (source, target) in pairs {
            if cancel.load(Ordering::Relaxed) {
                return Err(std::io::Error::other("cancelled"));
            }
            fs::copy(source, target)?;
            run_as.chown(target)?;
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let other = scope.spawn(|| copy(second));
        let mine = copy(first);
        other
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("copy thread panicked")))?;
        mine
    })
}

/// Creates the directory tree of `from` under `to` and lists the files to copy.
fn create_dirs(
    from: &Path,
    to: &Path,
    run_as: RunAs,
    files: &mut Vec<(PathBuf, PathBuf)>,
) -> std::io::Result<()> {
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700))?;
    run_as.chown(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            create_dirs(&entry.path(), &target, run_as, files)?;
        } else if kind.is_file() {
            files.push((entry.path(), target));
        }
    }
    Ok(())
}

/// The postmaster pid recorded in a data directory, if any.
pub(crate) fn postmaster_pid(data: &Path) -> Option<i32> {
    let text = fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_settings_are_left_out_when_durable() {
        let options = ProvisionOptions::default();
        let fast = server_settings(5, Path::new("/s"), &options);
        assert!(fast.iter().any(|s| s == "fsync=off"));
        assert!(fast.iter().any(|s| s == "max_connections=100"));
        let durable = server_settings(5, Path::new("/s"), &options.with_durable(true));
        assert!(!durable.iter().any(|s| s.starts_with("fsync")));
        assert!(durable.iter().any(|s| s == "listen_addresses=127.0.0.1"));
    }

    #[test]
    fn a_file_is_not_a_usable_temp_dir() {
        let err = tmp_root(Some(Path::new("/proc/version")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/proc/version") && err.contains("not a directory"),
            "{err}"
        );
    }
}
