//! `set-not-null`: SET NOT NULL scans the whole table under ACCESS
//! EXCLUSIVE (and fails with 23502 on a NULL); a validated CHECK (col IS
//! NOT NULL) lets PostgreSQL 12+ skip the scan (manual, ALTER TABLE).

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::SetNotNull,
    fix: "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL",
    expected: Expected::TableLock(LockMode::AccessExclusive),
    check,
    bad: "ALTER TABLE orders ALTER COLUMN user_id SET NOT NULL",
    good: "ALTER TABLE orders ALTER COLUMN user_id DROP NOT NULL",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["ALTER", "TABLE"]) && c.has_seq(&["SET", "NOT", "NULL"]))
        .then(|| "SET NOT NULL scans the whole table while holding ACCESS EXCLUSIVE".into())
}
