//! Provisioning: a throwaway Postgres on one of three backends.
//!
//! [`Postgres::start`] returns a handle that hands out connection settings and
//! cleans up after itself: explicitly with [`Postgres::shutdown`], or on
//! `Drop` (normal exit, panic, and the CLI's SIGINT/SIGTERM handling, which
//! drops every handle before exiting). What a SIGKILL leaves behind carries a
//! label or an owner file, and [`gc::collect`] removes it.

pub mod cache;
mod conn;
mod docker;
pub mod doctor;
pub mod gc;
mod local;
mod owner;
mod server;
mod template;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use conn::ConnInfo;
pub use docker::{DEFAULT_MAJOR as DOCKER_DEFAULT_MAJOR, DOCKER_IMAGE_ENV, DockerImage};
pub use local::{LOCAL_BIN_ENV, LOCAL_TMPDIR_ENV, PgBinaries};
pub use owner::RunId;
pub use server::parse_url as parse_database_url;
pub use template::Template;
pub use tls::{SslMode, TlsSettings};

use docker::DockerInstance;
use local::LocalCluster;
use server::ServerDatabase;

/// Which kind of Postgres a rehearsal runs on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Docker when a daemon answers and the image is present or can be
    /// pulled; otherwise local binaries.
    #[default]
    Auto,
    /// A container through testcontainers.
    Docker,
    /// A cluster from the Postgres binaries installed on this machine.
    Local,
    /// A throwaway database on an existing server (`--database-url`).
    Url,
}

impl Backend {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Docker => "docker",
            Backend::Local => "local",
            Backend::Url => "url",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the provisioning stage. Messages are lowercase, carry the
/// identifying values and never a password.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("bad database url: {0}")]
    BadUrl(String),
    #[error("the url backend needs a database url: pass --database-url or set DATABASE_URL")]
    MissingUrl,
    #[error("docker is not available: {0}")]
    DockerUnavailable(String),
    #[error(
        "docker image {image} is not present and could not be pulled: {reason}; build one \
         offline with ci/build-postgres-image.sh and set {env}=rehearse-postgres:15",
        env = DOCKER_IMAGE_ENV
    )]
    ImageUnavailable { image: String, reason: String },
    #[error("docker container from {image} failed: {reason}")]
    Container { image: String, reason: String },
    #[error("no local postgres binaries: {0}")]
    NoBinaries(String),
    #[error("temp dir {path}: {reason}")]
    TempDir { path: PathBuf, reason: String },
    #[error("local cluster: {0}")]
    Local(String),
    #[error("postgres did not become ready within {seconds} s on {target}: {last_error}")]
    NotReady {
        target: String,
        seconds: u64,
        last_error: String,
    },
    #[error(
        "no backend works here: docker: {docker}; local: {local}. Start a docker daemon (and \
         build or pull a postgres image), install the postgres server binaries (e.g. apt-get \
         install postgresql), or pass --database-url"
    )]
    NoBackend { docker: String, local: String },
    #[error("server reports postgres {found}, but {wanted} was asked for")]
    VersionMismatch { wanted: u32, found: String },
    #[error("{operation} on {target}: {message}")]
    Sql {
        operation: String,
        target: String,
        message: String,
    },
    /// A role the run's migrations created on a user's server survived the
    /// run (shared objects such as grants in other databases block `DROP
    /// ROLE`, manual "Dropping Roles").
    #[error(
        "role {role} created by the run's migrations could not be dropped on {target}: \
         {message}; to remove it, run in each database where it owns objects or holds \
         privileges: {sql}"
    )]
    RoleLeft {
        role: String,
        target: String,
        message: String,
        sql: String,
    },
}

impl ProvisionError {
    /// Whether the user can fix this by changing their input (exit code 2)
    /// rather than the environment (exit code 3).
    #[must_use]
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ProvisionError::BadUrl(_) | ProvisionError::MissingUrl)
    }
}

/// One line describing a Postgres error: SQLSTATE and message when the server
/// sent one, the client-side cause otherwise.
#[must_use]
pub fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    message
}

/// How to provision. `Default` gives the auto backend with fast settings.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub backend: Backend,
    /// Postgres major version asked for; `None` takes what the backend has
    /// (local: the newest installed; docker: [`DOCKER_DEFAULT_MAJOR`]).
    pub pg_major: Option<u32>,
    /// For the url backend (and auto, where it wins over the others).
    pub database_url: Option<String>,
    /// Production-like durability (fsync on). Off by default: it changes
    /// timings, so benchmarks say which one they used.
    pub durable: bool,
    /// Docker image override; defaults to `$REHEARSE_DOCKER_IMAGE`, then the
    /// pinned official tag for the major version.
    pub docker_image: Option<String>,
    /// Directory holding `initdb` and `postgres`; defaults to
    /// `$REHEARSE_PG_BIN`, then PATH and `/usr/lib/postgresql/*/bin`.
    pub pg_bin_dir: Option<PathBuf>,
    /// Where local clusters live; defaults to `$REHEARSE_TMPDIR`, then
    /// `/dev/shm` (tmpfs), then the system temp dir.
    pub tmp_dir: Option<PathBuf>,
    /// Bound on starting and becoming ready (pull excluded).
    pub startup_timeout: Duration,
    /// Bound on pulling a missing Docker image.
    pub pull_timeout: Duration,
    /// `max_connections` of a server this process starts (local, docker):
    /// [`DEFAULT_MAX_CONNECTIONS`] unless a run needs more. Every
    /// `pg_locks` read walks lock tables sized by it, so the lock sampler's
    /// cost grows with it (README, "Lock sampler"). The url backend's
    /// server keeps its own.
    pub max_connections: u32,
    pub run_id: RunId,
    /// The persistent template cache (local backend); `None` disables it.
    pub template_cache: Option<cache::CacheSettings>,
    /// The template a new server should come with from the cache, when an
    /// entry holds it (the key [`Postgres::template`] is called with).
    pub cached_template: Option<String>,
}

/// Postgres's own default `max_connections`, and ours: enough for about 40
/// racing replicas, or a rollout of a few replicas with a few clients
/// each, plus the harness's own connections. `rehearse run` raises it for a
/// scenario that needs more ([`crate::rehearsal::Plan::connections_needed`]).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 100;

/// Settings every server this process starts gets, whatever the backend.
/// Speed settings change timings, so `durable` (production-like) leaves
/// them out.
pub(crate) fn common_settings(options: &ProvisionOptions) -> Vec<String> {
    let mut settings = vec![format!("max_connections={}", options.max_connections)];
    if !options.durable {
        settings.extend(
            [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ]
            .map(String::from),
        );
    }
    settings
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            pg_major: None,
            database_url: None,
            durable: false,
            docker_image: None,
            pg_bin_dir: None,
            tmp_dir: None,
            startup_timeout: Duration::from_secs(60),
            pull_timeout: Duration::from_secs(300),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            run_id: RunId::new(),
            template_cache: None,
            cached_template: None,
        }
    }
}

impl ProvisionOptions {
    /// The checks of [`Postgres::start`] that need nothing but the options
    /// (a missing or malformed database url), so a command can report bad
    /// input (exit 2) before anything starts.
    pub fn check_input(&self) -> Result<(), ProvisionError> {
        let url = self
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok());
        match (self.backend, url) {
            (Backend::Url, None) => Err(ProvisionError::MissingUrl),
            (Backend::Url | Backend::Auto, Some(url)) => server::parse_url(&url).map(|_| ()),
            _ => Ok(()),
        }
    }

    #[must_use]
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    #[must_use]
    pub fn with_pg_major(mut self, major: Option<u32>) -> Self {
        self.pg_major = major;
        self
    }

    #[must_use]
    pub fn with_database_url(mut self, url: Option<String>) -> Self {
        self.database_url = url;
        self
    }

    #[must_use]
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    #[must_use]
    pub fn with_tmp_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.tmp_dir = dir;
        self
    }

    #[must_use]
    pub fn with_max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }

    #[must_use]
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }
}

/// Something a handle owns and must clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A local cluster's directory (data, socket, log).
    Directory(std::path::PathBuf),
    /// A process we started (the postmaster).
    Process(u32),
    /// A Docker container id.
    Container(String),
    /// A database created on someone else's server.
    Database(String),
}

/// `server_version` and `server_version_num` of a server.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerVersion {
    pub(crate) text: String,
    pub(crate) num: u32,
}

impl ServerVersion {
    /// Runs `before` (may be empty) and reads the version, in one round trip.
    pub(crate) async fn read(
        client: &tokio_postgres::Client,
        before: &str,
    ) -> Result<ServerVersion, tokio_postgres::Error> {
        let sql = format!(
            "{before}{sep}SELECT current_setting('server_version'), \
             current_setting('server_version_num')",
            sep = if before.is_empty() { "" } else { "; " }
        );
        let messages = client.simple_query(&sql).await?;
        let row = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        Ok(ServerVersion {
            text: row.and_then(|r| r.get(0)).unwrap_or_default().to_string(),
            num: row
                .and_then(|r| r.get(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
    }
}

// The local variant is the common one; boxing it would buy nothing.
#[expect(
    clippy::large_enum_variant,
    reason = "one per Postgres handle, never in bulk"
)]
enum Instance {
    Local(LocalCluster),
    Docker(DockerInstance),
    Server(ServerDatabase),
}

/// A throwaway Postgres: a local cluster, a container, or a database on an
/// existing server. Cleans up on drop.
pub struct Postgres {
    /// `None` once stopped. Behind a mutex so a shared handle (the test
    /// suite's server) can be stopped through `&self`.
    instance: std::sync::Mutex<Option<Instance>>,
    backend: Backend,
    conn: ConnInfo,
    version: String,
    version_num: u32,
    notes: Vec<String>,
    run_id: RunId,
    /// The persistent template cache this server saves its templates to.
    template_cache: Option<cache::CacheSettings>,
    /// Templates it came with from that cache.
    restored: Vec<cache::CachedTemplate>,
    /// Templates built on it by this process: what is worth saving.
    built: std::sync::Mutex<Vec<cache::CachedTemplate>>,
    /// Roles the cached cluster may keep: those it started with and those
    /// the template builds created. Roles are server-wide, so any other
    /// role (made by a race, a reference run or a trace) must not reach
    /// the template cache, where the next run would meet it.
    template_roles: std::sync::Mutex<Option<std::collections::BTreeSet<String>>>,
}

impl Postgres {
    /// Starts (or, for the url backend, creates) a throwaway Postgres.
    pub async fn start(options: &ProvisionOptions) -> Result<Postgres, ProvisionError> {
        let mut notes = Vec::new();
        let backend = match options.backend {
            Backend::Auto => choose_auto(options, &mut notes).await?,
            other => other,
        };
        // Each backend reads the version on the connection it made anyway
        // to check readiness: another connection would cost ~40 ms.
        let (instance, conn, version) = match backend {
            Backend::Local => {
                let cluster = LocalCluster::start(options).await?;
                let (conn, version) = (cluster.conn().clone(), cluster.version().clone());
                (Instance::Local(cluster), conn, version)
            }
            Backend::Docker => {
                let container = DockerInstance::start(options).await?;
                let (conn, version) = (container.conn().clone(), container.version().clone());
                (Instance::Docker(container), conn, version)
            }
            Backend::Url => {
                let database = ServerDatabase::create(options).await?;
                let (conn, version) = (database.conn().clone(), database.version().clone());
                (Instance::Server(database), conn, version)
            }
            Backend::Auto => unreachable!("auto resolved above"),
        };
        let restored = match &instance {
            Instance::Local(cluster) => cluster.restored().to_vec(),
            _ => Vec::new(),
        };
        let postgres = Postgres {
            template_cache: options.template_cache.clone(),
            restored,
            built: std::sync::Mutex::new(Vec::new()),
            template_roles: std::sync::Mutex::new(None),
            instance: std::sync::Mutex::new(Some(instance)),
            backend,
            conn,
            version: version.text,
            version_num: version.num,
            notes,
            run_id: options.run_id.clone(),
        };
        // The roles a cached cluster may keep start with those it has now.
        if postgres.template_cache.is_some()
            && backend == Backend::Local
            && let Ok(roles) = postgres.role_names().await
        {
            *postgres
                .template_roles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(roles);
        }
        if let Some(wanted) = options.pg_major
            && postgres.major() != wanted
            && backend != Backend::Url
        {
            return Err(ProvisionError::VersionMismatch {
                wanted,
                found: postgres.version.clone(),
            });
        }
        Ok(postgres)
    }

    /// Connection settings of the throwaway database.
    #[must_use]
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// The backend actually used (never `Auto`).
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `server_version`, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The major version, e.g. 15.
    #[must_use]
    pub fn major(&self) -> u32 {
        self.version_num / 10_000
    }

    /// Why auto chose what it chose, one line each.
    #[must_use]
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    #[must_use]
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// What this handle owns right now, for checks that nothing leaks.
    #[must_use]
    pub fn resources(&self) -> Vec<Resource> {
        match &*self.lock_instance() {
            Some(Instance::Local(cluster)) => cluster.resources(),
            Some(Instance::Docker(container)) => container.resources(),
            Some(Instance::Server(database)) => database.resources(),
            None => Vec::new(),
        }
    }

    /// A short description for humans: backend, version, where.
    #[must_use]
    pub fn describe(&self) -> String {
        let detail = match &*self.lock_instance() {
            Some(Instance::Local(cluster)) => format!("binaries {}", cluster.bin_dir().display()),
            Some(Instance::Docker(container)) => format!("image {}", container.image()),
            Some(Instance::Server(_)) => "existing server".to_string(),
            None => "stopped".to_string(),
        };
        format!(
            "{} backend, postgres {}, {}, {}",
            self.backend,
            self.version,
            detail,
            self.conn.display_url()
        )
    }

    /// Stops the server (local, docker) or drops every database this handle
    /// created (url), reporting errors instead of swallowing them.
    pub async fn shutdown(self) -> Result<(), ProvisionError> {
        self.stop().await
    }

    /// Like [`Postgres::shutdown`], through a shared reference; later calls
    /// do nothing.
    pub async fn stop(&self) -> Result<(), ProvisionError> {
        let to_cache = self.templates_to_cache().await;
        let instance = self.lock_instance().take();
        match instance {
            Some(Instance::Local(cluster)) => match (to_cache, &self.template_cache) {
                (Some(templates), Some(settings)) => {
                    let count = templates.len();
                    let run_id = self.run_id.clone();
                    let settings = settings.clone();
                    let saved = tokio::task::spawn_blocking(move || {
                        cluster.stop_into_cache(&settings, &run_id, templates)
                    })
                    .await
                    .map_err(|e| ProvisionError::Local(format!("cache task failed: {e}")))??;
                    // A cache that cannot be written costs the next run
                    // time, not this run its result: say so and go on.
                    match saved {
                        Ok(entry) => eprintln!(
                            "rehearse: template cache: saved {count} template(s) in {}",
                            entry.display()
                        ),
                        Err(e) => eprintln!("rehearse: template cache: {e}"),
                    }
                    Ok(())
                }
                _ => cluster.stop(),
            },
            Some(Instance::Docker(container)) => container.stop().await,
            Some(Instance::Server(database)) => database.drop_all().await,
            None => Ok(()),
        }
    }

    fn sql_error(&self, operation: &str, error: &tokio_postgres::Error) -> ProvisionError {
        ProvisionError::Sql {
            operation: operation.to_string(),
            target: self.conn.display_url(),
            message: describe_pg_error(error),
        }
    }

    /// Records a database this handle must drop on cleanup (url backend);
    /// on servers of its own the whole server goes away anyway.
    fn track_database(&self, name: &str) {
        if let Some(Instance::Server(database)) = &*self.lock_instance() {
            database.track(name);
        }
    }

    /// Records a role the run's migrations created on a user's server, to
    /// drop at cleanup (url backend only).
    fn track_role(&self, name: &str) {
        if let Some(Instance::Server(database)) = &*self.lock_instance() {
            database.track_role(name);
        }
    }

    fn untrack_database(&self, name: &str) {
        if let Some(Instance::Server(database)) = &*self.lock_instance() {
            database.untrack(name);
        }
    }

    fn lock_instance(&self) -> std::sync::MutexGuard<'_, Option<Instance>> {
        // A panic while holding this lock cannot leave the Option in a
        // half-updated state, so a poisoned lock is still usable.
        self.instance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Auto: Docker when a daemon answers and the image is usable, otherwise
/// local binaries, otherwise one error naming every remedy.
async fn choose_auto(
    options: &ProvisionOptions,
    notes: &mut Vec<String>,
) -> Result<Backend, ProvisionError> {
    if options.database_url.is_some() {
        notes.push("auto: using the server from --database-url / DATABASE_URL".into());
        return Ok(Backend::Url);
    }
    let docker_reason = match docker::probe(options).await {
        Ok(()) => return Ok(Backend::Docker),
        Err(e) => e.to_string(),
    };
    match PgBinaries::find(options.pg_bin_dir.as_deref(), options.pg_major) {
        Ok(_) => {
            notes.push(format!(
                "auto: using local binaries because {docker_reason}"
            ));
            Ok(Backend::Local)
        }
        Err(local) => Err(ProvisionError::NoBackend {
            docker: docker_reason,
            local: local.to_string(),
        }),
    }
}

/// Quotes an identifier for SQL (`"a""b"`).
#[must_use]
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL (`'it''s'`).
#[must_use]
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A random password of letters and digits.
pub(crate) fn random_password() -> String {
    use rand::RngExt;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// How many cleanups failed in this process: the signal path says "cleaned
/// up" only when none did.
static CLEANUP_FAILURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Reports a cleanup that failed (in a `Drop`, where it cannot be returned).
pub(crate) fn cleanup_failed(error: &dyn std::fmt::Display) {
    eprintln!("rehearse: cleanup: {error}");
    CLEANUP_FAILURES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Whether any cleanup of this process failed so far (something may be
/// left behind that `rehearse gc` removes).
#[must_use]
pub fn cleanup_incomplete() -> bool {
    CLEANUP_FAILURES.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Runs a cleanup future to completion from synchronous code (a `Drop`),
/// whether or not a Tokio runtime is running on this thread: on a fresh
/// thread with its own runtime, so it can neither deadlock a current-thread
/// runtime nor be cancelled with it.
pub(crate) fn block_on_cleanup<F>(future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let worker = std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(future),
            Err(e) => cleanup_failed(&format!("could not start a runtime: {e}")),
        }
    });
    let _ = worker.join();
}
