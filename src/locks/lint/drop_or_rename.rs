//! `drop-or-rename`: dropping or renaming a table, column or schema takes
//! ACCESS EXCLUSIVE only briefly, but breaks every deployed version still
//! using the old name (REFERENCE.md, "Operations that hurt"); DROP SCHEMA
//! ... CASCADE drops every table in it.

use super::{Classified, Context, Expected, Rule, RuleId};
use crate::locks::mode::LockMode;

pub(super) const RULE: Rule = Rule {
    id: RuleId::DropOrRename,
    fix: "deploy code that no longer uses the old name first (expand, then contract)",
    expected: Expected::TableLock(LockMode::AccessExclusive),
    check,
    bad: "ALTER TABLE orders RENAME COLUMN note TO comment",
    good: "ALTER TABLE orders ADD COLUMN comment text",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    let alter = c.starts_with(&["ALTER", "TABLE"]);
    let drops = c.starts_with(&["DROP", "TABLE"])
        || c.starts_with(&["DROP", "SCHEMA"])
        || (alter && c.has_seq(&["DROP", "COLUMN"]));
    let renames = alter && c.has("RENAME");
    (drops || renames).then(|| "code still using the old name fails once this runs".into())
}
