//! `add-not-null-without-default`: ADD COLUMN ... NOT NULL with no DEFAULT
//! fails with 23502 on any table that has rows (REFERENCE.md, "Operations
//! that hurt"; squawk `adding-required-field`).

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::AddNotNullWithoutDefault,
    fix: "add the column nullable (or with a constant DEFAULT), backfill, then SET NOT NULL",
    expected: Expected::Static,
    check,
    bad: "ALTER TABLE orders ADD COLUMN region text NOT NULL",
    good: "ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'eu'",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["ALTER", "TABLE"])
        && c.has("ADD")
        && !c.has("CONSTRAINT")
        && c.has_seq(&["NOT", "NULL"])
        && !c.has("DEFAULT")
        && !c.has("GENERATED"))
    .then(|| "a NOT NULL column without a default fails (23502) on a table with rows".into())
}
