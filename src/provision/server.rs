//! The url backend: a throwaway database on a server the user names.
//!
//! It creates databases named with the run id and drops exactly those
//! afterwards; nothing else on the server is touched.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::config::Host;

use super::owner::{Owner, RunId};
use super::tls::{SslMode, TlsSettings};
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
    /// Roles the run's migrations created, dropped after the databases.
    roles: Arc<Mutex<Vec<String>>>,
    run_id: RunId,
}

/// Parses a `postgres://` URL or key=value string without ever echoing the
/// password in an error. `sslmode` and `sslrootcert` become
/// [`TlsSettings`]; other libpq parameters are kept and applied to every
/// connection (`options`, `application_name`, `connect_timeout`, ...).
/// The default `sslmode` is libpq's, `prefer`.
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
    let (rest, pairs) = split_params(url).map_err(|e| ProvisionError::BadUrl(scrub(e)))?;
    let mut tls = TlsSettings {
        mode: SslMode::Prefer,
        ..TlsSettings::default()
    };
    let mut params = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "sslmode" => {
                tls.mode = SslMode::parse(&value).map_err(ProvisionError::BadUrl)?;
                tls.explicit = true;
            }
            "sslrootcert" => tls.root_cert = Some(value.into()),
            // In the fields of ConnInfo (the password never in params).
            "host" | "port" | "user" | "password" | "dbname" => {}
            _ => params.push((key, value)),
        }
    }
    let config = tokio_postgres::Config::from_str(&rest)
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
        .with_dbname(dbname)
        .with_tls(tls)
        .with_params(params))
}

/// Keys `tokio_postgres` does not know, which this module handles itself.
const OWN_KEYS: &[&str] = &["sslmode", "sslrootcert"];

/// Splits a connection string into what `tokio_postgres` parses (without
/// [`OWN_KEYS`]) and every parameter it carries, in order.
fn split_params(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let kept: Vec<&(String, String)> = pairs
            .iter()
            .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()))
            .collect();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            let mut serializer = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in kept {
                serializer.append_pair(k, v);
            }
            format!("{base}?{}", serializer.finish())
        };
        return Ok((rest, pairs));
    }
    let pairs = keyword_pairs(url)?;
    let kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    Ok((super::conn::keyword_string(&kept), pairs))
}

/// `key = value` pairs of a libpq keyword/value string (manual, "Connection
/// Strings": values may be single-quoted, with `\'` and `\\` escapes).
fn keyword_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "missing \"=\" after {key:?} in the connection string"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// What marks a database as ours on a shared server: a `COMMENT ON DATABASE`
/// carrying this JSON, so `rehearse gc --database-url` can find databases a
/// killed run left and tell a dead owner from a live one. Names alone are
/// not enough: a user may have a database called `rehearse_...` too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DatabaseMarker {
    /// Always [`MARKER_TAG`].
    pub(crate) rehearse: String,
    #[serde(flatten)]
    pub(crate) owner: Owner,
    pub(crate) host: String,
}

/// The `rehearse` field of every [`DatabaseMarker`].
pub(crate) const MARKER_TAG: &str = "throwaway database";

impl DatabaseMarker {
    pub(crate) fn current(run_id: &RunId) -> Self {
        DatabaseMarker {
            rehearse: MARKER_TAG.into(),
            owner: Owner::current(run_id),
            host: super::docker::hostname(),
        }
    }

    /// Parses a database comment; `None` when it is not one of our markers.
    pub(crate) fn parse(comment: &str) -> Option<Self> {
        serde_json::from_str::<DatabaseMarker>(comment)
            .ok()
            .filter(|m| m.rehearse == MARKER_TAG)
    }

    /// The prefix of every database name the run created.
    pub(crate) fn name_prefix(&self) -> String {
        run_prefix(&self.owner.run_id)
    }
}

/// Every database a run creates on a shared server starts with this.
pub(crate) fn run_prefix(run_id: &RunId) -> String {
    format!("rehearse_{run_id}_")
}

/// The `application_name` of every session of a run that may create a
/// database: cleanup terminates them before dropping, so a `CREATE
/// DATABASE` still running on the server when a signal cut the run short
/// cannot commit after the drop.
pub(crate) fn admin_application_name(run_id: &RunId) -> String {
    format!("rehearse-admin-{run_id}")
}

/// The `rehearse` field of the marker on a role a run's migrations created
/// on a shared server (a [`DatabaseMarker`] with this tag).
pub(crate) const ROLE_MARKER_TAG: &str = "role created by a rehearsed migration";

/// `COMMENT ON ROLE` marking `name` as created by this run's migrations.
pub(crate) fn mark_role_sql(name: &str, run_id: &RunId) -> String {
    let mut marker = DatabaseMarker::current(run_id);
    marker.rehearse = ROLE_MARKER_TAG.into();
    let marker = serde_json::to_string(&marker).expect("a marker always serialises");
    format!(
        "COMMENT ON ROLE {} IS {}",
        quote_ident(name),
        super::quote_literal(&marker)
    )
}

/// `COMMENT ON DATABASE` marking `name` as created by this process.
pub(crate) fn mark_sql(name: &str, run_id: &RunId) -> String {
    let marker = serde_json::to_string(&DatabaseMarker::current(run_id))
        .expect("a marker always serialises");
    format!(
        "COMMENT ON DATABASE {} IS {}",
        quote_ident(name),
        super::quote_literal(&marker)
    )
}

// SQL of the url backend's cleanup, kept together.
// A prefix match: the user's own application_name may follow ours.
const SQL_TERMINATE_ADMIN: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()";
const SQL_COUNT_ADMIN: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()";
/// How long cleanup waits for terminated sessions to go away.
const TERMINATE_WAIT: Duration = Duration::from_secs(10);

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
        let name = format!(
            "{}{:04x}",
            run_prefix(&options.run_id),
            rand::random::<u16>()
        );
        let application_name = admin_application_name(&options.run_id);
        let client =
            tokio::time::timeout(options.startup_timeout, admin.connect(&application_name))
                .await
                .map_err(|_| ProvisionError::Connect {
                    target: admin.display_url(),
                    message: format!("no answer within {} s", options.startup_timeout.as_secs()),
                })??;
        // The handle owns the name BEFORE the CREATE is sent: if this future
        // is dropped mid-statement (a signal), its Drop terminates the
        // creating session and drops whatever it created. Declared before
        // `client` is used, so it is dropped after it.
        let mut database = ServerDatabase {
            conn: admin.clone().with_dbname(&name),
            admin,
            version: ServerVersion::default(),
            created: Arc::new(Mutex::new(vec![name.clone()])),
            roles: Arc::new(Mutex::new(Vec::new())),
            run_id: options.run_id.clone(),
        };
        let sql_error = |operation: String, e: &tokio_postgres::Error| ProvisionError::Sql {
            operation,
            target: database.admin.display_url(),
            message: describe_pg_error(e),
        };
        client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|e| sql_error(format!("creating database {name}"), &e))?;
        // A separate statement: CREATE DATABASE refuses to run in the
        // implicit transaction of a multi-statement query (25001).
        client
            .batch_execute(&mark_sql(&name, &options.run_id))
            .await
            .map_err(|e| sql_error(format!("marking database {name}"), &e))?;
        let version = ServerVersion::read(&client, "")
            .await
            .map_err(|e| sql_error("reading the server version".into(), &e))?;
        database.version = version;
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

    pub(crate) fn track_role(&self, name: &str) {
        let mut roles = self
            .roles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !roles.iter().any(|r| r == name) {
            roles.push(name.to_string());
        }
    }

    fn take_roles(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .roles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub(crate) fn untrack(&self, name: &str) {
        self.names().retain(|n| n != name);
    }

    pub(crate) async fn drop_all(self) -> Result<(), ProvisionError> {
        let names = std::mem::take(&mut *self.names());
        let roles = self.take_roles();
        let databases = drop_databases(&self.admin, &self.run_id, names).await;
        // After the databases: with them gone, nothing of ours depends on
        // the roles any more.
        let roles = drop_roles(&self.admin, roles).await;
        databases.and(roles)
    }
}

impl Drop for ServerDatabase {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names());
        let roles = self.take_roles();
        if names.is_empty() && roles.is_empty() {
            return;
        }
        let admin = self.admin.clone();
        let run_id = self.run_id.clone();
        block_on_cleanup(async move {
            if !names.is_empty()
                && let Err(e) = drop_databases(&admin, &run_id, names).await
            {
                super::cleanup_failed(&e);
            }
            if let Err(e) = drop_roles(&admin, roles).await {
                super::cleanup_failed(&e);
            }
        });
    }
}

/// Drops databases we created, newest first (clones before templates),
/// disconnecting anyone still in them (`WITH (FORCE)`, Postgres 13+).
///
/// First terminates the run's own admin sessions and waits until they are
/// gone: a `CREATE DATABASE` whose client went away keeps running on the
/// server and would otherwise commit after `DROP DATABASE IF EXISTS` found
/// nothing to drop.
async fn drop_databases(
    admin: &ConnInfo,
    run_id: &RunId,
    mut names: Vec<String>,
) -> Result<(), ProvisionError> {
    let client = admin.connect("rehearse-cleanup").await?;
    let sql_error = |operation: String, e: &tokio_postgres::Error| ProvisionError::Sql {
        operation,
        target: admin.display_url(),
        message: describe_pg_error(e),
    };
    let application_name = admin_application_name(run_id);
    client
        .execute(SQL_TERMINATE_ADMIN, &[&application_name])
        .await
        .map_err(|e| sql_error("terminating the run's sessions".into(), &e))?;
    let deadline = Instant::now() + TERMINATE_WAIT;
    loop {
        let left: i64 = client
            .query_one(SQL_COUNT_ADMIN, &[&application_name])
            .await
            .map_err(|e| sql_error("waiting for the run's sessions".into(), &e))?
            .get(0);
        if left == 0 {
            break;
        }
        if Instant::now() >= deadline {
            return Err(ProvisionError::Sql {
                operation: format!("waiting for the run's sessions ({application_name})"),
                target: admin.display_url(),
                message: format!("{left} still running after {} s", TERMINATE_WAIT.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    names.reverse();
    let mut first_error = None;
    for name in names {
        if let Err(e) = drop_database(&client, &name).await {
            first_error.get_or_insert(sql_error(format!("dropping database {name}"), &e));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Drops the roles the run's migrations created, each reported with the SQL
/// a user can run when `DROP ROLE` fails (a grant or an object in another
/// database still depends on it). Every failure is printed; the first is
/// returned.
async fn drop_roles(admin: &ConnInfo, roles: Vec<String>) -> Result<(), ProvisionError> {
    if roles.is_empty() {
        return Ok(());
    }
    let client = admin.connect("rehearse-cleanup").await?;
    let mut first_error = None;
    for role in roles {
        if let Err(e) = drop_role(&client, &role).await {
            let error = role_left_error(admin, &role, &e);
            if first_error.is_some() {
                super::cleanup_failed(&error);
            } else {
                first_error = Some(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Drops one role if it still exists.
pub(crate) async fn drop_role(
    client: &tokio_postgres::Client,
    role: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(role)))
        .await
}

/// The error for a role `DROP ROLE` refused, with the statements that
/// remove it (manual "Dropping Roles": `REASSIGN OWNED` and `DROP OWNED`
/// in each database where it owns objects or holds privileges).
pub(crate) fn role_left_error(
    admin: &ConnInfo,
    role: &str,
    error: &tokio_postgres::Error,
) -> ProvisionError {
    let ident = quote_ident(role);
    ProvisionError::RoleLeft {
        role: role.to_string(),
        target: admin.display_url(),
        message: describe_pg_error(error),
        sql: format!(
            "REASSIGN OWNED BY {ident} TO CURRENT_USER; DROP OWNED BY {ident}; \
             then, once: DROP ROLE {ident};"
        ),
    }
}

/// Drops one database, a template too (they refuse DROP until they are
/// ordinary databases again), disconnecting its users.
pub(crate) async fn drop_database(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    let ident = quote_ident(name);
    // Fails harmlessly when the database does not exist.
    let _ = client
        .batch_execute(&format!("ALTER DATABASE {ident} WITH IS_TEMPLATE false"))
        .await;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
        .await
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
    fn tls_and_libpq_options_are_kept() {
        let info = parse_url(
            "postgres://alice:pw@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem\
             &options=-c%20statement_timeout%3D5s&application_name=deploy&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(info.tls().mode, SslMode::VerifyFull);
        assert_eq!(
            info.tls().root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        let config = info.pg_config("rehearse-x");
        assert_eq!(config.get_options(), Some("-c statement_timeout=5s"));
        assert_eq!(config.get_application_name(), Some("rehearse-x deploy"));
        assert_eq!(
            config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
        // Passed on to child processes, the password only where asked for.
        let url = info.display_url();
        assert!(url.contains("sslmode=verify-full"), "{url}");
        assert!(url.contains("options=-c+statement_timeout%3D5s"), "{url}");
        assert!(!url.contains("pw"), "{url}");

        let info = parse_url(
            "host=127.0.0.1 port=5433 user=bob password='p w' sslmode=require \
             options='-c search_path=x'",
        )
        .unwrap();
        assert_eq!(info.tls().mode, SslMode::Require);
        assert_eq!(info.password(), Some("p w"));
        assert_eq!(info.pg_config("r").get_options(), Some("-c search_path=x"));
        // libpq's default.
        assert_eq!(
            parse_url("postgres://u@h/db").unwrap().tls().mode,
            SslMode::Prefer
        );
        for bad in [
            "postgres://u@h/db?sslmode=allow",
            "postgres://u@h/db?sslmode=on",
        ] {
            let error = parse_url(bad).unwrap_err();
            assert!(error.is_bad_input(), "{error}");
            assert!(error.to_string().contains("sslmode"), "{error}");
        }
    }

    #[test]
    fn urls_become_connection_settings() {
        let info = parse_url("postgres://alice:pw@127.0.0.1:6543/app").unwrap();
        assert_eq!(info.display_url(), "postgres://alice@127.0.0.1:6543/app");
        assert_eq!(info.password(), Some("pw"));
    }
}
