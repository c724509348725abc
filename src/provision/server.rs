//! The url backend: a throwaway database on a server the user names.
//!
//! It creates databases named with the run id and drops exactly those
//! afterwards; nothing else on the server is touched.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use tokio_postgres::config::Host;

use super::{
    ConnInfo, ProvisionError, ProvisionOptions, ServerVersion, block_on_cleanup, describe_pg_error,
    quote_ident,
};

/// A database we created on someone else's server, plus every further
/// database (template, clone) created through the same handle.
pub(crate) struct ServerDatabase {
    admin: ConnInfo,
    conn: ConnInfo,
    version: ServerVersion,
    created: Arc<Mutex<Vec<String>>>,
}

/// Parses a `postgres://` URL or key=value string without ever echoing the
/// password in an error.
pub fn parse_url(url: &str) -> Result<ConnInfo, ProvisionError> {
    let password_of = || {
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.password().map(str::to_string))
    };
    let scrub = |message: String| match password_of() {
        Some(p) if !p.is_empty() => message.replace(&p, "<redacted>"),
        _ => message,
    };
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| ProvisionError::BadUrl(scrub(describe_pg_error(&e))))?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .ok_or_else(|| ProvisionError::BadUrl("no user name in the url".into()))?;
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let dbname = config.get_dbname().unwrap_or("postgres").to_string();
    Ok(ConnInfo::new(host, port, user)
        .with_password(password)
        .with_dbname(dbname))
}

impl ServerDatabase {
    pub(crate) async fn create(
        options: &ProvisionOptions,
    ) -> Result<ServerDatabase, ProvisionError> {
        let url = options
            .database_url
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .ok_or(ProvisionError::MissingUrl)?;
        let admin = parse_url(&url)?;
        // Unique even when one run provisions several times.
        let name = format!("rehearse_{}_{:04x}", options.run_id, rand::random::<u16>());
        let client = tokio::time::timeout(options.startup_timeout, admin.connect("rehearse-admin"))
            .await
            .map_err(|_| ProvisionError::Connect {
                target: admin.display_url(),
                message: format!("no answer within {} s", options.startup_timeout.as_secs()),
            })??;
        client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|e| ProvisionError::Sql {
                operation: format!("creating database {name}"),
                target: admin.display_url(),
                message: describe_pg_error(&e),
            })?;
        let created = Arc::new(Mutex::new(vec![name.clone()]));
        let version = ServerVersion::read(&client, "")
            .await
            .map_err(|e| ProvisionError::Sql {
                operation: "reading the server version".into(),
                target: admin.display_url(),
                message: describe_pg_error(&e),
            });
        let conn = admin.clone().with_dbname(&name);
        // Constructed before checking `version`, so a failure still drops
        // the database just created.
        let mut database = ServerDatabase {
            admin,
            conn,
            version: ServerVersion::default(),
            created,
        };
        database.version = version?;
        Ok(database)
    }

    pub(crate) fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub(crate) fn resources(&self) -> Vec<super::Resource> {
        let names = self.names();
        names
            .iter()
            .cloned()
            .map(super::Resource::Database)
            .collect()
    }

    /// The databases to drop. A panic elsewhere cannot leave the list half
    /// updated, so a poisoned lock is still usable (and this runs in Drop,
    /// where panicking would abort).
    fn names(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn version(&self) -> &ServerVersion {
        &self.version
    }

    pub(crate) fn track(&self, name: &str) {
        self.names().push(name.to_string());
    }

    pub(crate) fn untrack(&self, name: &str) {
        self.names().retain(|n| n != name);
    }

    pub(crate) async fn drop_all(self) -> Result<(), ProvisionError> {
        let names = std::mem::take(&mut *self.names());
        drop_databases(&self.admin, names).await
    }
}

impl Drop for ServerDatabase {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names());
        if names.is_empty() {
            return;
        }
        let admin = self.admin.clone();
        block_on_cleanup(async move {
            if let Err(e) = drop_databases(&admin, names).await {
                eprintln!("rehearse: cleanup: {e}");
            }
        });
    }
}

/// Drops databases we created, newest first (clones before templates),
/// disconnecting anyone still in them (`WITH (FORCE)`, Postgres 13+).
async fn drop_databases(admin: &ConnInfo, mut names: Vec<String>) -> Result<(), ProvisionError> {
    let client = admin.connect("rehearse-cleanup").await?;
    names.reverse();
    let mut first_error = None;
    for name in names {
        let ident = quote_ident(&name);
        // Templates refuse DROP until they are ordinary databases again.
        let _ = client
            .batch_execute(&format!("ALTER DATABASE {ident} WITH IS_TEMPLATE false"))
            .await;
        if let Err(e) = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
            .await
        {
            first_error.get_or_insert(ProvisionError::Sql {
                operation: format!("dropping database {name}"),
                target: admin.display_url(),
                message: describe_pg_error(&e),
            });
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_reported_without_the_password() {
        let err = parse_url("postgres://u:canary-pw@127.0.0.1:notaport/db").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("bad database url"), "{text}");
        assert!(!text.contains("canary-pw"), "{text}");
    }

    #[test]
    fn urls_become_connection_settings() {
        let info = parse_url("postgres://alice:pw@127.0.0.1:6543/app").unwrap();
        assert_eq!(info.display_url(), "postgres://alice@127.0.0.1:6543/app");
        assert_eq!(info.password(), Some("pw"));
    }
}
