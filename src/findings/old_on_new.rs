//! `old-on-new`: old code still serving on a migrated schema breaks. Read from the
//! compatibility matrix (PREPARE on each schema state) and the live errors.

use super::{CheckId, Finding, breakage};
use crate::compat::{BreakageClass, CompatReport};

pub(super) fn check(compat: &CompatReport) -> Vec<Finding> {
    breakage::findings(
        compat,
        BreakageClass::OldOnNew,
        CheckId::OldOnNew,
        "old code breaks on the migrated schema",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures::every_query_works;

    #[test]
    fn bad_the_plan_runs_a_broken_combination() {
        let f = check(&super::super::rollout_examples::bad(CheckId::OldOnNew));
        assert!(!f.is_empty());
        assert!(f.iter().all(|f| f.check == CheckId::OldOnNew), "{f:?}");
        assert!(f[0].message.contains("query `get`"), "{}", f[0].message);
    }

    /// int -> bigint: the old query still prepares and runs, its result
    /// column is int8 now. A warning (`changed`) unless a live execution
    /// failed.
    #[test]
    fn a_result_type_change_is_a_warning_unless_executions_failed() {
        use crate::compat::fixtures::{exec, migrate_then_deploy, probed, report, shape};
        use crate::findings::Severity;
        let probes = [
            probed(0, "old", "get", shape(&[("id", "int4")])),
            probed(1, "old", "get", shape(&[("id", "int8")])),
            probed(0, "new", "get", shape(&[("id", "int8")])),
            probed(1, "new", "get", shape(&[("id", "int8")])),
        ];
        let ran = report(
            &probes,
            &migrate_then_deploy(),
            &[exec("old", "get", 1, None)],
        );
        let f = check(&ran);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.starts_with("changed:"), "{}", f[0].message);
        let failed = report(
            &probes,
            &migrate_then_deploy(),
            &[exec("old", "get", 1, Some("22003"))],
        );
        let f = check(&failed);
        assert!(f.iter().any(|f| f.severity == Severity::Error), "{f:?}");
    }

    #[test]
    fn good_every_query_works_everywhere_the_plan_runs_it() {
        assert!(check(&every_query_works()).is_empty());
    }
}
