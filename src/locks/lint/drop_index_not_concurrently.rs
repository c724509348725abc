//! `drop-index-not-concurrently`: DROP INDEX takes ACCESS EXCLUSIVE on the
//! index's table, so reads and writes queue behind it; DROP INDEX
//! CONCURRENTLY waits for them instead (manual, DROP INDEX; squawk
//! `require-concurrent-index-deletion`).

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::DropIndexNotConcurrently,
    fix: "DROP INDEX CONCURRENTLY (in a migration without a transaction)",
    expected: Expected::TableLock(LockMode::AccessExclusive),
    check,
    bad: "DROP INDEX orders_note_idx",
    good: "DROP INDEX CONCURRENTLY orders_note_idx",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["DROP", "INDEX"]) && !c.has("CONCURRENTLY"))
        .then(|| "DROP INDEX holds ACCESS EXCLUSIVE on the table: reads and writes wait".into())
}
