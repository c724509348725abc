//! `unbatched-backfill`: an UPDATE or DELETE without WHERE locks every row
//! of the table until the migration commits; batching keeps each lock short
//! (REFERENCE.md, "Operations that hurt").

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::UnbatchedBackfill,
    fix: "batch the backfill (e.g. 1,000 rows per transaction, by primary key ranges)",
    expected: Expected::Slow,
    check,
    bad: "UPDATE orders SET status = 'new'",
    good: "UPDATE orders SET status = 'new' WHERE id BETWEEN 1 AND 1000",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    let dml = c.starts_with(&["UPDATE"]) || c.starts_with(&["DELETE"]);
    (dml && !c.has("WHERE"))
        .then(|| "touches every row in one transaction: each stays locked until commit".into())
}
