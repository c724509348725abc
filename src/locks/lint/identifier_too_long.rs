//! `identifier-too-long`: PostgreSQL truncates identifiers to 63 bytes
//! (NAMEDATALEN - 1) with only a NOTICE, so two long names can collide and
//! the name in the catalog differs from the one in the code (manual,
//! "Identifiers and Key Words").

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::IdentifierTooLong,
    fix: "use a name of at most 63 bytes",
    expected: Expected::Static,
    check,
    bad: "CREATE INDEX orders_customer_id_created_at_status_partial_covering_index_for_reports ON orders (customer_id)",
    good: "CREATE INDEX orders_customer_created_idx ON orders (customer_id)",
};

/// NAMEDATALEN - 1.
const MAX_BYTES: usize = 63;

fn check(c: &Classified, _: &Context) -> Option<String> {
    let ddl = ["CREATE", "ALTER"].iter().any(|w| c.starts_with(&[w]));
    if !ddl {
        return None;
    }
    c.tokens
        .iter()
        // Words and quoted identifiers; string literals keep their quotes.
        .filter(|t| !t.starts_with('\'') && t.as_str() != "$$")
        .map(|t| t.trim_matches('"'))
        .find(|t| t.len() > MAX_BYTES)
        .map(|t| {
            format!(
                "identifier of {} bytes is truncated to {MAX_BYTES}: {}",
                t.len(),
                t.to_lowercase()
            )
        })
}
