//! `create-index-not-concurrently`: CREATE INDEX holds SHARE on the table
//! for the whole build: writes stop, reads continue (manual, CREATE INDEX,
//! "Building Indexes Concurrently").

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::CreateIndexNotConcurrently,
    fix: "create the index CONCURRENTLY (in a migration without a transaction)",
    expected: Expected::TableLock(LockMode::Share),
    check,
    bad: "CREATE INDEX orders_created_idx ON orders (created_at)",
    good: "CREATE INDEX CONCURRENTLY orders_created_idx ON orders (created_at)",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    let create =
        c.starts_with(&["CREATE", "INDEX"]) || c.starts_with(&["CREATE", "UNIQUE", "INDEX"]);
    (create && !c.has("CONCURRENTLY"))
        .then(|| "CREATE INDEX blocks every write to the table for the whole build".into())
}
