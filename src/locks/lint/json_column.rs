//! `json-column`: a new `json` column. `json` has no equality operator, so
//! DISTINCT, UNION and GROUP BY on it fail, and it is reparsed on every
//! access; `jsonb` is what applications want (manual, "JSON Types";
//! eugene E3, squawk `prefer-jsonb`).

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::JsonColumn,
    fix: "use jsonb",
    expected: Expected::Static,
    check,
    bad: "ALTER TABLE orders ADD COLUMN meta json",
    good: "ALTER TABLE orders ADD COLUMN meta jsonb",
};

fn check(c: &Classified, _: &Context) -> Option<String> {
    let defines = (c.starts_with(&["ALTER", "TABLE"]) && c.has("ADD"))
        || c.starts_with(&["CREATE", "TABLE"])
        || (c.starts_with(&["ALTER", "TABLE"]) && c.has("TYPE"));
    (defines && c.has("JSON"))
        .then(|| "a json column: no equality operator (DISTINCT, UNION, GROUP BY fail), reparsed on every read".into())
}
