//! `new-on-old`: new code deployed before its migration breaks. Read from the
//! compatibility matrix (PREPARE on each schema state) and the live errors.

use super::{CheckId, Finding, breakage};
use crate::compat::{BreakageClass, CompatReport};

pub(super) fn check(compat: &CompatReport) -> Vec<Finding> {
    breakage::findings(
        compat,
        BreakageClass::NewOnOld,
        CheckId::NewOnOld,
        "new code breaks on a schema its migration has not reached",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::fixtures::every_query_works;

    #[test]
    fn bad_the_plan_runs_a_broken_combination() {
        let f = check(&super::super::rollout_examples::bad(CheckId::NewOnOld));
        assert!(!f.is_empty());
        assert!(f.iter().all(|f| f.check == CheckId::NewOnOld), "{f:?}");
        assert!(f[0].message.contains("query `get`"), "{}", f[0].message);
    }

    #[test]
    fn good_every_query_works_everywhere_the_plan_runs_it() {
        assert!(check(&every_query_works()).is_empty());
    }
}
