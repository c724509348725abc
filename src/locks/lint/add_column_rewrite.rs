//! `add-column-rewrite`: ADD COLUMN with a volatile default, SERIAL,
//! identity or GENERATED ... STORED rewrites the table under ACCESS
//! EXCLUSIVE; a constant default is metadata-only since PostgreSQL 11
//! (manual, ALTER TABLE, "Notes").

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::AddColumnRewrite,
    fix: "add the column without a default, backfill it in batches, then SET DEFAULT",
    expected: Expected::Rewrite,
    check,
    bad: "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid()",
    good: "ALTER TABLE orders ADD COLUMN status text DEFAULT 'new'",
};

/// Volatile functions commonly used as defaults.
const VOLATILE: [&str; 6] = [
    "GEN_RANDOM_UUID",
    "UUID_GENERATE_V4",
    "RANDOM",
    "CLOCK_TIMESTAMP",
    "TIMEOFDAY",
    "NEXTVAL",
];

fn check(c: &Classified, _: &Context) -> Option<String> {
    if !c.starts_with(&["ALTER", "TABLE"]) || !c.has("ADD") {
        return None;
    }
    let volatile = c.has("DEFAULT") && VOLATILE.iter().any(|f| c.has(f));
    let serial = ["SERIAL", "BIGSERIAL", "SMALLSERIAL"]
        .iter()
        .any(|t| c.has(t));
    let generated = c.has("GENERATED") && (c.has("STORED") || c.has("IDENTITY"));
    (volatile || serial || generated)
        .then(|| "the new column's value is computed per row: the table is rewritten under ACCESS EXCLUSIVE".into())
}
