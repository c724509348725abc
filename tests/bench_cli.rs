//! `rehearse bench` as a nightly job runs it: measure and save a baseline,
//! then compare against a baseline it cannot meet and fail with exit 1.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rehearse");

fn rehearse(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run rehearse");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bench_saves_a_baseline_and_fails_when_slower_than_it() {
    if rehearse::provision::PgBinaries::find(None, None).is_err() {
        let _: Option<()> = rehearse::testing::skip("local postgres binaries", &"none found");
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
    let mut baseline: rehearse::report::bench::BenchReport =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(baseline.points.len(), 2);
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
