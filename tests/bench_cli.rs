//! `rehearse bench` as a nightly job runs it: measure and save a baseline,
//! then compare against a baseline it cannot meet and fail with exit 1; the
//! lock holds measured per scale, and compared with the baseline's.

use std::path::Path;

use pg_rehearse::locks::LockMode;
use pg_rehearse::report::bench::BenchReport;

mod cli_support;

use cli_support::{local_binaries_or_skip, rehearse};

#[test]
fn bench_saves_a_baseline_and_fails_when_slower_than_it() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("baseline.json");
    let saved_arg = saved.display().to_string();
    let common = [
        "bench",
        "scenarios/ecommerce",
        "--backend",
        "local",
        "--scales",
        "0.01,0.04",
        "--repeat",
        "1",
    ];
    let mut first = common.to_vec();
    first.extend(["--save-baseline", &saved_arg]);
    let (code, stdout, stderr) = rehearse(&first);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("growth:"), "{stdout}");
    assert!(stdout.contains("BLOCKING HOLD"), "{stdout}");
    assert!(!stdout.contains("not measured by this version"), "{stdout}");
    let mut baseline: BenchReport =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(baseline.points.len(), 2);
    // Every scale was watched by the lock sampler (the ALTER's hold may be
    // shorter than one sampling interval at these scales: no figure is
    // required of it here, see the next test).
    assert!(
        baseline
            .points
            .iter()
            .all(|p| p.locks.as_ref().is_some_and(|l| l.interval_us > 0)),
        "{:?}",
        baseline.points
    );
    assert!(
        baseline.points[1].rows > baseline.points[0].rows,
        "a larger scale seeds more rows: {:?}",
        baseline.points
    );

    // A baseline no real run can meet: every scale took 1 µs.
    for point in &mut baseline.points {
        point.duration_us = 1;
    }
    let impossible = dir.path().join("impossible.json");
    std::fs::write(&impossible, serde_json::to_string(&baseline).unwrap()).unwrap();
    let impossible_arg = impossible.display().to_string();
    let mut second = common.to_vec();
    second.extend(["--baseline", &impossible_arg, "--threshold", "50"]);
    let (code, stdout, stderr) = rehearse(&second);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("REGRESSION at scale 0.01"), "{stdout}");
}

/// A scenario whose migration holds ACCESS EXCLUSIVE on `accounts` while it
/// backfills (the pause stands for a slow backfill, as in the
/// startup-coupled-migrations example): long enough for the sampler to see
/// the hold at every scale.
fn write_lock_scenario(dir: &Path) {
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(
        dir.join("scenario.toml"),
        "name = \"bench: a backfill under ACCESS EXCLUSIVE\"\n\
         [migrations]\ndir = \"migrations\"\nlayout = \"sqlx\"\nbaseline = \"0001\"\n\
         [seed]\nspec = \"seeds.toml\"\nseed = 7\nscale = 1.0\n\
         [replicas]\ncount = 1\nrunner = \"session-advisory-lock\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("seeds.toml"),
        "seed = 7\ndefault_rows = 100\n[tables.accounts]\nrows = 2000\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("migrations/0001_accounts.sql"),
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("migrations/0002_accounts_plan.sql"),
        "ALTER TABLE accounts ADD COLUMN plan text;\n\
         SELECT pg_sleep(0.2);\n\
         UPDATE accounts SET plan = 'free';\n",
    )
    .unwrap();
}

#[test]
fn bench_measures_the_lock_hold_at_every_scale_and_compares_it() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario");
    write_lock_scenario(&scenario);
    let scenario_arg = scenario.display().to_string();
    let saved = dir.path().join("baseline.json");
    let saved_arg = saved.display().to_string();
    let common = [
        "bench",
        &scenario_arg,
        "--backend",
        "local",
        "--scales",
        "0.5,1",
        "--repeat",
        "1",
    ];
    let mut first = common.to_vec();
    first.extend(["--save-baseline", &saved_arg]);
    let (code, stdout, stderr) = rehearse(&first);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: BenchReport = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(report.points.len(), 2);
    for point in &report.points {
        let locks = point.locks.as_ref().expect("lock holds measured");
        let worst = locks
            .worst_blocking()
            .unwrap_or_else(|| panic!("no blocking hold at scale {}: {locks:?}", point.scale));
        assert_eq!(worst.relation, "public.accounts", "{locks:?}");
        assert_eq!(worst.mode, LockMode::AccessExclusive, "{locks:?}");
        assert!(worst.hold_us > 0, "{locks:?}");
        // Plausible: sampled to within one interval, a hold cannot outlast
        // the migration that took it.
        assert!(
            worst.hold_us <= point.duration_us + locks.interval_us,
            "held {} µs in a migration of {} µs",
            worst.hold_us,
            point.duration_us
        );
    }
    // The table names the lock at every scale, and lists it per scale.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.ends_with("ACCESS EXCLUSIVE on public.accounts"))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(
        stdout.contains("longest lock hold per scale, for locks that block reads or writes"),
        "{stdout}"
    );

    // A baseline whose durations no run exceeds, but whose lock was held
    // for 1 µs: only the lock hold regressed.
    let mut lenient = report.clone();
    for point in &mut lenient.points {
        point.duration_us = u64::MAX / 4;
        for hold in &mut point.locks.as_mut().unwrap().holds {
            hold.hold_us = 1;
        }
    }
    let lenient_path = dir.path().join("lenient.json");
    std::fs::write(&lenient_path, serde_json::to_string(&lenient).unwrap()).unwrap();
    let lenient_arg = lenient_path.display().to_string();
    let mut second = common.to_vec();
    second.extend(["--baseline", &lenient_arg]);
    let (code, stdout, stderr) = rehearse(&second);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("LOCK REGRESSION at scale 0.5: ACCESS EXCLUSIVE on public.accounts"),
        "{stdout}"
    );
    assert!(!stdout.contains("\nREGRESSION"), "{stdout}");

    // A baseline written before lock holds were measured still loads, and
    // is compared on durations only.
    let mut old: serde_json::Value = serde_json::to_value(&lenient).unwrap();
    for point in old["points"].as_array_mut().unwrap() {
        point.as_object_mut().unwrap().remove("locks");
    }
    let old_path = dir.path().join("old.json");
    std::fs::write(&old_path, old.to_string()).unwrap();
    let old_arg = old_path.display().to_string();
    let mut third = common.to_vec();
    third.extend(["--baseline", &old_arg]);
    let (code, stdout, stderr) = rehearse(&third);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("the baseline has no lock holds"),
        "{stdout}"
    );
}
