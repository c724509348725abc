//! `missing-lock-timeout`: a statement that takes a strong table lock with
//! no `lock_timeout` set earlier in the migration. Queued behind one long
//! transaction, its request blocks every later query on the table (the
//! lock-queue effect); lock_timeout makes it fail fast with 55P03 instead.

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::MissingLockTimeout,
    fix: "set lock_timeout (e.g. SET lock_timeout = '2s') before it and retry on 55P03",
    expected: Expected::LockWithoutTimeout,
    check,
    bad: "ALTER TABLE orders ADD COLUMN note text",
    good: "SET lock_timeout = '2s'",
};

fn check(c: &Classified, context: &Context) -> Option<String> {
    if context.lock_timeout_set || c.has("LOCK_TIMEOUT") {
        return None;
    }
    let strong = c.starts_with(&["ALTER", "TABLE"])
        || c.starts_with(&["DROP", "TABLE"])
        || c.starts_with(&["TRUNCATE"])
        || c.starts_with(&["LOCK"])
        || (c.starts_with(&["CREATE"]) && c.has("TRIGGER"));
    strong.then(|| "a strong table lock is requested with no lock_timeout: queued, it stalls every query on the table".into())
}
