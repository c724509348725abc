//! Every renderer, from a recorded race (tests/fixtures/naive-8-replicas.json)
//! wrapped in a run of three scenarios: one passing with tolerated findings,
//! one failing, one that could not run and whose error quotes a connection
//! string with a canary password.
//!
//! Snapshots live in tests/snapshots/. Non-deterministic values (durations,
//! run ids, timestamps, ports, database names) are redacted by filters. A
//! stale snapshot fails the test (under CI insta never writes; locally it
//! writes a `.snap.new` for `cargo insta review` and still fails).

use rehearse::findings::{CheckId, check_race, judge};
use rehearse::report::{
    ReportFormat, RunReport, SCHEMA_VERSION, ScenarioReport, StageReport, TerminalOptions, Verdict,
    write_terminal,
};
use rehearse::scenario::Expectations;
use rehearse::timeline::RaceRecord;

const CANARY: &str = "CANARY-pw-7f3a9";

fn recorded_race() -> RaceRecord {
    let text = std::fs::read_to_string("tests/fixtures/naive-8-replicas.json").unwrap();
    serde_json::from_str(&text).unwrap()
}

fn stages() -> Vec<StageReport> {
    [
        ("provision", 812, "local cluster, Postgres 15.14"),
        (
            "baseline",
            95,
            "1 baseline migration(s) in template rehearse_tpl_5f2a (built)",
        ),
        (
            "clone",
            41,
            "target rehearse_db_81c2 and reference rehearse_db_81c3",
        ),
        (
            "replicas",
            233,
            "8 replica(s), runner naive, 1 pending migration(s), 74 events",
        ),
        ("findings", 0, "4 finding(s)"),
    ]
    .into_iter()
    .map(|(stage, duration_ms, summary)| StageReport {
        stage: stage.into(),
        duration_ms,
        summary: summary.into(),
    })
    .collect()
}

fn raced(name: &str, expect: Expectations) -> ScenarioReport {
    let race = recorded_race();
    let findings = check_race(&race);
    let judgement = judge(&findings, &expect);
    let mut report = ScenarioReport::new(name, std::path::Path::new("scenarios/x/scenario.toml"));
    report.verdict = if judgement.pass {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    report.backend = Some("local".into());
    report.postgres_version = Some("15.14".into());
    report.stages = stages();
    report.reasons = judgement.reasons;
    report.findings = findings;
    report.race = Some(race);
    report.expect = expect;
    report
}

fn recorded_run() -> RunReport {
    let passing = raced(
        "naive runner, 8 replicas",
        Expectations {
            findings: vec![CheckId::DoubleApplication, CheckId::DuplicateData],
            allow: vec![CheckId::ReplicaErrors],
            ..Expectations::default()
        },
    );
    let failing = raced("naive runner, no expectations", Expectations::default());
    let mut broken = ScenarioReport::new(
        "unreachable server",
        std::path::Path::new("scenarios/y/scenario.toml"),
    );
    broken.error = Some(format!(
        "cannot connect to postgres://app:{CANARY}@127.0.0.1:54321/rehearse_db_0a1b: \
         connection refused (host=127.0.0.1 password={CANARY})"
    ));
    RunReport {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        run_id: "r20261121-2330-ab12".into(),
        started_at: "2026-11-21T23:30:00.000Z".into(),
        duration_ms: 1234,
        scenarios: vec![passing, failing, broken],
    }
}

fn render(format: ReportFormat) -> String {
    let mut out = Vec::new();
    format.write(&recorded_run(), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn terminal(options: TerminalOptions) -> String {
    let mut out = Vec::new();
    write_terminal(&recorded_run(), options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Redactions shared by every snapshot.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in [
        (r"\b\d+(\.\d+)?(µs|ms|s)\b", "[duration]"),
        (r#"time="[0-9.]+""#, r#"time="[duration]""#),
        (r"\br\d{8}-\d{4}-[0-9a-f]+\b", "[run-id]"),
        (
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z",
            "[timestamp]",
        ),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\brehearse_(db|tpl)_[0-9a-f]+\b", "[database]"),
        (r"<td>\d+</td><td>", "<td>[ms]</td><td>"),
        (r"pid \d+", "pid [pid]"),
        (r#""duration_ms": \d+"#, r#""duration_ms": "[ms]""#),
    ] {
        settings.add_filter(pattern, replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[test]
fn terminal_snapshot() {
    settings().bind(|| {
        insta::assert_snapshot!(
            "terminal",
            terminal(TerminalOptions {
                color: false,
                quiet: false
            })
        );
        insta::assert_snapshot!(
            "terminal-quiet",
            terminal(TerminalOptions {
                color: false,
                quiet: true
            })
        );
    });
}

#[test]
fn terminal_colours_only_when_asked() {
    let plain = terminal(TerminalOptions::default());
    assert!(!plain.contains('\u{1b}'), "{plain}");
    let coloured = terminal(TerminalOptions {
        color: true,
        quiet: false,
    });
    assert!(coloured.contains("\u{1b}["), "{coloured}");
}

#[test]
fn junit_snapshot() {
    settings().bind(|| insta::assert_snapshot!("junit", render(ReportFormat::Junit)));
}

#[test]
fn markdown_snapshot() {
    settings().bind(|| insta::assert_snapshot!("markdown", render(ReportFormat::Markdown)));
}

#[test]
fn html_snapshot() {
    settings().bind(|| insta::assert_snapshot!("html", render(ReportFormat::Html)));
}

#[test]
fn json_snapshot_of_the_failing_scenario_summary() {
    // The whole JSON repeats the recorded race; its other fields are what
    // may drift, so snapshot everything but the race.
    let mut value: serde_json::Value = serde_json::from_str(&render(ReportFormat::Json)).unwrap();
    for scenario in value["scenarios"].as_array_mut().unwrap() {
        scenario["race"] = serde_json::Value::String("[recorded race]".into());
    }
    settings().bind(|| {
        insta::assert_snapshot!("json", serde_json::to_string_pretty(&value).unwrap());
    });
}

#[test]
fn no_renderer_prints_the_canary_password() {
    let mut outputs: Vec<(String, String)> = ReportFormat::ALL
        .into_iter()
        .map(|(format, name)| (name.to_string(), render(format)))
        .collect();
    outputs.push(("terminal".into(), terminal(TerminalOptions::default())));
    for (name, text) in outputs {
        // The error message itself must still be there, minus the secret.
        assert!(text.contains("connection refused"), "{name}: {text}");
        assert!(
            !text.contains(CANARY),
            "{name} printed the password: {text}"
        );
        assert!(
            !text.contains(&format!("app:{CANARY}@")),
            "{name} printed a full url"
        );
    }
}

#[test]
fn junit_has_one_suite_per_scenario_and_one_case_per_check() {
    let xml = render(ReportFormat::Junit);
    assert_eq!(xml.matches("<testsuite ").count(), 3, "{xml}");
    // Two raced scenarios with every check, the broken one with every
    // check skipped plus its `rehearsal` error.
    assert_eq!(
        xml.matches("<testcase ").count(),
        3 * CheckId::ALL.len() + 1,
        "{xml}"
    );
    // Only the scenario without expectations fails, on its error findings.
    assert!(xml.contains(r#"failures="0""#), "{xml}");
    assert!(xml.contains("<failure"), "{xml}");
}

#[test]
fn json_report_matches_its_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/report.schema.json").unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let report: serde_json::Value = serde_json::from_str(&render(ReportFormat::Json)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the schema rejects what it should: a verdict it does not know.
    let mut bad = report.clone();
    bad["scenarios"][0]["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&bad));
}

/// The first of `chromium` or `chromium-browser` on PATH.
fn find_chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Opens the HTML report in headless Chromium (Debian's `chromium`
/// package), takes a screenshot and checks it shows the report: mostly
/// white page, dark text, and the blue statement bars of the timeline
/// (drawn in inline SVG: if the SVG did not render, they are missing).
#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        let _: Option<()> = rehearse::testing::skip(
            "chromium (apt-get install chromium)",
            &"neither chromium nor chromium-browser is on PATH",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let shot = dir.path().join("report.png");
    std::fs::write(&page, render(ReportFormat::Html)).unwrap();
    let mut child = std::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            &format!("--user-data-dir={}", dir.path().join("profile").display()),
            &format!("--screenshot={}", shot.display()),
        ])
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a wedged browser must not hang the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish its screenshot within 90 s");
        }
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "chromium failed: {status}");
    if let Ok(keep) = std::env::var("REHEARSE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()].chunks(channels).collect();
    let non_white = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|c| *c < 240))
        .count();
    let statement_blue = pixels
        .iter()
        .filter(|p| {
            p[0].abs_diff(0x09) < 24 && p[1].abs_diff(0x69) < 24 && p[2].abs_diff(0xda) < 24
        })
        .count();
    assert!(
        non_white > pixels.len() / 100,
        "the screenshot is (nearly) blank: {non_white} of {} pixels not white",
        pixels.len()
    );
    assert!(
        statement_blue > 200,
        "no timeline statement bars in the screenshot ({statement_blue} blue pixels)"
    );
}

#[test]
fn the_schema_lists_every_check_id() {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("docs/report.schema.json").unwrap()).unwrap();
    let listed: Vec<&str> = schema["$defs"]["check"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let registry: Vec<&str> = CheckId::ALL.iter().map(|c| c.id()).collect();
    assert_eq!(listed, registry, "update docs/report.schema.json");
}

#[test]
fn a_rollout_without_a_race_still_reports_its_checks_as_run() {
    // Rollout scenarios (issue 5) have no replica race; their checks ran.
    let mut rollout = ScenarioReport::new(
        "rollout only",
        std::path::Path::new("scenarios/z/scenario.toml"),
    );
    rollout.verdict = Verdict::Pass;
    let run = RunReport {
        scenarios: vec![rollout],
        ..recorded_run()
    };
    let mut xml = Vec::new();
    ReportFormat::Junit.write(&run, &mut xml).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert!(xml.contains(r#"skipped="0""#), "{xml}");
    let table = {
        let mut out = Vec::new();
        write_terminal(&run, TerminalOptions::default(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    assert!(
        table.lines().nth(1).unwrap().trim_end().ends_with(" 0"),
        "{table}"
    );
}
