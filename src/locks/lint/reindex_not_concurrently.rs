//! `reindex-not-concurrently`: REINDEX blocks writes to the table for the
//! whole rebuild (SHARE on the table, ACCESS EXCLUSIVE on the index, so
//! queries using it wait too); REINDEX CONCURRENTLY (PostgreSQL 12+) does
//! not (manual, REINDEX; squawk `require-concurrent-index-creation`).

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::ReindexNotConcurrently,
    fix: "REINDEX ... CONCURRENTLY (in a migration without a transaction)",
    expected: Expected::TableLock(LockMode::Share),
    check,
    bad: "REINDEX INDEX orders_note_idx",
    good: "REINDEX INDEX CONCURRENTLY orders_note_idx",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["REINDEX"]) && !c.has("CONCURRENTLY"))
        .then(|| "REINDEX blocks writes to the table for the whole rebuild".into())
}
