//! `unsafe-enum-change`: ALTER TYPE ... RENAME VALUE breaks every deployed
//! version still writing or comparing the old label, and there is no
//! DROP VALUE: removing a label means recreating the type, which rewrites
//! every column using it (manual, ALTER TYPE). ADD VALUE is safe, but the
//! new label cannot be used before the migration commits (55P04).

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::UnsafeEnumChange,
    fix: "add the new label (ADD VALUE), move the code and the rows to it, stop using the old one; never rename a label in place",
    expected: Expected::Static,
    check,
    bad: "ALTER TYPE order_status RENAME VALUE 'new' TO 'created'",
    good: "ALTER TYPE order_status ADD VALUE 'created'",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    (c.starts_with(&["ALTER", "TYPE"]) && c.has_seq(&["RENAME", "VALUE"]))
        .then(|| "renaming an enum label breaks code still using the old label".into())
}
