//! The url backend under signals and SIGKILL: a throwaway database on a
//! user's server never outlives the run, and `rehearse gc --database-url`
//! drops what a killed run left, never anything else.
//!
//! The "user's server" is a local cluster this test starts.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pg_rehearse::provision::{Backend, Postgres, ProvisionOptions};

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");

async fn user_server() -> Option<Postgres> {
    pg_rehearse::testing::start_or_skip(&ProvisionOptions::default().with_backend(Backend::Local))
        .await
}

/// `rehearse_*` databases on the server, with their template flags.
async fn leftovers(server: &Postgres) -> Vec<(String, bool)> {
    let client = server.conn().connect("test").await.unwrap();
    client
        .query(
            "SELECT datname, datistemplate FROM pg_database \
             WHERE datname LIKE 'rehearse%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn spawn_provision(url: &str) -> Child {
    Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["provision", "--backend", "url", "--database-url", url])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse provision")
}

/// Waits for the child with a deadline (a hang fails the test); returns the
/// exit code, or 128 + signal when a signal ended it.
fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            return status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rehearse did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn read_url_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default()
}

/// SIGINT and SIGTERM at four points of the first second (before, during
/// and after the CREATE DATABASE): nothing is left on the server, and the
/// closing line only says "cleaned up" when that is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_in_the_first_second_leave_no_database() {
    let Some(server) = user_server().await else {
        return;
    };
    let url = server.conn().url_with_password();
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        for delay_ms in [0_u64, 40, 120, 700] {
            let mut child = spawn_provision(&url);
            std::thread::sleep(Duration::from_millis(delay_ms));
            kill(Pid::from_raw(child.id() as i32), signal).unwrap();
            let code = wait_exit(&mut child, Duration::from_secs(30));
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            // 130/143 once the handler is installed; killed by the signal
            // itself before that (nothing created yet).
            let expected = 128 + signal as i32;
            assert_eq!(code, expected, "{signal} at {delay_ms} ms: {stderr}");
            let left = leftovers(&server).await;
            assert_eq!(
                left,
                Vec::<(String, bool)>::new(),
                "{signal} at {delay_ms} ms left databases; stderr: {stderr}"
            );
            assert!(!stderr.contains("cleanup incomplete"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    server.shutdown().await.unwrap();
}

/// After SIGKILL the database stays (nothing can run in a killed
/// process); `gc --database-url` drops it, a template too, and leaves a
/// user's `rehearse_*` database and a live run's database alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_drops_what_a_killed_run_left_and_nothing_else() {
    let Some(server) = user_server().await else {
        return;
    };
    let url = server.conn().url_with_password();
    let admin = server.conn().connect("test").await.unwrap();
    // A user's database that merely looks like ours, and one marked by a
    // run that still lives (this test process).
    let live_marker = serde_json::json!({
        "rehearse": "throwaway database",
        "pid": std::process::id(),
        "start_ticks": 0,
        "run_id": "0000000000aa",
        "host": nix::unistd::gethostname().unwrap().into_string().unwrap(),
    });
    admin
        .batch_execute("CREATE DATABASE rehearse_users_own")
        .await
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE rehearse_0000000000aa_live")
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "COMMENT ON DATABASE rehearse_0000000000aa_live IS '{live_marker}'"
        ))
        .await
        .unwrap();

    let mut child = spawn_provision(&url);
    let line = read_url_line(&mut child);
    assert!(line.starts_with("postgres://"), "no url printed: {line:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let killed: Vec<String> = leftovers(&server)
        .await
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name != "rehearse_users_own" && name != "rehearse_0000000000aa_live")
        .collect();
    assert_eq!(killed.len(), 1, "the killed run's database: {killed:?}");
    // Left as a template would be after a build (IS_TEMPLATE, no
    // connections): gc must un-template it to drop it.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
            killed[0]
        ))
        .await
        .unwrap();

    let output = Command::new(BIN)
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["gc", "--database-url", &url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("dropped database {}", killed[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains("left database rehearse_users_own alone"),
        "{stdout}"
    );
    let password = server.conn().password().unwrap_or("no password");
    assert!(!stdout.contains(password) && !stderr.contains(password));
    assert_eq!(
        leftovers(&server).await,
        vec![
            ("rehearse_0000000000aa_live".to_string(), false),
            ("rehearse_users_own".to_string(), false),
        ]
    );
    server.shutdown().await.unwrap();
}

/// Every role on the server, sorted.
async fn role_names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT rolname FROM pg_roles ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A migration that creates a role (server-wide) on a user's server: the
/// race's role is set aside so the serial reference run can create it
/// again (no false schema drift, no halt), both are dropped at cleanup, a
/// user's role with the same prefix is untouched, and the password reaches
/// no output or report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_created_by_a_run_do_not_outlive_it_on_a_users_server() {
    let Some(server) = user_server().await else {
        return;
    };
    let url = server.conn().url_with_password();
    let admin = server.conn().connect("test").await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE app_reader_keep LOGIN PASSWORD 'keep-pw'; \
             COMMENT ON ROLE app_reader_keep IS 'the user''s own'",
        )
        .await
        .unwrap();
    let before = role_names(&admin).await;

    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        migrations.join("0002_role.sql"),
        "CREATE ROLE app_reader LOGIN PASSWORD 'canaryUrlSecret-7';\n\
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
    let mut child = Command::new(BIN)
        .args([
            "run",
            path.to_str().unwrap(),
            "--backend",
            "url",
            "--database-url",
            &url,
            "--report",
            &target,
        ])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse run");
    let code = wait_exit(&mut child, Duration::from_secs(120));
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = std::fs::read_to_string(&report).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}{stderr}{json}");
    assert!(!json.contains("schema-drift"), "{json}");
    assert!(!json.contains("rollout-halt"), "{json}");
    for text in [&stdout, &stderr, &json] {
        assert!(
            !text.contains("canaryUrlSecret-7"),
            "the password leaked: {text}"
        );
    }

    // Exactly the roles of before: the race's (set aside) and the
    // reference run's are gone, the user's own is still there.
    assert_eq!(role_names(&admin).await, before);
    let comment: Option<String> = admin
        .query_one(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles \
             WHERE rolname = 'app_reader_keep'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(comment.as_deref(), Some("the user's own"));
    assert!(leftovers(&server).await.is_empty());
    admin
        .batch_execute("DROP ROLE app_reader_keep")
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

/// `rehearse gc --database-url` drops the roles a dead run's migrations
/// created (marked by a comment naming the run), reports one a grant keeps
/// alive with the SQL to remove it, and leaves a live run's role and a
/// user's role alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_drops_a_dead_runs_roles_and_nothing_else() {
    let Some(server) = user_server().await else {
        return;
    };
    let url = server.conn().url_with_password();
    let admin = server.conn().connect("test").await.unwrap();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let marker = |pid: u32| {
        serde_json::json!({
            "rehearse": "role created by a rehearsed migration",
            "pid": pid,
            "start_ticks": 0,
            "run_id": "0000000000bb",
            "host": host,
        })
    };
    // Above the kernel's largest pid_max: no such process.
    let dead = marker(4_194_305);
    let live = marker(std::process::id());
    admin
        .batch_execute(&format!(
            "CREATE ROLE gc_dead; COMMENT ON ROLE gc_dead IS '{dead}';
             CREATE ROLE gc_dead_granted; COMMENT ON ROLE gc_dead_granted IS '{dead}';
             GRANT CONNECT ON DATABASE postgres TO gc_dead_granted;
             CREATE ROLE gc_live; COMMENT ON ROLE gc_live IS '{live}';
             CREATE ROLE gc_users; COMMENT ON ROLE gc_users IS 'not ours'"
        ))
        .await
        .unwrap();

    let output = Command::new(BIN)
        .args(["gc", "--database-url", &url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The role a grant keeps alive is an error, with what to run.
    assert_ne!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("dropped role gc_dead\n"), "{stdout}");
    assert!(
        stderr
            .contains("role gc_dead_granted created by the run's migrations could not be dropped")
            && stderr.contains("DROP ROLE \"gc_dead_granted\""),
        "{stderr}"
    );
    let left: Vec<String> = role_names(&admin)
        .await
        .into_iter()
        .filter(|r| r.starts_with("gc_"))
        .collect();
    assert_eq!(left, ["gc_dead_granted", "gc_live", "gc_users"]);
    admin
        .batch_execute(
            "REVOKE CONNECT ON DATABASE postgres FROM gc_dead_granted; \
             DROP ROLE gc_dead_granted, gc_live, gc_users",
        )
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

/// A role the run's migrations created that a grant on another database
/// keeps alive: the run says which role could not be dropped and what to
/// run, and fails instead of leaving it silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_dropped_is_reported_with_the_sql() {
    let Some(server) = user_server().await else {
        return;
    };
    let url = server.conn().url_with_password();
    let admin = server.conn().connect("test").await.unwrap();
    let before = role_names(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_t.sql"), "CREATE TABLE t (id int);\n").unwrap();
    // The grant is on the user's `postgres` database, which the run does
    // not drop.
    std::fs::write(
        migrations.join("0002_role.sql"),
        "CREATE ROLE app_granted;\nGRANT CONNECT ON DATABASE postgres TO app_granted;\n",
    )
    .unwrap();
    let path = dir.path().join("granted.toml");
    std::fs::write(
        &path,
        "name = \"granted\"\n[migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\n\
         baseline = \"0001\"\n[replicas]\ncount = 2\nrunner = \"job\"\n\
         [expect]\nallow = [\"missing-lock-timeout\", \"lock-lint\"]\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "run",
            path.to_str().unwrap(),
            "--backend",
            "url",
            "--database-url",
            &url,
        ])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rehearse run");
    let code = wait_exit(&mut child, Duration::from_secs(120));
    let output = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(code, 3, "{all}");
    assert!(
        all.contains("role app_granted created by the run's migrations could not be dropped")
            && all.contains("DROP ROLE \"app_granted\""),
        "{all}"
    );
    let left: Vec<String> = role_names(&admin)
        .await
        .into_iter()
        .filter(|r| !before.contains(r))
        .collect();
    assert!(
        left.iter().all(|r| r.starts_with("app_granted")),
        "{left:?}"
    );
    for role in left {
        admin
            .batch_execute(&format!(
                "REVOKE CONNECT ON DATABASE postgres FROM \"{role}\"; DROP ROLE \"{role}\""
            ))
            .await
            .unwrap();
    }
    server.shutdown().await.unwrap();
}
