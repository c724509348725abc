//! `add-unique-constraint`: ADD UNIQUE / PRIMARY KEY builds its index under
//! ACCESS EXCLUSIVE. CREATE UNIQUE INDEX CONCURRENTLY then ADD CONSTRAINT
//! ... USING INDEX holds the strong lock only briefly (manual, ALTER TABLE).

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::AddUniqueConstraint,
    fix: "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX",
    expected: Expected::TableLock(LockMode::AccessExclusive),
    check,
    bad: "ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code)",
    good: "ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_idx",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    let adds = c.starts_with(&["ALTER", "TABLE"]) && c.has("ADD");
    let unique = c.has("UNIQUE") || c.has_seq(&["PRIMARY", "KEY"]);
    (adds && unique && !c.has_seq(&["USING", "INDEX"])).then(|| {
        "the unique index is built while the table is locked against reads and writes".into()
    })
}
