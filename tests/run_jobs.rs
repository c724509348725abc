//! `rehearse run --jobs N`: scenarios rehearsed at once give the reports a
//! sequential run gives, apart from timings, in the same order.

mod cli_support;

use cli_support::{local_binaries_or_skip, rehearse};

/// Per scenario, in report order: path, verdict, and each finding's check,
/// severity and details (messages and durations may differ with timing).
fn outcome(report: &serde_json::Value) -> Vec<String> {
    report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|scenario| {
            let mut findings: Vec<String> = scenario["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| format!("{} {} {}", f["check"], f["severity"], f["details"]))
                .collect();
            findings.sort();
            format!(
                "{} {} {}",
                scenario["path"],
                scenario["verdict"],
                findings.join("; ")
            )
        })
        .collect()
}

fn run(jobs: &str, dir: &std::path::Path) -> Vec<String> {
    let path = dir.join(format!("jobs-{jobs}.json"));
    let target = format!("json={}", path.display());
    let (code, stdout, stderr) = rehearse(&[
        "run",
        "scenarios/smoke",
        "scenarios/add-nullable-column",
        "--backend",
        "local",
        "--jobs",
        jobs,
        "--report",
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    outcome(&report)
}

#[test]
fn two_jobs_give_the_verdicts_and_findings_of_one() {
    if !local_binaries_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sequential = run("1", dir.path());
    let parallel = run("2", dir.path());
    assert_eq!(sequential.len(), 2);
    assert!(
        sequential[0].contains("add-nullable-column"),
        "{sequential:?}"
    );
    assert_eq!(sequential, parallel);
}

#[test]
fn zero_jobs_is_bad_input() {
    let (code, _, stderr) = rehearse(&["run", "scenarios/smoke", "--jobs", "0"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--jobs"), "{stderr}");
}
