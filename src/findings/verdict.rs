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

/// [`judge`], plus the scenario's lock thresholds held against the lock
/// report. A threshold set without a lock report fails: it was not checked.
#[must_use]
pub fn judge_with_locks(
    findings: &[Finding],
    locks: Option<&crate::locks::LockReport>,
    expect: &Expectations,
) -> Judgement {
    let mut judgement = judge(findings, expect);
    let thresholds = expect.max_access_exclusive_ms.is_some()
        || expect.max_blocked_backend_seconds.is_some()
        || expect.max_app_stall_ms.is_some()
        || expect.require_lock_timeout;
    let sampled = locks.and_then(|l| l.sampled.as_ref());
    match (locks, sampled) {
        (None, _) if thresholds => judgement
            .reasons
            .push("lock thresholds are set but no lock report was recorded".into()),
        (_, Some(sampled)) => {
            if let (Some(limit), Some(worst)) = (
                expect.max_access_exclusive_ms,
                sampled.max_access_exclusive(),
            ) && worst.max_hold_us / 1_000 > limit
            {
                judgement.reasons.push(format!(
                    "ACCESS EXCLUSIVE on {} held {} ms, over max_access_exclusive_ms = {limit}",
                    worst.relation,
                    worst.max_hold_us / 1_000
                ));
            }
            if let Some(limit) = expect.max_blocked_backend_seconds
                && sampled.blocked_backend_seconds > limit
            {
                judgement.reasons.push(format!(
                    "{:.2} blocked-backend-seconds, over max_blocked_backend_seconds = {limit}",
                    sampled.blocked_backend_seconds
                ));
            }
            if let Some(limit) = expect.max_app_stall_ms
                && sampled.max_app_wait_us() / 1_000 > limit
            {
                judgement.reasons.push(format!(
                    "an application query waited {} ms on a lock, over max_app_stall_ms = {limit}",
                    sampled.max_app_wait_us() / 1_000
                ));
            }
        }
        _ => {}
    }
    if expect.require_lock_timeout {
        judgement.reasons.extend(
            findings
                .iter()
                .filter(|f| f.check == CheckId::MissingLockTimeout)
                .map(|f| format!("require_lock_timeout: {}", f.message)),
        );
    }
    judgement.pass = judgement.reasons.is_empty();
    judgement
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
            ..Expectations::default()
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

    #[test]
    fn lock_thresholds_fail_with_the_figures() {
        use crate::locks::analysis::{Hold, RelationLocks};
        use crate::locks::{Holder, LockAnalysis, LockMode, LockReport};
        let sampled = LockAnalysis {
            relations: vec![RelationLocks {
                relation: "public.t".into(),
                mode: LockMode::AccessExclusive,
                holders: vec![Holder::Replica(0)],
                max_hold_us: 2_500_000,
                total_hold_us: 2_500_000,
            }],
            holds: Vec::<Hold>::new(),
            blocked_backend_seconds: 3.0,
            ..LockAnalysis::default()
        };
        let report = LockReport {
            sampled: Some(sampled),
            ..LockReport::default()
        };
        let strict = Expectations {
            max_access_exclusive_ms: Some(1_000),
            max_blocked_backend_seconds: Some(1.0),
            ..Expectations::default()
        };
        let j = judge_with_locks(&[], Some(&report), &strict);
        assert!(!j.pass);
        assert_eq!(j.reasons.len(), 2, "{j:?}");
        assert!(j.reasons[0].contains("2500 ms"), "{j:?}");
        let lenient = Expectations {
            max_access_exclusive_ms: Some(5_000),
            max_blocked_backend_seconds: Some(10.0),
            ..Expectations::default()
        };
        assert!(judge_with_locks(&[], Some(&report), &lenient).pass);
        assert!(!judge_with_locks(&[], None, &lenient).pass);
        let timeout = Expectations {
            require_lock_timeout: true,
            ..Expectations::default()
        };
        let missing = finding(CheckId::MissingLockTimeout, Severity::Warning);
        assert!(!judge_with_locks(&[missing], Some(&report), &timeout).pass);
    }
}
