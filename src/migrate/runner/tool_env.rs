//! How a user's migration tool is told where the database is: the ways real
//! tools read it.
//!
//! | form | read by |
//! |---|---|
//! | `DATABASE_URL` = `postgresql://user:pw@host:port/db?sslmode=disable&application_name=...` | sqlx, dbmate, golang-migrate (lib/pq, pgx), Prisma, most app frameworks |
//! | `PGHOST` `PGPORT` `PGUSER` `PGPASSWORD` `PGDATABASE` `PGAPPNAME` `PGSSLMODE` | libpq (psql, psycopg), pgx, lib/pq |
//! | `JDBC_DATABASE_URL` = `jdbc:postgresql://host:port/db?sslmode=disable&ApplicationName=...` with `JDBC_DATABASE_USERNAME` / `JDBC_DATABASE_PASSWORD` | JDBC tools (Flyway, Liquibase), Spring |
//! | `{url}` `{jdbc_url}` `{host}` `{port}` `{user}` `{password}` `{database}` in `command` arguments | tools that take the connection as flags |
//!
//! `sslmode=disable`: the harness itself reaches this server without TLS
//! (its own connections use none), so the tool can too. Go's lib/pq
//! defaults to `sslmode=require` and fails with "SSL is not enabled on the
//! server" unless told (lib/pq docs, "Connection String Parameters"). The
//! scheme is `postgresql://`, the one every driver accepts (SQLAlchemy
//! rejects `postgres://` since 1.4).

use crate::provision::ConnInfo;

/// The connection of one tool process, in every form tools read.
pub(crate) struct ToolEnv {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
    app: String,
}

impl ToolEnv {
    /// `conn` as seen by the tool (for a container: the host and port the
    /// container reaches), identifying itself as `app`.
    pub(crate) fn new(conn: &ConnInfo, app: &str) -> Self {
        ToolEnv {
            host: conn.host.clone(),
            port: conn.port,
            user: conn.user.clone(),
            password: conn.password().map(str::to_string),
            database: conn.dbname.clone(),
            app: app.to_string(),
        }
    }

    /// `postgresql://user:password@host:port/db?sslmode=disable&application_name=app`.
    pub(crate) fn url(&self) -> String {
        let mut url = url::Url::parse("postgresql://localhost").expect("static url parses");
        // Setting parts on a parsed URL percent-encodes them correctly.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        let _ = url.set_password(self.password.as_deref());
        url.set_path(&self.database);
        url.query_pairs_mut()
            .append_pair("sslmode", "disable")
            .append_pair("application_name", &self.app);
        url.to_string()
    }

    /// `jdbc:postgresql://host:port/db?sslmode=disable&ApplicationName=app`;
    /// user and password go separately (pgjdbc "Connecting to the Database").
    pub(crate) fn jdbc_url(&self) -> String {
        let mut url = url::Url::parse("postgresql://localhost").expect("static url parses");
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        url.set_path(&self.database);
        url.query_pairs_mut()
            .append_pair("sslmode", "disable")
            .append_pair("ApplicationName", &self.app);
        format!("jdbc:{url}")
    }

    /// Environment variables for the tool process or container.
    pub(crate) fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("DATABASE_URL", self.url()),
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.database.clone()),
            ("PGAPPNAME", self.app.clone()),
            ("PGSSLMODE", "disable".into()),
            ("JDBC_DATABASE_URL", self.jdbc_url()),
            ("JDBC_DATABASE_USERNAME", self.user.clone()),
        ];
        if let Some(password) = &self.password {
            vars.push(("PGPASSWORD", password.clone()));
            vars.push(("JDBC_DATABASE_PASSWORD", password.clone()));
        }
        vars
    }

    /// `arg` with every placeholder replaced.
    pub(crate) fn expand(&self, arg: &str) -> String {
        if !arg.contains('{') {
            return arg.to_string();
        }
        arg.replace("{url}", &self.url())
            .replace("{jdbc_url}", &self.jdbc_url())
            .replace("{host}", &self.host)
            .replace("{port}", &self.port.to_string())
            .replace("{user}", &self.user)
            .replace("{password}", self.password.as_deref().unwrap_or(""))
            .replace("{database}", &self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> ToolEnv {
        let conn = ConnInfo::new("127.0.0.1", 5433, "rehearse")
            .with_password(Some("p@ss w".into()))
            .with_dbname("app_1");
        ToolEnv::new(&conn, "rehearse-replica-3")
    }

    #[test]
    fn urls_carry_sslmode_and_the_replica_name() {
        let env = env();
        assert_eq!(
            env.url(),
            "postgresql://rehearse:p%40ss%20w@127.0.0.1:5433/app_1?sslmode=disable&application_name=rehearse-replica-3"
        );
        assert_eq!(
            env.jdbc_url(),
            "jdbc:postgresql://127.0.0.1:5433/app_1?sslmode=disable&ApplicationName=rehearse-replica-3"
        );
        let vars = env.vars();
        let get = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("PGPORT").as_deref(), Some("5433"));
        assert_eq!(get("PGPASSWORD").as_deref(), Some("p@ss w"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("disable"));
    }

    #[test]
    fn placeholders_expand_in_arguments() {
        let env = env();
        assert_eq!(
            env.expand("-url={jdbc_url}"),
            format!("-url={}", env.jdbc_url())
        );
        assert_eq!(
            env.expand("{host}:{port}/{database} as {user}/{password}"),
            "127.0.0.1:5433/app_1 as rehearse/p@ss w"
        );
        assert_eq!(env.expand("--url={url}"), format!("--url={}", env.url()));
        assert_eq!(env.expand("plain"), "plain");
    }
}
