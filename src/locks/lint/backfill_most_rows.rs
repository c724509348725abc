//! `backfill-most-rows`: an UPDATE or DELETE with a WHERE that still
//! touched most of the table's rows in one transaction (judged by the
//! trace's row count against the table's rows just before): every touched
//! row stays locked until commit, as with no WHERE at all. Only reported
//! when the trace confirms it.

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::BackfillMostRows,
    fix: "batch the backfill (e.g. 1,000 rows per transaction, by primary key ranges)",
    expected: Expected::MostRows,
    check,
    bad: "UPDATE orders SET status = 'new' WHERE status IS NULL",
    good: "UPDATE orders SET status = 'new'",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    // Without WHERE: unbatched-backfill says it already.
    let dml = c.starts_with(&["UPDATE"]) || c.starts_with(&["DELETE"]);
    (dml && c.has("WHERE")).then(|| {
        "touched most of the table's rows in one transaction: each stays locked until commit".into()
    })
}
