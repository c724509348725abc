//! `rehearse trace` on a real history: the vendored crates.io migrations
//! (285 migrations, 620 statements; tests/fixtures/crates-io). Prints the
//! time (a fresh local Postgres started, the chain traced, shut down: what
//! `rehearse trace DIR` does), this process's peak resident memory, and the
//! JSON report's size; then, when `eugene` is on PATH, eugene's time and
//! JSON size on the same files in the same run, and the ratio.
//!
//! `cargo bench --bench trace` (`REHEARSE_BENCH_RUNS`, default 2: the best
//! run of each tool is printed). eugene refuses to run as root: as root it
//! is run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pg_rehearse::locks::{LockReport, TraceOptions, trace_database};
use pg_rehearse::migrate::{Layout, MigrationSet};
use pg_rehearse::provision::{Backend, Postgres, ProvisionOptions};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crates-io/migrations")
}

/// Peak resident set of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One end-to-end trace: (wall time, trace-only time, JSON bytes, statements).
fn rehearse_once(
    rt: &tokio::runtime::Runtime,
    set: &MigrationSet,
) -> (Duration, Duration, usize, usize) {
    rt.block_on(async {
        let started = Instant::now();
        let postgres = Postgres::start(&ProvisionOptions::default().with_backend(Backend::Local))
            .await
            .expect("a local postgres (install postgresql-15)");
        let db = postgres.create_database(None).await.unwrap();
        let traced = Instant::now();
        let trace = trace_database(&db, &set.migrations, &TraceOptions::default())
            .await
            .unwrap();
        let trace_time = traced.elapsed();
        assert_eq!(trace.failures(), 0, "the history traces cleanly");
        let statements = trace.statements.len();
        let report = LockReport::new(&set.migrations, Some(trace), None);
        let json = serde_json::to_vec(&report).unwrap().len();
        postgres.shutdown().await.unwrap();
        (started.elapsed(), trace_time, json, statements)
    })
}

/// eugene on the same files, in the same order: (wall time, JSON bytes).
fn eugene_once(files: &[PathBuf]) -> Option<(Duration, usize)> {
    let eugene = which("eugene")?;
    let root = nix::unistd::Uid::effective().is_root();
    let pg_bin = "/usr/lib/postgresql/15/bin";
    let path = format!("{pg_bin}:{}", std::env::var("PATH").unwrap_or_default());
    let mut command = if root {
        // Copied where the postgres user can run it.
        let copy = std::env::temp_dir().join("rehearse-bench-eugene");
        std::fs::copy(&eugene, &copy).ok()?;
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "env"])
            .arg(format!("PATH={path}"))
            .arg(copy);
        c
    } else {
        let mut c = Command::new(eugene);
        c.env("PATH", path);
        c
    };
    command
        .current_dir(std::env::temp_dir())
        .args(["trace", "--sort-mode", "none", "-a", "-f", "json"])
        .args(files);
    let started = Instant::now();
    let output = command.output().ok()?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        eprintln!(
            "trace bench: eugene failed, left out: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
        return None;
    }
    Some((elapsed, output.stdout.len()))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .chain(std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin")))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read.
    let runs: usize = std::env::var("REHEARSE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
        .max(1);
    let set = MigrationSet::load(&fixture(), Layout::Diesel).unwrap();
    let files: Vec<PathBuf> = set.migrations.iter().map(|m| m.path.clone()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut best = None::<(Duration, Duration, usize, usize)>;
    for _ in 0..runs {
        let run = rehearse_once(&rt, &set);
        if best.is_none_or(|b| run.0 < b.0) {
            best = Some(run);
        }
    }
    let (wall, trace, json, statements) = best.unwrap();
    println!(
        "rehearse trace: {} migrations, {statements} statements: {:.2} s end to end ({:.2} s tracing), peak RSS {:.0} MiB, JSON {:.2} MB",
        set.migrations.len(),
        wall.as_secs_f64(),
        trace.as_secs_f64(),
        peak_rss_mib(),
        json as f64 / 1e6
    );
    let eugene = (0..runs).filter_map(|_| eugene_once(&files)).min();
    match eugene {
        Some((time, bytes)) => println!(
            "eugene trace:   same files: {:.2} s end to end, JSON {:.2} MB; rehearse/eugene time ratio {:.2}",
            time.as_secs_f64(),
            bytes as f64 / 1e6,
            wall.as_secs_f64() / time.as_secs_f64()
        ),
        None => println!("eugene trace:   not on PATH (cargo install eugene), no comparison"),
    }
}
