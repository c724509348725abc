//! Every SQL statement of the seeding stage, and identifier quoting.

/// Columns of every user table (not system, not extension-owned, not a partition).
pub(crate) const COLUMNS: &str = "
SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname, a.attnotnull, a.atttypid, a.atttypmod,
       format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),
       a.attidentity::text, a.attgenerated::text, c.relkind = 'p'
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend dep
                  WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.deptype = 'e')
ORDER BY n.nspname, c.relname, a.attnum";

/// Every type, for resolving domains, arrays and enums of columns.
pub(crate) const TYPES: &str = "
SELECT t.oid, t.typname, t.typtype::text, t.typelem, t.typbasetype, t.typtypmod, t.typcategory::text
FROM pg_type t";

pub(crate) const ENUM_LABELS: &str =
    "SELECT enumtypid, enumlabel FROM pg_enum ORDER BY enumtypid, enumsortorder";

/// Primary key, unique, foreign key and check constraints.
pub(crate) const CONSTRAINTS: &str = "
SELECT con.conrelid, con.conname, con.contype::text, con.conkey, con.confrelid, con.confkey,
       pg_get_constraintdef(con.oid)
FROM pg_constraint con
WHERE con.conrelid <> 0 AND con.contype IN ('p', 'u', 'f', 'c')
ORDER BY con.conrelid, con.conname";

/// Unique indexes that back no constraint (`CREATE UNIQUE INDEX`): the
/// generator must honour them too. Expression columns (attnum 0) are left out.
pub(crate) const UNIQUE_INDEXES: &str = "
SELECT i.indrelid, i.indkey::int2[]
FROM pg_index i
WHERE i.indisunique
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                  AND con.conrelid = i.indrelid)";

/// Indexes of a table that no constraint depends on: dropped before loading
/// an empty table and recreated afterwards, which loads much faster.
pub(crate) const DROPPABLE_INDEXES: &str = "
SELECT quote_ident(n.nspname) || '.' || quote_ident(ic.relname), pg_get_indexdef(i.indexrelid)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE i.indrelid = $1::oid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
ORDER BY ic.relname";

/// Foreign keys from a table, dropped before loading an empty table and
/// added back afterwards: one validating join instead of a trigger per row.
pub(crate) const OUTGOING_FOREIGN_KEYS: &str = "
SELECT quote_ident(con.conname), pg_get_constraintdef(con.oid)
FROM pg_constraint con
WHERE con.conrelid = $1::oid AND con.contype = 'f'
ORDER BY con.conname";

/// Primary key and unique constraints of a table: dropped before loading an
/// empty table nobody else references and added back afterwards, so their
/// indexes are built once, sorted, instead of row by row.
pub(crate) const KEY_CONSTRAINTS: &str = "
SELECT quote_ident(con.conname), pg_get_constraintdef(con.oid)
FROM pg_constraint con
WHERE con.conrelid = $1::oid AND con.contype IN ('p', 'u')
ORDER BY con.contype, con.conname";

/// Quotes an identifier the way Postgres' `quote_ident` does, always.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub(crate) fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// A comma-separated list of quoted column names.
pub(crate) fn column_list<'a>(columns: impl IntoIterator<Item = &'a str>) -> String {
    columns
        .into_iter()
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT EXISTS` of any row in a table.
pub(crate) fn has_rows(table: &str) -> String {
    format!("SELECT EXISTS (SELECT 1 FROM {table})")
}

/// `COPY` of the listed columns in binary format. `FREEZE` writes rows
/// already frozen and all-visible, as long-lived production rows are, so the
/// first scan in the rehearsal does not rewrite every page to set hint bits.
pub(crate) fn copy_in(table: &str, columns: &str, freeze: bool) -> String {
    let freeze = if freeze { ", FREEZE" } else { "" };
    format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary{freeze})")
}

/// Empties tables in this transaction, which is what allows `COPY FREEZE`.
pub(crate) fn truncate(tables: &[String]) -> String {
    format!("TRUNCATE {}", tables.join(", "))
}

/// Parent keys for a foreign key, cast to the child's column types, in a
/// stable order so the same seed picks the same parents.
pub(crate) fn parent_keys(table: &str, select: &str, not_null: &str, order: &str) -> String {
    format!("SELECT {select} FROM {table} WHERE {not_null} ORDER BY {order}")
}

/// Moves a serial or identity sequence past the loaded values.
pub(crate) fn sync_sequence(table: &str, column: &str) -> String {
    format!(
        "SELECT setval(pg_get_serial_sequence($1, $2), greatest(max({column})::bigint, 1)) FROM {table}"
    )
}

/// Fills a foreign key left NULL during load (a cycle or a self-reference):
/// each child row gets a parent chosen by its position, so the result depends
/// only on the data and the seed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_deferred_fk(
    child: &str,
    parent: &str,
    child_cols: &[String],
    parent_cols: &[String],
    seed: u64,
    null_per_mille: u32,
) -> String {
    let pcols = column_list(parent_cols.iter().map(String::as_str));
    let not_null = parent_cols
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let set = child_cols
        .iter()
        .zip(parent_cols)
        .map(|(c, p)| format!("{} = p.{}", quote_ident(c), quote_ident(p)))
        .collect::<Vec<_>>()
        .join(", ");
    let offset = seed % 1_000_003;
    format!(
        "WITH p AS (SELECT {pcols}, row_number() OVER (ORDER BY {pcols}) - 1 AS rn FROM {parent} WHERE {not_null}),
              n AS (SELECT count(*) AS n FROM p),
              c AS (SELECT ctid AS tid, row_number() OVER (ORDER BY ctid) - 1 AS rn FROM {child})
         UPDATE {child} AS t SET {set}
         FROM c, n, p
         WHERE t.ctid = c.tid AND n.n > 0
           AND p.rn = (c.rn * 7919 + {offset}) % n.n
           AND (c.rn * 104729 + {offset}) % 1000 >= {null_per_mille}"
    )
}
