//! `alter-column-type`: ALTER COLUMN ... TYPE rewrites the table and
//! rebuilds its indexes under ACCESS EXCLUSIVE unless the change is
//! binary-coercible (varchar widened, varchar -> text): the trace tells
//! which (manual, ALTER TABLE, "Notes").

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::AlterColumnType,
    fix: "add a new column, backfill it in batches, switch reads, then drop the old one",
    expected: Expected::Rewrite,
    check,
    bad: "ALTER TABLE orders ALTER COLUMN id TYPE bigint",
    good: "ALTER TABLE orders ALTER COLUMN note SET DEFAULT ''",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["ALTER", "TABLE"])
        && c.has("ALTER")
        && c.has("TYPE")
        && !c.has_seq(&["ADD", "COLUMN"]))
    .then(|| "changing a column's type may rewrite the table under ACCESS EXCLUSIVE".into())
}
