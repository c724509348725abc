//! Support for `cargo test`: throwaway databases for tests.
//!
//! One shared Postgres per test binary (started on first use, stopped when
//! the process exits), and a fresh database or template clone per test, so
//! tests run in parallel without seeing each other. The backend comes from
//! `REHEARSE_TEST_BACKEND` (`local` by default: the fastest; `docker`,
//! `url` with `DATABASE_URL`, or `auto`).
//!
//! A test that cannot get a backend fails under `CI=true` and prints a loud
//! skip elsewhere: it never passes silently.

use std::sync::{Arc, Mutex, OnceLock};

use crate::provision::{Backend, ConnInfo, Postgres, ProvisionError, ProvisionOptions};

/// Environment variable choosing the shared server's backend.
pub const TEST_BACKEND_ENV: &str = "REHEARSE_TEST_BACKEND";

/// A fresh database for one test.
pub struct TestDatabase {
    conn: ConnInfo,
    server: Arc<Postgres>,
}

impl TestDatabase {
    /// Connection settings of this database.
    #[must_use]
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// A new connection to this database (panics with the reason if it
    /// cannot connect: this is test support).
    pub async fn connect(&self) -> tokio_postgres::Client {
        match self.conn.connect("rehearse-test").await {
            Ok(client) => client,
            Err(e) => panic!("connecting to the test database: {e}"),
        }
    }

    /// The shared server this database lives on (for templates and clones).
    #[must_use]
    pub fn server(&self) -> &Arc<Postgres> {
        &self.server
    }
}

/// Whether this is a CI run, where a missing backend is a failure.
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Fails the test under CI, otherwise prints a loud skip. Returns `None` so
/// callers can `let Some(x) = ... else { return; }`.
pub fn skip<T>(what: &str, reason: &dyn std::fmt::Display) -> Option<T> {
    if in_ci() {
        panic!("{what} is required under CI=true, but: {reason}");
    }
    // Written to the stderr handle directly: libtest captures only the
    // print macros, so this shows even for a passing test.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("\n!!!!! SKIPPED: {what} unavailable: {reason} (under CI=true this fails) !!!!!\n")
            .as_bytes(),
    );
    None
}

/// Starts a Postgres for a backend-specific test; `None` after a loud skip
/// (or a panic under CI) when the backend is missing on this machine. Other
/// failures panic: they are real bugs.
pub async fn start_or_skip(options: &ProvisionOptions) -> Option<Postgres> {
    match Postgres::start(options).await {
        Ok(postgres) => Some(postgres),
        Err(e) if is_unavailable(&e) => skip(&format!("the {} backend", options.backend), &e),
        Err(e) => panic!("starting the {} backend failed: {e}", options.backend),
    }
}

/// Errors that mean "this machine lacks the backend", not "the harness is broken".
fn is_unavailable(error: &ProvisionError) -> bool {
    matches!(
        error,
        ProvisionError::DockerUnavailable(_)
            | ProvisionError::ImageUnavailable { .. }
            | ProvisionError::NoBinaries(_)
            | ProvisionError::MissingUrl
            | ProvisionError::NoBackend { .. }
    )
}

/// The backend the shared server uses.
#[must_use]
pub fn test_backend() -> Backend {
    match std::env::var(TEST_BACKEND_ENV).as_deref() {
        Ok("docker") => Backend::Docker,
        Ok("url") => Backend::Url,
        Ok("auto") => Backend::Auto,
        _ => Backend::Local,
    }
}

/// The shared server, started on first use. `Err` carries why it could not
/// start (the same reason for every later caller).
type Shared = Result<Arc<Postgres>, String>;

static SHARED: OnceLock<Shared> = OnceLock::new();

/// `max_connections` of the shared server: a test binary's tests rehearse
/// on it at once, each with its replicas and clients.
pub const SHARED_MAX_CONNECTIONS: u32 = 300;
static SHUTDOWN: Mutex<Option<std::sync::mpsc::Sender<()>>> = Mutex::new(None);
static STOPPED: Mutex<Option<std::sync::mpsc::Receiver<()>>> = Mutex::new(None);

/// The shared server of this test binary, or `None` after a loud skip.
pub fn shared_server() -> Option<Arc<Postgres>> {
    match SHARED.get_or_init(start_shared) {
        Ok(server) => Some(Arc::clone(server)),
        Err(reason) => skip(&format!("a {} Postgres for tests", test_backend()), reason),
    }
}

/// A fresh, empty database on the shared server; `None` after a loud skip.
pub async fn fresh_database() -> Option<TestDatabase> {
    let server = shared_server()?;
    match server.create_database(None).await {
        Ok(conn) => Some(TestDatabase { conn, server }),
        Err(e) => panic!("creating a test database: {e}"),
    }
}

/// Starts the shared server on a thread of its own whose runtime lives as
/// long as the process (a Docker client must not outlive the runtime that
/// made it), and registers its shutdown at process exit.
fn start_shared() -> Shared {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Shared>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel::<()>();
    let options = ProvisionOptions::default()
        .with_backend(test_backend())
        // The tests of a binary run at once on this one server.
        .with_max_connections(SHARED_MAX_CONNECTIONS)
        .with_database_url(
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|_| test_backend() == Backend::Url),
        );
    std::thread::Builder::new()
        .name("rehearse-test-server".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("no runtime: {e}")));
                    return;
                }
            };
            let started = runtime.block_on(Postgres::start(&options));
            let server = match started {
                Ok(server) => Arc::new(server),
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(Arc::clone(&server)));
            // Wait for process exit (the atexit hook), then clean up here,
            // on the runtime that started it.
            let _ = stop_rx.recv();
            if let Err(e) = runtime.block_on(server.stop()) {
                eprintln!("rehearse: stopping the shared test server: {e}");
            }
            let _ = stopped_tx.send(());
        })
        .map_err(|e| format!("cannot spawn the server thread: {e}"))?;
    let result = ready_rx
        .recv()
        .unwrap_or_else(|_| Err("the server thread died while starting".into()));
    if result.is_ok() {
        *SHUTDOWN.lock().expect("not poisoned") = Some(stop_tx);
        *STOPPED.lock().expect("not poisoned") = Some(stopped_rx);
        // SAFETY: `atexit` registers a plain `extern "C" fn` with no
        // arguments; it runs once, at normal process exit.
        unsafe {
            libc::atexit(stop_shared_at_exit);
        }
    }
    result
}

extern "C" fn stop_shared_at_exit() {
    // Statics are never dropped, so the shared handle would outlive the
    // process: ask its thread to stop it, and wait (bounded).
    if let Some(stop) = SHUTDOWN.lock().ok().and_then(|mut s| s.take()) {
        let _ = stop.send(());
        if let Some(stopped) = STOPPED.lock().ok().and_then(|mut s| s.take()) {
            let _ = stopped.recv_timeout(std::time::Duration::from_secs(30));
        }
    }
}
