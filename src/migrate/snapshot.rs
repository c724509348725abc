//! Reading database state after a run: catalog snapshot, data checksums,
//! advisory locks still held, invalid indexes. Only reading; comparing the
//! results is the findings' job.

use tokio_postgres::Client;

use crate::migrate::Migration;
use crate::timeline::{
    Column, Constraint, HeldAdvisoryLock, Index, SchemaSnapshot, TableData, Trigger,
};

// --- SQL: every catalog query of the snapshot, kept together. User schemas
// are everything but pg_catalog, information_schema, toast and temp.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

fn columns_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod), \
         a.attnotnull, pg_get_expr(d.adbin, d.adrelid) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {USER_SCHEMA} \
         ORDER BY 1, a.attnum"
    )
}

fn constraints_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname, k.conname, pg_get_constraintdef(k.oid), k.convalidated \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA} ORDER BY 1, 2"
    )
}

fn indexes_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname, ic.relname, pg_get_indexdef(i.indexrelid), i.indisvalid \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA} ORDER BY 1, 2"
    )
}

fn triggers_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname, t.tgname, pg_get_triggerdef(t.oid) \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND {USER_SCHEMA} ORDER BY 1, 2"
    )
}

fn enums_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || t.typname, e.enumlabel::text \
         FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
         JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_SCHEMA} \
         ORDER BY 1, e.enumsortorder"
    )
}

fn sequences_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL) \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMA} ORDER BY 1"
    )
}

fn tables_sql() -> String {
    format!(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} ORDER BY 1"
    )
}

/// Granted advisory locks of the current database. A bigint key is split
/// into classid (high half) and objid (low half), objsubid = 1.
const ADVISORY_LOCKS_SQL: &str = "SELECT ((l.classid::bigint << 32) | l.objid::bigint), l.pid, \
    a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
    WHERE l.locktype = 'advisory' AND l.granted \
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
    ORDER BY 2, 1";

const INVALID_INDEXES_SQL: &str = "SELECT n.nspname || '.' || c.relname FROM pg_index i \
    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE NOT i.indisvalid ORDER BY 1";

/// The user-visible schema of `client`'s database.
pub async fn schema_snapshot(client: &Client) -> Result<SchemaSnapshot, tokio_postgres::Error> {
    let mut snap = SchemaSnapshot::default();
    for row in client.query(&tables_sql(), &[]).await? {
        snap.tables.entry(row.get(0)).or_default();
    }
    for row in client.query(&columns_sql(), &[]).await? {
        let table: String = row.get(0);
        snap.tables.entry(table).or_default().columns.push(Column {
            name: row.get(1),
            data_type: row.get(2),
            not_null: row.get(3),
            default: row.get(4),
        });
    }
    for row in client.query(&constraints_sql(), &[]).await? {
        let table: String = row.get(0);
        snap.tables
            .entry(table)
            .or_default()
            .constraints
            .push(Constraint {
                name: row.get(1),
                definition: row.get(2),
                validated: row.get(3),
            });
    }
    for row in client.query(&indexes_sql(), &[]).await? {
        let table: String = row.get(0);
        snap.tables.entry(table).or_default().indexes.push(Index {
            name: row.get(1),
            definition: row.get(2),
            valid: row.get(3),
        });
    }
    for row in client.query(&triggers_sql(), &[]).await? {
        let table: String = row.get(0);
        snap.tables
            .entry(table)
            .or_default()
            .triggers
            .push(Trigger {
                name: row.get(1),
                definition: row.get(2),
            });
    }
    for row in client.query(&enums_sql(), &[]).await? {
        snap.enums.entry(row.get(0)).or_default().push(row.get(1));
    }
    for row in client.query(&sequences_sql(), &[]).await? {
        snap.sequences.insert(row.get(0), row.get(1));
    }
    Ok(snap)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Columns that take part in the data checksum: every column except those
/// whose values differ between any two runs by nature (timestamps, dates,
/// times, UUIDs), so a serial reference run can match the race.
const STABLE_COLUMNS_SQL: &str = "SELECT quote_ident(attname) FROM pg_attribute \
    WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped \
    AND atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype, \
    'time'::regtype, 'timetz'::regtype, 'uuid'::regtype) ORDER BY attnum";

/// Row count and order-independent checksum of each table (`schema.name`),
/// over every column but timestamps, dates, times and UUIDs. A table that cannot be read
/// (dropped, never created) gets `rows = -1`.
pub async fn table_data(client: &Client, tables: &[String]) -> Vec<TableData> {
    let mut out = Vec::new();
    for table in tables {
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let qualified = format!("{}.{}", quote_ident(schema), quote_ident(name));
        let columns: Vec<String> = match client.query(STABLE_COLUMNS_SQL, &[&qualified]).await {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(_) => Vec::new(),
        };
        let row_text = if columns.is_empty() {
            "''".to_string()
        } else {
            format!(
                "ROW({})::text",
                columns
                    .iter()
                    .map(|c| format!("t.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let query = format!(
            "SELECT count(*), md5(coalesce(string_agg({row_text}, E'\\n' ORDER BY {row_text}), '')) \
             FROM {qualified} t"
        );
        let data = match client.query_one(&query, &[]).await {
            Ok(row) => TableData {
                table: table.clone(),
                rows: row.get(0),
                checksum: row.get(1),
            },
            Err(_) => TableData {
                table: table.clone(),
                rows: -1,
                checksum: None,
            },
        };
        out.push(data);
    }
    out
}

/// Advisory locks granted in this database, with their holders.
pub async fn advisory_locks(
    client: &Client,
) -> Result<Vec<HeldAdvisoryLock>, tokio_postgres::Error> {
    Ok(client
        .query(ADVISORY_LOCKS_SQL, &[])
        .await?
        .iter()
        .map(|r| HeldAdvisoryLock {
            key: r.get(0),
            pid: r.get(1),
            application_name: r.get(2),
        })
        .collect())
}

/// `schema.name` of every index with `indisvalid = false`.
pub async fn invalid_indexes(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query(INVALID_INDEXES_SQL, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Tables the migrations write rows into (`INSERT INTO`, `UPDATE`,
/// `DELETE FROM`, `MERGE INTO`, `COPY`), as `schema.name`, sorted. A lexical
/// scan: enough to pick the tables whose data a race may duplicate.
#[must_use]
pub fn data_tables(migrations: &[Migration]) -> Vec<String> {
    let mut out = Vec::new();
    for m in migrations {
        for s in &m.statements {
            let words: Vec<&str> = s
                .sql
                .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
                .filter(|w| !w.is_empty())
                .collect();
            for (i, w) in words.iter().enumerate() {
                let target = match w.to_ascii_lowercase().as_str() {
                    "insert" | "merge"
                        if words
                            .get(i + 1)
                            .is_some_and(|n| n.eq_ignore_ascii_case("into")) =>
                    {
                        words.get(i + 2)
                    }
                    "delete"
                        if words
                            .get(i + 1)
                            .is_some_and(|n| n.eq_ignore_ascii_case("from")) =>
                    {
                        words.get(i + 2)
                    }
                    "update" | "copy" if i == 0 => words.get(i + 1),
                    _ => None,
                };
                if let Some(t) = target {
                    let t = t.trim_matches(|c| c == ',' || c == ')');
                    let (schema, name) = t.split_once('.').unwrap_or(("public", t));
                    let clean = |s: &str| {
                        if s.starts_with('"') {
                            s.trim_matches('"').replace("\"\"", "\"")
                        } else {
                            s.to_ascii_lowercase()
                        }
                    };
                    out.push(format!("{}.{}", clean(schema), clean(name)));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::{MigrationKind, Statement};

    #[test]
    fn data_tables_are_found_lexically() {
        let m = Migration {
            version: "1".into(),
            description: "d".into(),
            kind: MigrationKind::Versioned,
            path: "1_d.sql".into(),
            statements: [
                "CREATE TABLE plans (id int)",
                "INSERT INTO plans(id) VALUES (1)",
                "UPDATE app.\"Users\" SET x = 1",
                "DELETE FROM Audit WHERE true",
                "SELECT 1",
            ]
            .iter()
            .enumerate()
            .map(|(i, s)| Statement {
                sql: (*s).into(),
                line: i + 1,
            })
            .collect(),
            transactional: true,
            down: None,
        };
        assert_eq!(
            data_tables(&[m]),
            ["app.Users", "public.audit", "public.plans"]
        );
    }
}
