//! Helpers shared by the seed integration tests.
#![allow(dead_code)]

use tokio_postgres::Client;

/// Counts child rows whose foreign key finds no parent, for every foreign
/// key in the database. Empty when referential integrity holds.
pub async fn orphans(client: &Client) -> Vec<(String, i64)> {
    let fks = client
        .query(
            "SELECT con.conname, con.conrelid::regclass::text, con.confrelid::regclass::text,
                    (SELECT array_agg(quote_ident(a.attname) ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n),
                    (SELECT array_agg(quote_ident(a.attname) ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                       JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n)
             FROM pg_constraint con WHERE con.contype = 'f'",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for fk in fks {
        let name: String = fk.get(0);
        let child: String = fk.get(1);
        let parent: String = fk.get(2);
        let ccols: Vec<String> = fk.get(3);
        let pcols: Vec<String> = fk.get(4);
        let join = ccols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let not_null = ccols
            .iter()
            .map(|c| format!("c.{c} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT count(*) FROM {child} c WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})"
        );
        let n: i64 = client.query_one(&sql, &[]).await.unwrap().get(0);
        out.push((name, n));
    }
    out
}

/// Row count of a table (name already quoted as needed).
pub async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// md5 over every row of every user table, in a stable order.
pub async fn checksums(client: &Client) -> Vec<(String, String)> {
    let tables = client
        .query(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let name: String = t.get(0);
        let sum: String = client
            .query_one(
                &format!("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {name} t"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        out.push((name, sum));
    }
    out
}

pub const ECOMMERCE: &str = include_str!("../../scenarios/ecommerce/migrations/0001_schema.sql");
pub const SAAS: &str = include_str!("../../scenarios/saas/migrations/0001_schema.sql");
