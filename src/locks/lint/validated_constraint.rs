//! `validated-constraint`: ADD FOREIGN KEY / CHECK without NOT VALID scans
//! the table while locked (FK: SHARE ROW EXCLUSIVE on both tables; CHECK:
//! ACCESS EXCLUSIVE). VALIDATE CONSTRAINT later takes only SHARE UPDATE
//! EXCLUSIVE (manual, ALTER TABLE, "Notes").

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::ValidatedConstraint,
    fix: "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later transaction",
    expected: Expected::TableLock(LockMode::ShareRowExclusive),
    check,
    bad: "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
    good: "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    if !c.starts_with(&["ALTER", "TABLE"]) || !c.has("ADD") || c.has_seq(&["NOT", "VALID"]) {
        return None;
    }
    let fk = c.has_seq(&["FOREIGN", "KEY"]) || (c.has("REFERENCES") && c.has("COLUMN"));
    // A CHECK on a new column is checked against NULLs only: no scan.
    let check = c.has("CHECK") && !c.has("COLUMN");
    (fk || check).then(|| {
        "the constraint is validated by a full scan while the table is locked against writes".into()
    })
}
