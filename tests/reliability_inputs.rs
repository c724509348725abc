//! Hostile input is refused fast, with the file and line where it has
//! one, and the documented exit code (src/exit.rs). Each run has a
//! generous deadline that turns a hang into a failure.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");

/// Runs the binary with a deadline: (code, stdout, stderr).
fn rehearse(args: &[&str], limit: Duration) -> (i32, String, String) {
    let child = Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse");
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

fn scenario(dir: &Path, file: &str, name: &str) -> std::path::PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!("name = \"{name}\"\n[migrations]\ndir = \"migrations\"\n"),
    )
    .unwrap();
    path
}

/// Loops through links (to an ancestor, to itself) and a second link to
/// the same scenario: discovery ends, lists the scenario once, and the bad
/// scenario beside it is what gets reported.
#[test]
fn symlink_loops_in_a_scenarios_folder_end_fast() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("scenarios");
    let inner = root.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    symlink(&root, inner.join("up")).unwrap();
    symlink(&inner, inner.join("self")).unwrap();
    symlink(&root, root.join("again")).unwrap();
    // Invalid on purpose (empty name), so the run stops at loading and
    // needs no backend: the error must appear exactly once.
    scenario(&inner, "bad.toml", "");
    let (code, _, stderr) = rehearse(&["run", root.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.matches("`name` must not be empty").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("bad.toml:1:"), "{stderr}");
}

#[test]
fn an_over_long_scenario_name_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "long.toml", &"n".repeat(65_536));
    let (code, stdout, stderr) =
        rehearse(&["run", path.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("long.toml:1:"), "{stderr}");
    assert!(stderr.contains("at most 200"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A missing or malformed database url is bad input (2) in `run` as in
/// `provision`, without the password.
#[test]
fn a_bad_database_url_is_exit_2_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "ok.toml", "ok");
    let path = path.to_str().unwrap();
    let bad = "postgres://alice:canaryPw-31@127.0.0.1:notaport/db";
    for args in [
        vec!["run", path, "--backend", "url"],
        vec!["run", path, "--backend", "url", "--database-url", bad],
        vec!["provision", "--backend", "url"],
        vec!["provision", "--backend", "url", "--database-url", bad],
        vec![
            "run",
            path,
            "--backend",
            "url",
            "--database-url",
            "postgres://u@127.0.0.1/db?sslmode=allow",
        ],
        vec!["gc", "--database-url", bad],
    ] {
        let (code, stdout, stderr) = rehearse(&args, Duration::from_secs(30));
        assert_eq!(code, 2, "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains("database url"), "{args:?}: {stderr}");
        assert!(!stderr.contains("canaryPw-31"), "{stderr}");
    }
}

/// A baseline migration that never ends is bounded by the scenario's
/// `[replicas] timeout_s`, and its session ends with the run.
#[test]
fn a_baseline_that_never_ends_is_bounded_by_timeout_s() {
    if pg_rehearse::provision::PgBinaries::find(None, None).is_err() {
        let _: Option<()> = pg_rehearse::testing::skip("local postgres binaries", &"none found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_sleep.sql"),
        "SELECT pg_sleep(100000);\n",
    )
    .unwrap();
    std::fs::write(migrations.join("0002_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    let path = dir.path().join("slow.toml");
    std::fs::write(
        &path,
        "name = \"slow baseline\"\n[migrations]\ndir = \"migrations\"\nbaseline = \"0001\"\n\
         [replicas]\ncount = 1\ntimeout_s = 2\n",
    )
    .unwrap();
    let (code, stdout, stderr) = rehearse(
        &["run", path.to_str().unwrap(), "--backend", "local"],
        Duration::from_secs(90),
    );
    assert_eq!(code, 3, "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    // The summary wraps long lines: compare with white space folded.
    let folded = all.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(folded.contains("did not finish within 2 s"), "{all}");
}

/// A migration that creates a role (server-wide): the serial reference run
/// is not tripped by the race's role ("role already exists" made a false
/// schema drift), and the role's password reaches no output or report.
#[test]
fn roles_created_by_the_race_do_not_break_the_reference_and_stay_secret() {
    if pg_rehearse::provision::PgBinaries::find(None, None).is_err() {
        let _: Option<()> = pg_rehearse::testing::skip("local postgres binaries", &"none found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        migrations.join("0002_role.sql"),
        "CREATE ROLE app_reader LOGIN PASSWORD 'canarySecret-9';\n\
         GRANT SELECT ON t TO app_reader;\n",
    )
    .unwrap();
    let path = dir.path().join("role.toml");
    std::fs::write(
        &path,
        "name = \"role\"\n[migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\n\
         baseline = \"0001\"\n[replicas]\ncount = 2\nrunner = \"job\"\n\
         [expect]\nallow = [\"missing-lock-timeout\", \"lock-lint\"]\n",
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let target = format!("json={}", report.display());
    let (code, stdout, stderr) = rehearse(
        &[
            "run",
            path.to_str().unwrap(),
            "--backend",
            "local",
            "--report",
            &target,
        ],
        Duration::from_secs(120),
    );
    let json = std::fs::read_to_string(&report).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}{stderr}{json}");
    assert!(!json.contains("schema-drift"), "{json}");
    for text in [&stdout, &stderr, &json] {
        assert!(
            !text.contains("canarySecret-9"),
            "the password leaked: {text}"
        );
    }
    assert!(json.contains("PASSWORD '[redacted]'"), "{json}");
}

/// A NUL byte in a migration is refused when the files are loaded, with
/// its file and line, before anything starts.
#[test]
fn a_nul_byte_in_a_migration_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "nul.toml", "nul");
    std::fs::write(
        dir.path().join("migrations/0002_nul.sql"),
        "-- fine\nSELECT 'a\0b';\n",
    )
    .unwrap();
    let (code, stdout, stderr) = rehearse(
        &["run", path.to_str().unwrap(), "--backend", "local"],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("0002_nul.sql:2: a NUL byte"), "{stderr}");
}

/// An error inside a workload file names that file and line, and the
/// scenario key that brought it in.
#[test]
fn a_workload_error_names_the_scenario_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "w.toml", "w");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("[workloads]\nold = \"old.toml\"\n");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.path().join("old.toml"), "clients = 0\n").unwrap();
    let (code, _, stderr) = rehearse(&["run", path.to_str().unwrap()], Duration::from_secs(30));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("old.toml:1:"), "{stderr}");
    assert!(stderr.contains("`workloads.old`"), "{stderr}");
}

/// A `.sql` file whose name fits no layout is warned about, not skipped
/// silently; well-named files are not.
#[test]
fn misnamed_migration_files_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let path = scenario(dir.path(), "warn.toml", "warn");
    std::fs::write(dir.path().join("migrations/add_index.sql"), "SELECT 1;\n").unwrap();
    // A malformed url stops the run right after loading (exit 2), so no
    // backend is needed to see the warning.
    let (code, _, stderr) = rehearse(
        &[
            "run",
            path.to_str().unwrap(),
            "--backend",
            "url",
            "--database-url",
            "postgres://u@127.0.0.1:notaport/x",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("add_index.sql: the name fits no migration layout"),
        "{stderr}"
    );
    assert!(!stderr.contains("0001_init.sql: the name"), "{stderr}");
}

/// A seed that cannot exist (100,000 rows under a unique boolean) is
/// refused before loading, naming the seeds file and the `rows` line,
/// as bad input; it used to end in a unique violation mid-load (exit 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_seed_names_the_seeds_file_and_line() {
    use pg_rehearse::seed::{SeedOptions, SeedSpec, seed_database};
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE flags (id int, on_off boolean NOT NULL UNIQUE)")
        .await
        .unwrap();
    let spec = SeedSpec::parse(
        "[tables.flags]\nrows = 100000\n",
        Path::new("seeds/flags.toml"),
    )
    .unwrap();
    let options = SeedOptions {
        progress: false,
        ..SeedOptions::default()
    };
    // A hang fails the test instead of stalling it.
    let error = tokio::time::timeout(
        Duration::from_secs(120),
        seed_database(db.conn(), Some(&spec), &options),
    )
    .await
    .expect("seeding an impossible spec must end")
    .unwrap_err();
    assert!(error.is_bad_input(), "{error}");
    let text = error.to_string();
    assert!(
        text.starts_with(
            "seeds/flags.toml:2:8: tables.flags.rows: 100000 rows cannot fit unique key (on_off)"
        ),
        "{text}"
    );
}
