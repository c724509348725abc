//! The `rehearse` binary as users run it: signals leave nothing behind,
//! `gc` cleans up after SIGKILL, and bad input gets one clear line, in
//! bounded time, never with the password.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");
const CANARY: &str = "canaryPw-7d1e";

/// Runs the binary to completion with a deadline; returns (code, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
        .env_remove("DATABASE_URL")
        .env_remove("REHEARSE_DOCKER_IMAGE");
    for (key, value) in envs {
        command.env(key, value);
    }
    let child = command.spawn().expect("spawn rehearse");
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let deadline = Instant::now() + limit;
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("rehearse {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = waiter.join().unwrap().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts a failed run printed exactly one error line, no canary, and
/// exited with `code`.
fn assert_one_line_error(result: &(i32, String, String), code: i32, mentions: &str) {
    let (status, stdout, stderr) = result;
    assert_eq!(*status, code, "stdout: {stdout}\nstderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    assert!(
        errors[0].contains(mentions),
        "{:?} should mention {mentions:?}",
        errors[0]
    );
    assert!(
        !stdout.contains(CANARY) && !stderr.contains(CANARY),
        "the password was printed"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreachable_docker_host_is_one_line_in_bounded_time() {
    let result = run(
        &["provision", "--backend", "docker"],
        &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
        Duration::from_secs(30),
    );
    assert_one_line_error(&result, 3, "docker is not available");
}

#[test]
fn missing_image_is_one_line() {
    if pg_rehearse::testing::in_ci() || docker_answers() {
        let result = run(
            &[
                "provision",
                "--backend",
                "docker",
                "--docker-image",
                "rehearse-no-such-image:0",
            ],
            &[],
            Duration::from_secs(60),
        );
        assert_one_line_error(&result, 3, "rehearse-no-such-image:0");
    } else {
        let _: Option<()> = pg_rehearse::testing::skip("a docker daemon", &"no daemon answers");
    }
}

fn docker_answers() -> bool {
    Path::new("/var/run/docker.sock").exists() || std::env::var_os("DOCKER_HOST").is_some()
}

#[test]
fn missing_binaries_are_one_line() {
    let result = run(
        &[
            "provision",
            "--backend",
            "local",
            "--pg-bin",
            "/nonexistent/bin",
        ],
        &[],
        Duration::from_secs(10),
    );
    assert_one_line_error(&result, 3, "/nonexistent/bin");
}

#[test]
fn bad_database_urls_never_print_the_password() {
    let bad = format!("postgres://alice:{CANARY}@127.0.0.1:notaport/db");
    let result = run(
        &["provision", "--backend", "url", "--database-url", &bad],
        &[],
        Duration::from_secs(10),
    );
    assert_one_line_error(&result, 2, "bad database url");

    // Well-formed, but nothing listens there.
    let unreachable = format!("postgres://alice:{CANARY}@127.0.0.1:1/db");
    let result = run(
        &["provision", "--backend", "url"],
        &[("DATABASE_URL", &unreachable)],
        Duration::from_secs(30),
    );
    assert_one_line_error(&result, 3, "postgres://alice@127.0.0.1:1/db");
}

#[test]
fn unwritable_temp_dir_is_one_line() {
    let result = run(
        &[
            "provision",
            "--backend",
            "local",
            "--tmp-dir",
            "/proc/version",
        ],
        &[],
        Duration::from_secs(10),
    );
    assert_one_line_error(&result, 3, "/proc/version");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, stderr) = run(
        &["run", "--report", "xml=out.xml"],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown report format"), "{stderr}");
}

/// A `rehearse provision` child and the URL it printed.
struct Provisioned {
    child: Child,
    url: String,
    stderr: std::thread::JoinHandle<String>,
}

fn provision(backend: &str, tmp: &Path) -> Option<Provisioned> {
    let mut child = Command::new(BIN)
        .args(["provision", "--backend", backend])
        .env("REHEARSE_TMPDIR", tmp)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse provision");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let url = rx.recv_timeout(Duration::from_secs(90)).unwrap_or_default();
    if !url.starts_with("postgres://") {
        let _ = child.kill();
        let _ = child.wait();
        let err = stderr.join().unwrap_or_default();
        return pg_rehearse::testing::skip(
            &format!("`rehearse provision --backend {backend}`"),
            &err,
        );
    }
    Some(Provisioned {
        child,
        url: url.trim().to_string(),
        stderr,
    })
}

fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                128 + status.signal().unwrap_or(0)
            });
        }
        assert!(
            Instant::now() < deadline,
            "rehearse did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Instance directories left in a temp root (the cluster cache is meant to stay).
fn instance_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "rehearse-cache")
        .collect()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn port_is_closed(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_err()
}

fn containers_of(pid: u32) -> usize {
    let output = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            "label=dev.rehearse.managed=true",
        ])
        .args(["--format", "{{.Label \"dev.rehearse.owner\"}}"])
        .output();
    let Ok(output) = output else { return 0 };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|owner| owner.contains(&format!("\"pid\":{pid},")))
        .count()
}

fn signal_leaves_nothing(backend: &str, signal: Signal, expected_code: i32) {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let Some(mut provisioned) = provision(backend, tmp.path()) else {
        return;
    };
    let port = port_of(&provisioned.url);
    let pid = provisioned.child.id();
    assert!(!port_is_closed(port), "the server should answer on {port}");
    kill(Pid::from_raw(pid as i32), signal).unwrap();
    let code = wait_exit(&mut provisioned.child, Duration::from_secs(60));
    let stderr = provisioned.stderr.join().unwrap();
    assert_eq!(code, expected_code, "{stderr}");
    assert!(
        port_is_closed(port),
        "port {port} still answers after {signal}"
    );
    assert_eq!(
        instance_dirs(tmp.path()),
        Vec::<String>::new(),
        "left behind after {signal}"
    );
    if backend == "docker" {
        assert_eq!(
            containers_of(pid),
            0,
            "a container was left behind after {signal}"
        );
    }
}

#[test]
fn local_provision_cleans_up_on_sigint_and_sigterm() {
    signal_leaves_nothing("local", Signal::SIGINT, 130);
    signal_leaves_nothing("local", Signal::SIGTERM, 143);
}

#[test]
fn docker_provision_cleans_up_on_sigint_and_sigterm() {
    signal_leaves_nothing("docker", Signal::SIGINT, 130);
    signal_leaves_nothing("docker", Signal::SIGTERM, 143);
}

fn sigkill_then_gc(backend: &str) {
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let Some(mut provisioned) = provision(backend, tmp.path()) else {
        return;
    };
    let port = port_of(&provisioned.url);
    let pid = provisioned.child.id();
    provisioned.child.kill().unwrap();
    provisioned.child.wait().unwrap();
    assert!(
        !port_is_closed(port),
        "after SIGKILL the orphan still runs (that is what gc is for)"
    );
    let tmp_env = tmp.path().to_string_lossy().into_owned();
    let (code, stdout, stderr) = run(
        &["gc"],
        &[("REHEARSE_TMPDIR", tmp_env.as_str())],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("removed"), "{stdout}");
    // The postmaster is reparented to PID 1 once we die; gc stops it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port_is_closed(port) {
        assert!(
            Instant::now() < deadline,
            "orphan on port {port} survived gc"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(instance_dirs(tmp.path()), Vec::<String>::new());
    if backend == "docker" {
        assert_eq!(containers_of(pid), 0, "gc left the orphaned container");
    }
}

/// One test, local then Docker in turn: every `gc` sweeps all orphans, so
/// two of these running at once would remove each other's.
#[test]
fn gc_removes_orphans_after_sigkill() {
    sigkill_then_gc("local");
    sigkill_then_gc("docker");
}
