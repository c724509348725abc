//! JUnit XML for CI test tabs: one testsuite per scenario, one testcase per
//! check in [`CheckId::ALL`]. A check fails when it fails the scenario's
//! expectations (an unexpected error, or an expected finding that did not
//! happen); tolerated findings pass with their messages as system-out. A
//! scenario that could not be rehearsed gets one `rehearsal` testcase in
//! error and its checks skipped.

use std::io;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::redact::scrub;
use super::summary::{Status, check_status, severity_word};
use super::{RunReport, ScenarioReport};
use crate::findings::CheckId;

/// Writes the run as JUnit XML.
pub fn write_junit(report: &RunReport, out: &mut impl io::Write) -> io::Result<()> {
    let mut junit = Report::new("rehearse");
    junit.set_time(Duration::from_millis(report.duration_ms));
    junit.add_test_suites(report.scenarios.iter().map(suite));
    junit
        .serialize(&mut *out)
        .map_err(|e| io::Error::other(e.to_string()))?;
    writeln!(out)
}

fn suite(scenario: &ScenarioReport) -> TestSuite {
    let mut suite = TestSuite::new(scrub(&scenario.name));
    suite.set_time(Duration::from_millis(
        scenario.stages.iter().map(|s| s.duration_ms).sum(),
    ));
    let classname = scrub(&scenario.path);
    if let Some(error) = &scenario.error {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(scrub(error)).set_type("rehearsal-error");
        let mut case = TestCase::new("rehearsal", status);
        case.set_classname(classname.clone());
        suite.add_test_case(case);
    }
    for check in CheckId::ALL {
        let (state, reason) = check_status(scenario, check);
        let messages: Vec<String> = scenario
            .findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| format!("{}: {}", severity_word(f.severity), scrub(&f.message)))
            .collect();
        let status = match state {
            Status::Clean | Status::Tolerated => TestCaseStatus::success(),
            Status::NotRun => TestCaseStatus::skipped(),
            Status::Failed => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(scrub(&reason.unwrap_or_default()))
                    .set_type(check.id());
                if !messages.is_empty() {
                    status.set_description(messages.join("\n"));
                }
                status
            }
        };
        let mut case = TestCase::new(check.id(), status);
        case.set_classname(classname.clone());
        if state == Status::Tolerated {
            case.set_system_out(format!("tolerated by [expect]:\n{}", messages.join("\n")));
        }
        suite.add_test_case(case);
    }
    suite
}
