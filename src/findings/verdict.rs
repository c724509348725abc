//! The verdict of a scenario: its findings held against its expectations.
//! Pure: no database, tested from hand-made findings.

use serde::{Deserialize, Serialize};

use super::{CheckId, Finding, Severity};
use crate::scenario::Expectations;

/// Pass or fail, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    pub pass: bool,
    /// One line per reason to fail; empty when it passes.
    pub reasons: Vec<String>,
}

/// A scenario passes when every expected check reported something and no
/// error-severity finding comes from a check that is neither expected nor
/// allowed. Warnings and notes never fail a scenario.
#[must_use]
pub fn judge(findings: &[Finding], expect: &Expectations) -> Judgement {
    let found = |check: CheckId| findings.iter().any(|f| f.check == check);
    let mut reasons: Vec<String> = expect
        .findings
        .iter()
        .filter(|check| !found(**check))
        .map(|check| format!("expected `{check}` to be found, it was not"))
        .collect();
    let tolerated =
        |check: CheckId| expect.findings.contains(&check) || expect.allow.contains(&check);
    reasons.extend(
        findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !tolerated(f.check))
            .map(|f| format!("{}: {}", f.check, f.message)),
    );
    Judgement {
        pass: reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(check: CheckId, severity: Severity) -> Finding {
        Finding {
            check,
            severity,
            message: format!("{check} happened"),
            details: serde_json::Value::Null,
        }
    }

    fn expect(findings: &[CheckId], allow: &[CheckId]) -> Expectations {
        Expectations {
            findings: findings.to_vec(),
            allow: allow.to_vec(),
        }
    }

    #[test]
    fn an_unexpected_error_fails_and_says_which() {
        let found = [finding(CheckId::DoubleApplication, Severity::Error)];
        let judgement = judge(&found, &Expectations::default());
        assert!(!judgement.pass);
        assert_eq!(
            judgement.reasons,
            ["double-application: double-application happened"]
        );
    }

    #[test]
    fn expected_and_allowed_errors_pass_and_warnings_never_fail() {
        let found = [
            finding(CheckId::DoubleApplication, Severity::Error),
            finding(CheckId::ReplicaErrors, Severity::Error),
            finding(CheckId::ReplicaWaits, Severity::Warning),
        ];
        let judgement = judge(
            &found,
            &expect(&[CheckId::DoubleApplication], &[CheckId::ReplicaErrors]),
        );
        assert_eq!(
            judgement,
            Judgement {
                pass: true,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn an_expected_finding_that_did_not_happen_fails() {
        let judgement = judge(&[], &expect(&[CheckId::RolloutHalt], &[]));
        assert!(!judgement.pass);
        assert_eq!(
            judgement.reasons,
            ["expected `rollout-halt` to be found, it was not"]
        );
    }
}
