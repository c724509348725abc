//! `missing-statement-timeout`: a statement that blocks writes with no
//! `statement_timeout` set earlier in the migration: if it runs long (a
//! scan, a rewrite, a backfill) nothing stops it while the table stays
//! locked (squawk and eugene recommend both timeouts).

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::MissingStatementTimeout,
    fix: "set statement_timeout (e.g. SET statement_timeout = '5s') for the migration",
    expected: Expected::Static,
    check,
    bad: "ALTER TABLE orders ALTER COLUMN id TYPE bigint",
    good: "SET statement_timeout = '5s'",
};

fn check(c: &Classified, context: &Context) -> Option<String> {
    if context.statement_timeout_set || c.has("STATEMENT_TIMEOUT") {
        return None;
    }
    let long = c.starts_with(&["ALTER", "TABLE"])
        && (c.has("TYPE")
            || c.has_seq(&["SET", "NOT", "NULL"])
            || (c.has("ADD")
                && (c.has("CHECK") || c.has("REFERENCES") || c.has("UNIQUE") || c.has("PRIMARY"))
                && !c.has_seq(&["NOT", "VALID"])))
        || (c.starts_with(&["CREATE"]) && c.has("INDEX") && !c.has("CONCURRENTLY"))
        || c.starts_with(&["UPDATE"])
        || c.starts_with(&["DELETE"]);
    long.then(|| {
        "a statement that can run long under a write-blocking lock, with no statement_timeout"
            .into()
    })
}
