//! `foreign-key-without-index`: a foreign key whose referencing columns lead
//! no index of the referencing table. PostgreSQL indexes the referenced
//! side (it must be unique) but never the referencing one; every DELETE of
//! a parent row, and every UPDATE of its key, then looks for child rows
//! with a sequential scan of the child, run by the RI trigger while the
//! parent's row lock and the statement's locks are held (manual, CREATE
//! TABLE, "REFERENCES": "it is often a good idea to index the referencing
//! columns too").
//!
//! The lint reads SQL text only, without the catalog: an index counts when
//! a statement of the pending migrations (earlier or later, any migration
//! of the set) creates it: `CREATE [UNIQUE] INDEX [CONCURRENTLY] ... ON
//! child (cols, ...)` without a `WHERE`, or a PRIMARY KEY / UNIQUE
//! constraint of CREATE TABLE / ALTER TABLE ADD. An index already in the
//! database is not seen: suppress such a finding with
//! `-- rehearse:ignore foreign-key-without-index <reason>`.
//!
//! "Leads" is order-sensitive, as in the common unindexed-foreign-key
//! checks: the index's first columns are the foreign key's, in order.

use super::{Classified, Context, Expected, Rule, RuleId};

pub(super) const RULE: Rule = Rule {
    id: RuleId::ForeignKeyWithoutIndex,
    fix: "create an index on the referencing columns (CREATE INDEX CONCURRENTLY on a live table)",
    expected: Expected::Static,
    check,
    bad: "ALTER TABLE order_items ADD CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id) NOT VALID",
    good: "CREATE TABLE order_items (order_id bigint REFERENCES orders (id), line int, PRIMARY KEY (order_id, line))",
};

/// Columns some index of `table` starts with (names normalised as
/// PostgreSQL folds them: unquoted lower-cased, quoted kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedColumns {
    pub table: Vec<String>,
    pub columns: Vec<String>,
}

fn check(c: &Classified, context: &Context) -> Option<String> {
    let (fks, own) = foreign_keys_and_indexes(c);
    let missing: Vec<String> = fks
        .into_iter()
        .filter(|fk| {
            !own.iter()
                .chain(context.indexes.iter())
                .any(|ix| covers(ix, fk))
        })
        .map(|fk| format!("{} ({})", fk.table.join("."), fk.columns.join(", ")))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "no index starts with the referencing columns of the foreign key on {}: \
             each delete or key update of a parent row scans the referencing table \
             while holding its locks",
            missing.join(", ")
        )
    })
}

/// Whether `index` serves lookups of the foreign key `fk`.
fn covers(index: &IndexedColumns, fk: &IndexedColumns) -> bool {
    same_table(&index.table, &fk.table)
        && index.columns.len() >= fk.columns.len()
        && index.columns[..fk.columns.len()] == fk.columns[..]
}

/// Same relation: last names equal, schemas equal when both are given.
fn same_table(a: &[String], b: &[String]) -> bool {
    match (a.split_last(), b.split_last()) {
        (Some((an, ar)), Some((bn, br))) => {
            an == bn && (ar.is_empty() || br.is_empty() || ar == br)
        }
        _ => false,
    }
}

/// The indexes one statement creates (what [`Context::indexes`] collects
/// over the pending migrations).
#[must_use]
pub fn indexes_created(c: &Classified) -> Vec<IndexedColumns> {
    let mut out = create_index(c).into_iter().collect::<Vec<_>>();
    out.extend(foreign_keys_and_indexes(c).1);
    out
}

/// PostgreSQL's folding of an identifier token.
fn ident(token: &str) -> Option<String> {
    if let Some(quoted) = token.strip_prefix('"') {
        return Some(quoted.strip_suffix('"').unwrap_or(quoted).to_string());
    }
    let word = token.chars().next()?;
    (word.is_alphabetic() || word == '_').then(|| token.to_lowercase())
}

/// A possibly qualified name starting at `at`: (parts, index after it).
fn qualified(t: &[String], mut at: usize) -> Option<(Vec<String>, usize)> {
    let mut parts = vec![ident(t.get(at)?)?];
    at += 1;
    while t.get(at).map(String::as_str) == Some(".") {
        parts.push(ident(t.get(at + 1)?)?);
        at += 2;
    }
    Some((parts, at))
}

/// The tokens inside the parenthesis opening at `open`, split at its
/// top-level commas; and the index after the closing parenthesis.
fn list(t: &[String], open: usize) -> Option<(Vec<&[String]>, usize)> {
    if t.get(open).map(String::as_str) != Some("(") {
        return None;
    }
    let mut depth = 0usize;
    let mut items = Vec::new();
    let mut start = open + 1;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match tok.as_str() {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    items.push(&t[start..i]);
                    return Some((items, i + 1));
                }
            }
            "," if depth == 1 => {
                items.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// Plain column names of a list; `None` when an element is an expression.
fn column_names(items: &[&[String]]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| match item {
            [first, rest @ ..] if rest.first().map(String::as_str) != Some("(") => ident(first),
            _ => None,
        })
        .collect()
}

/// `CREATE [UNIQUE] INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY]
/// table [USING method] (cols)`; expression leads and partial indexes
/// (`WHERE`) are not counted: they do not serve the RI lookup in general.
fn create_index(c: &Classified) -> Option<IndexedColumns> {
    let t = &c.tokens;
    if !(c.starts_with(&["CREATE", "INDEX"]) || c.starts_with(&["CREATE", "UNIQUE", "INDEX"])) {
        return None;
    }
    let on = t.iter().position(|w| w == "ON")?;
    let mut at = on + 1;
    if t.get(at).map(String::as_str) == Some("ONLY") {
        at += 1;
    }
    let (table, mut at) = qualified(t, at)?;
    if t.get(at).map(String::as_str) == Some("USING") {
        at += 2;
    }
    let (items, after) = list(t, at)?;
    if t[after..].iter().any(|w| w == "WHERE") {
        return None;
    }
    let mut columns = Vec::new();
    // The leading plain columns count, up to the first expression.
    for item in items {
        match column_names(&[item]) {
            Some(mut name) => columns.append(&mut name),
            None => break,
        }
    }
    (!columns.is_empty()).then_some(IndexedColumns { table, columns })
}

/// Foreign keys declared by a CREATE TABLE or ALTER TABLE, and the indexes
/// its PRIMARY KEY / UNIQUE constraints create.
fn foreign_keys_and_indexes(c: &Classified) -> (Vec<IndexedColumns>, Vec<IndexedColumns>) {
    let t = &c.tokens;
    let mut fks = Vec::new();
    let mut indexes = Vec::new();
    let (table, elements): (Vec<String>, Vec<&[String]>) =
        if c.starts_with(&["CREATE", "TABLE"]) || c.starts_with(&["CREATE", "UNLOGGED", "TABLE"]) {
            let Some(name_at) = t.iter().position(|w| w == "TABLE").map(|i| {
                if t[i + 1..].starts_with(&["IF".into(), "NOT".into(), "EXISTS".into()]) {
                    i + 4
                } else {
                    i + 1
                }
            }) else {
                return (fks, indexes);
            };
            let Some((table, at)) = qualified(t, name_at) else {
                return (fks, indexes);
            };
            let Some((items, _)) = list(t, at) else {
                return (fks, indexes);
            };
            (table, items)
        } else if c.starts_with(&["ALTER", "TABLE"]) {
            let mut at = 2;
            if t[at..].starts_with(&["IF".into(), "EXISTS".into()]) {
                at += 2;
            }
            if t.get(at).map(String::as_str) == Some("ONLY") {
                at += 1;
            }
            let Some((table, at)) = qualified(t, at) else {
                return (fks, indexes);
            };
            let mut actions = Vec::new();
            let mut depth = 0usize;
            let mut start = at;
            for (i, tok) in t.iter().enumerate().skip(at) {
                match tok.as_str() {
                    "(" => depth += 1,
                    ")" => depth = depth.saturating_sub(1),
                    "," if depth == 0 => {
                        actions.push(&t[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            actions.push(&t[start..]);
            let adds = actions
                .into_iter()
                .filter_map(|a| match a {
                    [add, rest @ ..] if add == "ADD" => Some(match rest {
                        [column, rest @ ..] if column == "COLUMN" => rest,
                        _ => rest,
                    }),
                    _ => None,
                })
                .map(|a| {
                    if a.starts_with(&["IF".into(), "NOT".into(), "EXISTS".into()]) {
                        &a[3..]
                    } else {
                        a
                    }
                })
                .collect();
            (table, adds)
        } else {
            return (fks, indexes);
        };
    let new = |columns| IndexedColumns {
        table: table.clone(),
        columns,
    };
    for element in elements {
        let mut e = element;
        if e.first().map(String::as_str) == Some("CONSTRAINT") {
            e = e.get(2..).unwrap_or_default();
        }
        let keyed = |at: usize| list(e, at).and_then(|(items, _)| column_names(&items));
        match e {
            [f, k, ..] if f == "FOREIGN" && k == "KEY" => fks.extend(keyed(2).map(new)),
            [p, k, ..] if p == "PRIMARY" && k == "KEY" => indexes.extend(keyed(2).map(new)),
            [u, ..] if u == "UNIQUE" => {
                // UNIQUE [NULLS [NOT] DISTINCT] (cols); not USING INDEX.
                if let Some(open) = e.iter().position(|w| w == "(") {
                    indexes.extend(keyed(open).map(new));
                }
            }
            [name, ..] if !["CHECK", "EXCLUDE", "LIKE"].contains(&name.as_str()) => {
                // A column definition with inline constraints.
                let Some(column) = ident(name) else { continue };
                let top = top_level(e);
                if top.contains(&"REFERENCES") {
                    fks.push(new(vec![column.clone()]));
                }
                if top.windows(2).any(|w| w == ["PRIMARY", "KEY"]) || top.contains(&"UNIQUE") {
                    indexes.push(new(vec![column]));
                }
            }
            _ => {}
        }
    }
    (fks, indexes)
}

/// The tokens of `e` outside any parenthesis (a DEFAULT or CHECK
/// expression cannot fake a REFERENCES).
fn top_level(e: &[String]) -> Vec<&str> {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for tok in e {
        match tok.as_str() {
            "(" => depth += 1,
            ")" => depth = depth.saturating_sub(1),
            w if depth == 0 => out.push(w),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{RuleId, classify, lint};
    use super::*;

    fn flagged(sqls: &[&str]) -> Vec<usize> {
        lint(&[crate::locks::adhoc_migration("1", sqls)])
            .into_iter()
            .filter(|f| f.rule == RuleId::ForeignKeyWithoutIndex)
            .map(|f| f.index)
            .collect()
    }

    const FK: &str = "ALTER TABLE order_items ADD CONSTRAINT fk FOREIGN KEY (order_id) REFERENCES orders (id) NOT VALID";

    #[test]
    fn an_unindexed_foreign_key_is_flagged() {
        assert_eq!(flagged(&[FK]), vec![0]);
        assert_eq!(
            flagged(&[
                "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders)"
            ]),
            vec![0]
        );
        assert_eq!(
            flagged(&[
                "ALTER TABLE items ADD COLUMN IF NOT EXISTS order_id bigint REFERENCES orders (id)"
            ]),
            vec![0]
        );
    }

    #[test]
    fn an_index_anywhere_in_the_pending_set_counts() {
        let index =
            "CREATE INDEX CONCURRENTLY order_items_order_idx ON public.order_items (order_id)";
        assert!(flagged(&[index, FK]).is_empty(), "index created before");
        assert!(flagged(&[FK, index]).is_empty(), "index created after");
        // In a later migration of the same pending set.
        let later = lint(&[
            crate::locks::adhoc_migration("1", &[FK]),
            crate::locks::adhoc_migration("2", &[index]),
        ]);
        assert!(
            later
                .iter()
                .all(|f| f.rule != RuleId::ForeignKeyWithoutIndex)
        );
        // An index on another table, or a partial one, does not.
        assert_eq!(
            flagged(&[FK, "CREATE INDEX i ON orders (order_id)"]),
            vec![0]
        );
        assert_eq!(
            flagged(&[
                FK,
                "CREATE INDEX i ON order_items (order_id) WHERE order_id > 0"
            ]),
            vec![0]
        );
    }

    #[test]
    fn a_composite_key_needs_an_index_led_by_its_columns_in_order() {
        let fk = "ALTER TABLE shipments ADD FOREIGN KEY (a, b) REFERENCES parent (a, b)";
        assert!(flagged(&["CREATE INDEX s_ab ON shipments (a, b)", fk]).is_empty());
        assert!(
            flagged(&[
                "CREATE INDEX s_abc ON shipments USING btree (a, b DESC, c)",
                fk
            ])
            .is_empty()
        );
        assert_eq!(
            flagged(&["CREATE INDEX s_ba ON shipments (b, a)", fk]),
            vec![1]
        );
        assert_eq!(flagged(&["CREATE INDEX s_a ON shipments (a)", fk]), vec![1]);
        assert_eq!(
            flagged(&["CREATE INDEX s_lower ON shipments ((lower(a)), b)", fk]),
            vec![1]
        );
    }

    #[test]
    fn keys_of_the_same_create_table_count() {
        assert!(
            flagged(&["CREATE TABLE t (parent_id int, n int, CONSTRAINT t_pk PRIMARY KEY (parent_id, n), CONSTRAINT t_fk FOREIGN KEY (parent_id) REFERENCES p)"])
                .is_empty()
        );
        assert!(
            flagged(&["CREATE TABLE IF NOT EXISTS t (parent_id int UNIQUE REFERENCES p)"])
                .is_empty()
        );
        assert_eq!(
            flagged(&[
                "CREATE TABLE t (id int PRIMARY KEY, parent_id int, FOREIGN KEY (parent_id) REFERENCES p)"
            ]),
            vec![0]
        );
    }

    #[test]
    fn index_parsing_normalises_names() {
        let c = classify("CREATE UNIQUE INDEX IF NOT EXISTS i ON ONLY \"Items\" (Order_Id, \"X\")");
        assert_eq!(
            indexes_created(&c),
            vec![IndexedColumns {
                table: vec!["Items".into()],
                columns: vec!["order_id".into(), "X".into()],
            }]
        );
    }
}
