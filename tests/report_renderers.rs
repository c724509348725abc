//! Every renderer, from a recorded race (tests/fixtures/naive-8-replicas.json)
//! wrapped in a run of four scenarios: one passing with tolerated findings,
//! one failing, one that could not run and whose error quotes a connection
//! string with a canary password, and a recorded rehearsal whose replicas
//! queue behind one replica's ACCESS EXCLUSIVE lock, with what the lock
//! sampler saw (tests/fixtures/startup-coupled-migrations.json).
//!
//! Snapshots live in tests/snapshots/. Non-deterministic values (durations,
//! run ids, timestamps, ports, database names) are redacted by filters. A
//! stale snapshot fails the test (under CI insta never writes; locally it
//! writes a `.snap.new` for `cargo insta review` and still fails).

use pg_rehearse::findings::{CheckId, check_locks, check_race, judge, judge_with_locks};
use pg_rehearse::locks::LockAnalysis;
use pg_rehearse::report::{
    ReportFormat, RunReport, SCHEMA_VERSION, ScenarioReport, StageReport, TerminalOptions, Verdict,
    write_terminal,
};
use pg_rehearse::scenario::Expectations;
use pg_rehearse::timeline::RaceRecord;

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
    report.conclude(findings, judgement);
    report.backend = Some("local".into());
    report.postgres_version = Some("15.14".into());
    report.stages = stages();
    report.race = Some(race);
    report.expect = expect;
    report
}

/// A whole rehearsal recorded against a real Postgres: the race, the lock
/// trace and the sampler's analysis. Its findings and verdict are judged
/// again from that plain data, as the pipeline does.
fn recorded_locks() -> ScenarioReport {
    let text = std::fs::read_to_string("tests/fixtures/startup-coupled-migrations.json").unwrap();
    let mut report: ScenarioReport = serde_json::from_str(&text).unwrap();
    let mut findings = check_race(report.race.as_ref().unwrap());
    findings.extend(check_locks(report.locks.as_ref().unwrap()));
    let judgement = judge_with_locks(&findings, report.locks.as_ref(), &report.expect);
    report.conclude(findings, judgement);
    report
}

fn sampled(report: &ScenarioReport) -> &LockAnalysis {
    report
        .locks
        .as_ref()
        .and_then(|l| l.sampled.as_ref())
        .unwrap()
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
        scenarios: vec![passing, failing, broken, recorded_locks()],
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
                quiet: false,
                ..TerminalOptions::default()
            })
        );
        insta::assert_snapshot!(
            "terminal-quiet",
            terminal(TerminalOptions {
                color: false,
                quiet: true,
                ..TerminalOptions::default()
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
        ..TerminalOptions::default()
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
    // The whole JSON repeats the recorded race, trace and samples (the
    // schema test checks their shape); its other fields are what may drift,
    // so snapshot everything but those.
    let mut value: serde_json::Value = serde_json::from_str(&render(ReportFormat::Json)).unwrap();
    for scenario in value["scenarios"].as_array_mut().unwrap() {
        scenario["race"] = serde_json::Value::String("[recorded race]".into());
        if let Some(locks) = scenario["locks"].as_object_mut() {
            locks.insert("trace".into(), "[recorded trace]".into());
            for list in ["holds", "relations", "waits", "queue"] {
                locks["sampled"][list] = format!("[recorded {list}]").into();
            }
        }
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
    assert_eq!(xml.matches("<testsuite ").count(), 4, "{xml}");
    // Three raced scenarios with every check, the broken one with every
    // check skipped plus its `rehearsal` error.
    assert_eq!(
        xml.matches("<testcase ").count(),
        4 * CheckId::ALL.len() + 1,
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
    // The lock analysis is described field by field: its time base too, and
    // a report written before the time base was recorded still validates.
    let locks = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| !s["locks"].is_null())
        .expect("the recorded run has lock data");
    let sampled = |r: &mut serde_json::Value| -> serde_json::Value {
        r["scenarios"][locks]["locks"]["sampled"].take()
    };
    let mut bad = report.clone();
    let mut analysis = sampled(&mut bad);
    assert!(analysis["timeline_offset_us"].is_i64(), "{analysis}");
    analysis["timeline_offset_us"] = "25".into();
    bad["scenarios"][locks]["locks"]["sampled"] = analysis;
    assert!(!validator.is_valid(&bad));
    let mut bad = report.clone();
    let mut analysis = sampled(&mut bad);
    analysis["holds"][0]["mode"] = "exclusive-ish".into();
    bad["scenarios"][locks]["locks"]["sampled"] = analysis;
    assert!(!validator.is_valid(&bad));
    let mut old = report.clone();
    let mut analysis = sampled(&mut old);
    analysis
        .as_object_mut()
        .unwrap()
        .remove("timeline_offset_us");
    old["scenarios"][locks]["locks"]["sampled"] = analysis;
    assert!(validator.is_valid(&old));
    let back: RunReport = serde_json::from_value(old).unwrap();
    assert_eq!(
        back.scenarios[locks]
            .locks
            .as_ref()
            .and_then(|l| l.sampled.as_ref())
            .map(|a| a.timeline_offset_us),
        Some(None)
    );
}

/// The `<g>` of the lock row of `relation` in the HTML.
fn lock_row<'a>(html: &'a str, relation: &str) -> Option<&'a str> {
    let start = html.find(&format!(
        "<g class=\"lock-row\" data-relation=\"{relation}\">"
    ))?;
    let end = html[start..].find("</g>")?;
    Some(&html[start..start + end])
}

#[test]
fn html_draws_the_lock_holds_queue_and_waits_on_the_timeline() {
    let html = render(ReportFormat::Html);
    let recorded = recorded_locks();
    let a = sampled(&recorded);
    assert!(
        a.timeline_offset_us.is_some(),
        "the fixture records its time base"
    );
    // One row per relation the sampler saw held, each with a bar.
    let mut relations: Vec<&str> = a.holds.iter().map(|h| h.relation.as_str()).collect();
    relations.sort_unstable();
    relations.dedup();
    assert!(relations.contains(&"public.accounts"), "{relations:?}");
    assert_eq!(html.matches("class=\"lock-row\"").count(), relations.len());
    for relation in &relations {
        let row = lock_row(&html, relation).unwrap_or_else(|| panic!("no row for {relation}"));
        assert!(row.contains("<rect class=\"hold\""), "{row}");
    }
    // The replica's ACCESS EXCLUSIVE hold, in the colour of locks that
    // block reads, named with its holder.
    let accounts = lock_row(&html, "public.accounts").unwrap();
    assert!(accounts.contains("fill=\"#a40e26\""), "{accounts}");
    assert!(
        accounts.contains("ACCESS EXCLUSIVE on public.accounts held by replica 2"),
        "{accounts}"
    );
    // The queue chart, and one bar per wait, with what blocked it and the
    // statement it is attributed to.
    assert_eq!(html.matches("<g class=\"lock-queue\">").count(), 1);
    assert!(
        html.contains("max 5</text>"),
        "the queue peaks at 5 waiting replicas"
    );
    assert_eq!(html.matches("<rect class=\"wait\"").count(), a.waits.len());
    assert!(
        html.contains("blocked by replica 2 (holding)"),
        "a wait names its blocker"
    );
    assert!(html.contains("the blocking migration was running 0002 statement 2 (line 4)"));
    // The table: per relation and mode, and blocked-backend-seconds.
    assert!(html.contains("<table class=\"lock-holds\">"), "{html}");
    assert!(html.contains(&format!(
        "Blocked-backend-seconds: <b>{:.2}</b>",
        a.blocked_backend_seconds
    )));
    // Scenarios without sampler data say so.
    assert!(html.contains("not measured in this report"));
}

/// Lock bars are on the timeline's clock: the replica's ACCESS EXCLUSIVE
/// hold starts with its ALTER TABLE and ends with its commit, give or take
/// the sampling interval.
#[test]
fn lock_holds_line_up_with_the_statements_that_took_them() {
    use pg_rehearse::timeline::{Actor, EventKind};
    let recorded = recorded_locks();
    let a = sampled(&recorded);
    let hold = a
        .holds
        .iter()
        .find(|h| h.mode == pg_rehearse::locks::LockMode::AccessExclusive)
        .unwrap();
    let events = &recorded.race.as_ref().unwrap().timeline;
    let pg_rehearse::locks::Holder::Replica(n) = hold.holder else {
        panic!("a replica holds it: {hold:?}");
    };
    let mine = || events.of(Actor::Replica(n));
    let alter = mine()
        .find(|e| matches!(e.kind, EventKind::StatementBegin { .. }))
        .unwrap()
        .at_us;
    let applied = mine()
        .find(|e| matches!(e.kind, EventKind::Applied { .. }))
        .unwrap()
        .at_us;
    let seen = a.timeline_us(hold.from_us);
    let last_seen = a.timeline_us(hold.to_us);
    // First seen within one interval after the statement began, last seen
    // before the commit and within one interval of it.
    assert!(
        seen >= alter && seen - alter <= a.interval_us,
        "{seen} vs {alter}"
    );
    assert!(
        last_seen <= applied && applied - last_seen <= a.interval_us,
        "{last_seen} vs {applied}"
    );
}

/// A rollout has no replica rows: its phases and migration statements are
/// drawn above the lock rows, on the same axis.
#[test]
fn a_rollout_timeline_draws_its_phases_above_the_lock_rows() {
    use pg_rehearse::compat::Phase;
    use pg_rehearse::workload::TrafficReport;
    use pg_rehearse::workload::traffic::StatementRun;
    let mut rollout = recorded_locks();
    rollout.race = None;
    let phase = |index: usize, name: &str, migrating: bool, start_us: u64, end_us: u64| Phase {
        index,
        name: name.into(),
        state: index.min(1),
        fleet: vec!["old".into()],
        rollback: false,
        migrating,
        start_us,
        end_us,
    };
    rollout.traffic = Some(TrafficReport {
        phases: vec![
            phase(0, "serve old", false, 0, 224_000),
            phase(1, "migrate 0002", true, 224_000, 531_000),
            phase(2, "serve after 0002", false, 531_000, 900_000),
        ],
        statements: vec![StatementRun {
            version: "0002".into(),
            index: 0,
            line: 3,
            start_us: 224_814,
            end_us: 528_010,
        }],
        ..TrafficReport::default()
    });
    let run = RunReport {
        scenarios: vec![rollout],
        ..recorded_run()
    };
    let mut out = Vec::new();
    ReportFormat::Html.write(&run, &mut out).unwrap();
    let html = String::from_utf8(out).unwrap();
    assert!(html.contains("<h3>Rollout timeline</h3>"), "{html}");
    assert!(html.contains("<title>phase 1: migrate 0002 ("), "{html}");
    assert!(
        html.contains("<title>0002 statement 1 (line 3): "),
        "{html}"
    );
    assert!(lock_row(&html, "public.accounts").is_some(), "{html}");
    assert_eq!(html.matches("<g class=\"lock-queue\">").count(), 1);
}

/// Thousands of holds and waits still make a small file: each row draws a
/// capped number of bars and merges the rest.
#[test]
fn html_of_a_long_run_stays_small() {
    use pg_rehearse::locks::analysis::{Hold, QueuePoint, Wait};
    use pg_rehearse::locks::{Holder, LockMode, LockType};
    let mut report = recorded_locks();
    let a = report
        .locks
        .as_mut()
        .and_then(|l| l.sampled.as_mut())
        .unwrap();
    let modes = [
        LockMode::AccessShare,
        LockMode::RowExclusive,
        LockMode::AccessExclusive,
    ];
    for i in 0..6_000u64 {
        let from_us = i * 10_000;
        a.holds.push(Hold {
            relation: format!("public.t{}", i % 3),
            mode: modes[usize::try_from(i % 3).unwrap()],
            holder: Holder::App(format!("app-{}", i % 50)),
            pid: 1_000,
            from_us,
            to_us: from_us,
            hold_us: 10_000,
        });
        a.waits.push(Wait {
            pid: 2_000,
            holder: Holder::App("app-v1".into()),
            locktype: LockType::Relation,
            mode: LockMode::AccessShare,
            relation: Some("public.t2".into()),
            from_us,
            to_us: from_us,
            wait_us: 10_000,
            blocked_by: Vec::new(),
            statement: None,
            lock_taken_by: None,
            query: "SELECT 1".into(),
        });
        a.queue.push(QueuePoint {
            at_us: from_us,
            waiting: u32::try_from(i % 7).unwrap(),
        });
    }
    let run = RunReport {
        scenarios: vec![report],
        ..recorded_run()
    };
    let mut out = Vec::new();
    ReportFormat::Html.write(&run, &mut out).unwrap();
    let html = String::from_utf8(out).unwrap();
    assert!(html.len() < 400_000, "{} bytes", html.len());
    for relation in ["public.t0", "public.t1", "public.t2"] {
        let row = lock_row(&html, relation).unwrap();
        assert_eq!(
            row.matches("<rect class=\"hold\"").count(),
            40,
            "{relation}"
        );
        assert!(row.contains("class=\"hold-merged\""), "{relation}");
        assert!(row.contains(">+1960<title>"), "{relation}: {row}");
    }
    assert!(html.matches("<rect class=\"wait\"").count() <= 40 + 5);
}

/// The first of `chromium` or `chromium-browser` on PATH.
fn find_chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Opens the HTML report in headless Chromium (Debian's `chromium`
/// package), takes a screenshot of the whole page (the window is taller
/// than the report) and checks it shows the report: mostly white page, dark
/// text, the blue statement bars of the timeline and the lock rows (drawn in
/// inline SVG: if the SVG did not render, they are missing). With
/// `REHEARSE_KEEP_SCREENSHOT=PATH` the screenshot is kept for a look.
#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(chromium) = find_chromium() else {
        let _: Option<()> = pg_rehearse::testing::skip(
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
            "--window-size=1280,6400",
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
    // The recorded rehearsal's ACCESS EXCLUSIVE hold (dark red) and the
    // waits queued behind it (dark amber) are drawn too.
    let near = |p: &[u8], rgb: [u8; 3]| p[..3].iter().zip(rgb).all(|(c, t)| c.abs_diff(t) < 16);
    let exclusive_red = pixels
        .iter()
        .filter(|p| near(p, [0xa4, 0x0e, 0x26]))
        .count();
    let queued_amber = pixels
        .iter()
        .filter(|p| near(p, [0x9a, 0x67, 0x00]))
        .count();
    assert!(
        exclusive_red > 2_000,
        "no ACCESS EXCLUSIVE hold bar in the screenshot ({exclusive_red} pixels)"
    );
    assert!(
        queued_amber > 2_000,
        "no queued waits in the screenshot ({queued_amber} pixels)"
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
    // Rollout scenarios have no replica race; their checks ran.
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
    assert!(table.lines().nth(1).unwrap().contains(" none "), "{table}");
}

/// Display columns of each line of `text`.
fn line_widths(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .map(|l| (unicode_width::UnicodeWidthStr::width(l), l))
        .collect()
}

fn terminal_of(run: &RunReport, options: TerminalOptions) -> String {
    let mut out = Vec::new();
    write_terminal(run, options, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn terminal_lines_fit_80_and_100_columns() {
    for width in [80, 100] {
        let text = terminal_of(
            &recorded_run(),
            TerminalOptions::default().with_width(width),
        );
        for (w, line) in line_widths(&text) {
            assert!(w <= width, "{w} > {width} columns: {line:?}\n{text}");
        }
        // Still says what matters: every scenario, its verdict and findings.
        for name in ["unreachable server", "naive runner, 8 replicas"] {
            assert!(text.contains(name), "{text}");
        }
        assert!(text.contains("2 expected"), "{text}");
    }
}

/// Counts say what they count: a passing scenario whose expected findings
/// were found shows them as expected, never as 0; its race is named by the
/// same checks that found it.
#[test]
fn terminal_counts_and_races_agree_with_the_findings() {
    let text = terminal(TerminalOptions::default());
    let row = text
        .lines()
        .find(|l| l.starts_with("PASS") && l.contains("naive runner, 8 replicas"))
        .unwrap();
    assert!(row.contains("2 expected"), "{row}");
    assert!(!row.contains(" 0 "), "{row}");
    let failing = text
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("no expectations"))
        .unwrap();
    assert!(failing.contains("2 failing"), "{failing}");
    assert!(
        text.contains("replicas: 8 naive, raced: a version applied 8x, duplicate-data"),
        "{text}"
    );
    // The recorded lock rehearsal has no race finding, and says so.
    assert!(text.contains("replicas: 6 naive, no race found"), "{text}");
}

/// A name no one should write: 70,000 characters of wide, combining and
/// control characters, escape sequences and bidi overrides. The terminal
/// output still fits, carries no control character but the newline, and
/// does not panic at any width.
#[test]
fn terminal_survives_a_hostile_scenario_name() {
    let piece = "日本語\u{1b}[2J\u{7}e\u{301}🦀\t\r\n\u{202e}x\u{0}|";
    let name: String = piece.repeat(70_000 / piece.chars().count() + 1);
    assert!(name.chars().count() >= 65_536);
    let mut run = recorded_run();
    for scenario in &mut run.scenarios {
        scenario.name.clone_from(&name);
    }
    run.scenarios[1].findings[0].message = format!("{name} {name}");
    for width in [0, 1, 39, 40, 80, 100, 250] {
        let text = terminal_of(&run, TerminalOptions::default().with_width(width));
        let fits = width.max(40);
        for (w, line) in line_widths(&text) {
            assert!(w <= fits, "{w} > {fits}: {line:?}");
        }
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "a control character got through at width {width}"
        );
        assert!(!text.contains('\u{202e}'));
        assert!(text.contains("日本語"), "{text}");
    }
}

/// The PR comment explains a failure: the failing scenario's findings,
/// worst first, with what each is about, folded in `<details>`.
#[test]
fn markdown_explains_the_failures() {
    let md = render(ReportFormat::Markdown);
    let failing = md
        .split("<details")
        .skip(1)
        .find(|block| block.contains("naive runner, no expectations"))
        .unwrap();
    assert!(failing.starts_with(" open><summary>"), "{failing}");
    assert!(
        failing.contains("- **error** `double-application` (**fails**): migration 0002"),
        "{failing}"
    );
    // The lock rehearsal's finding quotes its statement's SQL and its lock.
    let locks = md
        .split("<details")
        .skip(1)
        .find(|block| block.contains("startup-coupled migrations"))
        .unwrap();
    assert!(
        locks.contains("  - statement: migration 0002 line 3"),
        "{locks}"
    );
    assert!(locks.contains("ALTER TABLE"), "{locks}");
    assert!(
        locks.contains("  - lock: ACCESS EXCLUSIVE on public.accounts"),
        "{locks}"
    );
    // One block per scenario that did not pass cleanly.
    assert_eq!(md.matches("<details").count(), 4, "{md}");
    assert_eq!(md.matches("</details>").count(), 4, "{md}");
}

/// Nothing from a scenario reaches the comment as markup: no HTML, no
/// broken table, no mention, no code span or fence that escapes.
#[test]
fn markdown_escapes_a_hostile_scenario_name() {
    let hostile = "<script>alert(1)</script> | @octocat `x` ``` <img src=x onerror=y> &amp; [a](javascript:b) **b**";
    let mut run = recorded_run();
    for scenario in &mut run.scenarios {
        scenario.name = hostile.into();
    }
    run.scenarios[1].findings[0].message = hostile.into();
    let mut out = Vec::new();
    ReportFormat::Markdown.write(&run, &mut out).unwrap();
    let md = String::from_utf8(out).unwrap();
    assert!(!md.contains("<script"), "{md}");
    assert!(!md.contains("<img"), "{md}");
    assert!(!md.contains("@octocat"), "{md}");
    assert!(!md.contains("[a]("), "{md}");
    assert!(!md.contains("**b**"), "{md}");
    assert!(md.contains("&lt;script&gt;"), "{md}");
    // The `&` of the name is escaped, not taken as an entity.
    assert!(md.contains("&amp;amp;"), "{md}");
    // Every table row still has exactly its five unescaped pipes.
    for row in md.lines().filter(|l| l.starts_with("| ")) {
        let pipes = row
            .match_indices('|')
            .filter(|(i, _)| !row[..*i].ends_with('\\'))
            .count();
        assert_eq!(pipes, 5, "{row}");
    }
    // The only HTML tags are the renderer's own.
    let tags: std::collections::BTreeSet<&str> = md
        .match_indices('<')
        .map(|(i, _)| {
            md[i..]
                .split(|c: char| c == '>' || c.is_whitespace())
                .next()
                .unwrap()
        })
        .collect();
    let own: std::collections::BTreeSet<&str> = [
        "<details",
        "</details",
        "<summary",
        "</summary",
        "<b",
        "</b",
    ]
    .into();
    assert!(tags.is_subset(&own), "{tags:?}");
}

/// A run of hundreds of failing scenarios still makes a comment GitHub
/// accepts (at most 65,536 characters), worst first, saying what it left out.
#[test]
fn markdown_of_a_huge_run_fits_a_comment() {
    let mut run = recorded_run();
    let failing = run.scenarios[1].clone();
    run.scenarios = (0..300)
        .map(|i| {
            let mut s = failing.clone();
            s.name = format!("{i:03} {}", "long scenario name ".repeat(20));
            s
        })
        .collect();
    let mut out = Vec::new();
    ReportFormat::Markdown.write(&run, &mut out).unwrap();
    let md = String::from_utf8(out).unwrap();
    assert!(
        md.chars().count() < 65_536,
        "{} characters",
        md.chars().count()
    );
    assert!(
        md.contains("And 250 more scenario(s) (250 failed, 0 could not run, 0 passed)"),
        "{md}"
    );
    assert!(
        md.contains("more scenario(s) are in the HTML and JSON reports."),
        "{md}"
    );
    assert_eq!(
        md.matches("<details").count(),
        md.matches("</details>").count()
    );
}
