//! SIGINT and SIGTERM at several points of the first second of
//! `rehearse provision` (cache build, copy, start, ready) on the local and
//! Docker backends leave nothing behind; after SIGKILL, `rehearse gc`
//! removes what was left. The url backend's sweep is in reliability_url.rs.
//!
//! One test per backend, each a bounded number of runs (8 signals, one
//! SIGKILL): `gc` sweeps every orphan, so these run one after the other.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");
/// Signal points, from before the handler is installed to a ready server.
const DELAYS_MS: [u64; 4] = [0, 150, 400, 900];

fn tmp_root() -> tempfile::TempDir {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    tmp
}

fn spawn(backend: &str, tmp: &Path) -> Child {
    Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["provision", "--backend", backend])
        .env("REHEARSE_TMPDIR", tmp)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse provision")
}

fn wait_exit(child: &mut Child, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rehearse did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    (code, stderr)
}

/// What of a run is left under a temp root: instance folders, cache
/// builds in progress (the finished cache is meant to stay).
fn leftovers(tmp: &Path) -> Vec<PathBuf> {
    let mut left: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("rehearse-cache"))
        .collect();
    if let Ok(cache) = std::fs::read_dir(tmp.join("rehearse-cache")) {
        left.extend(
            cache
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(".build-")),
        );
    }
    left
}

/// Live processes (not zombies) whose command line names `tmp`.
fn processes_on(tmp: &Path) -> Vec<String> {
    let needle = tmp.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| stat.rfind(')').map(|i| stat[i + 2..].starts_with('Z')))
            .unwrap_or(true);
        if cmdline.contains(&needle) && !zombie {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// Containers (any state) whose owner label names `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "--filter", "label=dev.rehearse.managed=true"])
        .args(["--format", "{{.ID}} {{.Label \"dev.rehearse.owner\"}}"])
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&format!("\"pid\":{pid},")))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded) until `check` returns nothing; returns what was left.
fn settle<T: std::fmt::Debug>(check: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = check();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn backend_available(backend: &str) -> bool {
    let available = match backend {
        "local" => pg_rehearse::provision::PgBinaries::find(None, None)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).into_owned())
                }
            }),
    };
    match available {
        Ok(()) => true,
        Err(reason) => {
            let _: Option<()> =
                pg_rehearse::testing::skip(&format!("the {backend} backend"), &reason);
            false
        }
    }
}

fn sweep(backend: &str) {
    if !backend_available(backend) {
        return;
    }
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        for delay_ms in DELAYS_MS {
            // A fresh root each time: the early points hit the first
            // cache build (initdb), the later ones the copy and start.
            let tmp = tmp_root();
            let mut child = spawn(backend, tmp.path());
            let pid = child.id();
            std::thread::sleep(Duration::from_millis(delay_ms));
            kill(Pid::from_raw(pid as i32), signal).unwrap();
            let (code, stderr) = wait_exit(&mut child, Duration::from_secs(60));
            let at = format!("{backend}: {signal} at {delay_ms} ms");
            assert_eq!(code, 128 + signal as i32, "{at}: {stderr}");
            assert!(!stderr.contains("panicked"), "{at}: {stderr}");
            assert!(!stderr.contains("cleanup incomplete"), "{at}: {stderr}");
            assert_eq!(
                leftovers(tmp.path()),
                Vec::<PathBuf>::new(),
                "{at}: {stderr}"
            );
            assert_eq!(
                settle(|| processes_on(tmp.path())),
                Vec::<String>::new(),
                "{at}: processes left"
            );
            if backend == "docker" {
                assert_eq!(containers_of(pid), Vec::<String>::new(), "{at}: {stderr}");
            }
        }
    }
    // SIGKILL in the middle of a first start, then gc --tmp-dir (the
    // root is not one gc looks at by default).
    for delay_ms in [300, 1500] {
        let tmp = tmp_root();
        let mut child = Command::new(BIN)
            // The user's template cache is not the tests' to read or fill.
            .env("REHEARSE_NO_CACHE", "1")
            .args(["provision", "--backend", backend, "--tmp-dir"])
            .arg(tmp.path())
            .env_remove("DATABASE_URL")
            .env_remove("REHEARSE_TMPDIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let output = Command::new(BIN)
            // The user's template cache is not the tests' to read or fill.
            .env("REHEARSE_NO_CACHE", "1")
            .args(["gc", "--tmp-dir"])
            .arg(tmp.path())
            .env_remove("REHEARSE_TMPDIR")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let at = format!("{backend}: SIGKILL at {delay_ms} ms, then gc");
        assert_eq!(output.status.code(), Some(0), "{at}: {stdout}{stderr}");
        assert_eq!(
            leftovers(tmp.path()),
            Vec::<PathBuf>::new(),
            "{at}: {stdout}"
        );
        assert_eq!(
            settle(|| processes_on(tmp.path())),
            Vec::<String>::new(),
            "{at}: processes left"
        );
        if backend == "docker" {
            assert_eq!(containers_of(pid), Vec::<String>::new(), "{at}: {stdout}");
        }
    }
}

/// Local then Docker, in one test: gc sweeps every orphan of both.
#[test]
fn signals_and_sigkill_leave_nothing_on_local_and_docker() {
    sweep("local");
    sweep("docker");
}

/// A migration of 20,000 statements: the replicas, then the post-race
/// checks and the per-statement lock trace, grind through all of them
/// (about 5 s of race and 28 s of trace in a debug build on 2 cores, so
/// the signal lands in the post-race work there, in the race on a slower
/// machine). SIGTERM in the middle of that work still ends the run
/// promptly (exit 143), and nothing of it is left.
#[test]
fn sigterm_during_the_work_on_a_huge_migration_is_honoured_and_leaves_nothing() {
    if !backend_available("local") {
        return;
    }
    let tmp = tmp_root();
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    let mut huge = String::with_capacity(20_000 * 32);
    for i in 0..20_000 {
        huge.push_str(&format!("INSERT INTO t VALUES ({i});\n"));
    }
    std::fs::write(migrations.join("0002_huge.sql"), huge).unwrap();
    let scenario = dir.path().join("huge.toml");
    std::fs::write(
        &scenario,
        "name = \"huge\"\n[migrations]\ndir = \"migrations\"\nbaseline = \"0001\"\n\
         [replicas]\ncount = 2\ntimeout_s = 600\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["run", "--backend", "local", "--quiet"])
        .arg(&scenario)
        .env("REHEARSE_TMPDIR", tmp.path())
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Past the race, into the post-race checks and the trace, on this
    // kind of machine.
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the signal: the migration is too small to test this"
    );
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    // Bounded: a hang turns into a failure, not a speed assertion.
    let (code, stderr) = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(code, 143, "{stderr}");
    assert_eq!(leftovers(tmp.path()), Vec::<PathBuf>::new(), "{stderr}");
    assert_eq!(
        settle(|| processes_on(tmp.path())),
        Vec::<String>::new(),
        "processes left: {stderr}"
    );
}
