//! `statement-after-access-exclusive`: a statement that runs after an
//! earlier one of the same transaction took ACCESS EXCLUSIVE. The lock is
//! held until commit, so every later statement (a second ALTER of the same
//! table included) lengthens the time reads and writes wait (eugene E4).

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::StatementAfterAccessExclusive,
    fix: "commit right after the ACCESS EXCLUSIVE statement: one locking statement per migration, or several ALTERs merged into one",
    expected: Expected::Static,
    check,
    bad: "UPDATE orders SET region = 'eu'",
    good: "SELECT 1",
};

fn check(c: &Classified, context: &Context) -> Option<String> {
    let table = context.access_exclusive.as_deref()?;
    if c.starts_with(&["SET"]) || c.starts_with(&["RESET"]) || c.starts_with(&["SELECT"]) {
        return None;
    }
    Some(format!(
        "runs while ACCESS EXCLUSIVE on {table}, taken earlier in this transaction, is held: reads and writes of it wait until commit"
    ))
}
