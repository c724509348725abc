//! Template clones: a prepared database (schema + seed) is built once per
//! content hash, and each rehearsal gets a fresh copy through
//! `CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY` (measured: ~93 ms
//! for a 208 MB database on tmpfs; WAL_LOG, the default, is about 2x slower).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{Backend, ConnInfo, Postgres, ProvisionError, describe_pg_error, quote_ident};

/// A prepared template database on a [`Postgres`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    /// Whether this call built it (false: it existed already).
    pub built: bool,
}

/// A template failed: either provisioning or the caller's preparation.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError<E> {
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    #[error("preparing template {name}: {source}")]
    Prepare { name: String, source: E },
}

static CLONE_COUNTER: AtomicU32 = AtomicU32::new(0);

// SQL of this module, kept together.
const SQL_TEMPLATE_LOCK: &str = "SELECT pg_advisory_lock(hashtext($1))";
const SQL_TEMPLATE_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext($1))";
const SQL_TEMPLATE_EXISTS: &str = "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate";
const SQL_ROLE_NAMES: &str = "SELECT rolname FROM pg_roles";
const SQL_TERMINATE_USERS: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE datname = $1 AND pid <> pg_backend_pid()";

impl Postgres {
    /// The template for `key` (a content hash of what `prepare` puts in it),
    /// built by `prepare` on first use. Concurrent callers with the same key
    /// wait for one build (an advisory lock on the server).
    pub async fn template<F, Fut, E>(
        &self,
        key: &str,
        prepare: F,
    ) -> Result<Template, TemplateError<E>>
    where
        F: FnOnce(ConnInfo) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let short: String = key
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        // On someone else's server everything we create carries the run id
        // and goes away with the run; on our own servers templates are shared
        // by every handle of the process (the test suite's shared server).
        let name = match self.backend {
            Backend::Url => format!("rehearse_{}_tpl_{short}", self.run_id),
            _ => format!("rehearse_tpl_{short}"),
        };
        let admin = self.admin().await?;
        let lock_key = format!("rehearse-template:{name}");
        admin
            .execute(SQL_TEMPLATE_LOCK, &[&lock_key])
            .await
            .map_err(|e| self.sql_error("locking the template build", &e))?;
        // Only with a template cache: which roles a build creates, so
        // that the cache keeps those and no other.
        let roles_before = match self.template_cache {
            Some(_) => self.role_names().await.ok(),
            None => None,
        };
        let result = self.build_template(&admin, &name, prepare).await;
        if let Ok(template) = &result
            && template.built
        {
            self.note_built(key, &template.name);
            if let (Some(before), Ok(after)) = (roles_before, self.role_names().await) {
                self.note_template_roles(before, after);
            }
        }
        // The lock is a session lock: released explicitly, and by the
        // disconnect when `admin` drops if this fails.
        let _ = admin.execute(SQL_TEMPLATE_UNLOCK, &[&lock_key]).await;
        result
    }

    async fn build_template<F, Fut, E>(
        &self,
        admin: &tokio_postgres::Client,
        name: &str,
        prepare: F,
    ) -> Result<Template, TemplateError<E>>
    where
        F: FnOnce(ConnInfo) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        let exists = admin
            .query_opt(SQL_TEMPLATE_EXISTS, &[&name])
            .await
            .map_err(|e| self.sql_error("looking up the template", &e))?;
        if exists.is_some() {
            return Ok(Template {
                name: name.to_string(),
                built: false,
            });
        }
        let building = format!("{name}_building");
        let ident = quote_ident(&building);
        self.track_database(&building);
        // Two calls: a multi-statement string runs as one implicit
        // transaction, which DROP/CREATE DATABASE refuse (25001).
        for sql in [
            format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"),
            format!("CREATE DATABASE {ident}"),
        ] {
            admin
                .batch_execute(&sql)
                .await
                .map_err(|e| self.sql_error(&format!("creating {building}"), &e))?;
        }
        self.mark_database(admin, &building).await?;
        if let Err(source) = prepare(self.conn.clone().with_dbname(&building)).await {
            let _ = self.drop_database(&building).await;
            return Err(TemplateError::Prepare {
                name: name.to_string(),
                source,
            });
        }
        // Clients dropped by `prepare` close their connections
        // asynchronously; make sure none is left before renaming.
        admin
            .execute(SQL_TERMINATE_USERS, &[&building])
            .await
            .map_err(|e| self.sql_error("disconnecting template users", &e))?;
        let final_ident = quote_ident(name);
        self.retry_while_in_use(
            admin,
            &format!("ALTER DATABASE {ident} RENAME TO {final_ident}"),
        )
        .await?;
        self.untrack_database(&building);
        self.track_database(name);
        // ALLOW_CONNECTIONS false: nobody can connect to it and so block a
        // clone ("source database is being accessed by other users").
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {final_ident} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            ))
            .await
            .map_err(|e| self.sql_error(&format!("marking {name} as template"), &e))?;
        Ok(Template {
            name: name.to_string(),
            built: true,
        })
    }

    /// A fresh copy of `template`, named `name` or a generated name.
    pub async fn clone_database(
        &self,
        template: &Template,
        name: Option<&str>,
    ) -> Result<ConnInfo, ProvisionError> {
        let name = name.map_or_else(|| self.generated_name("clone"), str::to_string);
        let strategy = if self.major() >= 15 {
            " STRATEGY FILE_COPY"
        } else {
            ""
        };
        let admin = self.admin().await?;
        self.track_database(&name);
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}{strategy}",
            quote_ident(&name),
            quote_ident(&template.name)
        );
        self.retry_while_in_use(&admin, &sql).await?;
        self.mark_database(&admin, &name).await?;
        Ok(self.conn.clone().with_dbname(name))
    }

    /// A new empty database, named `name` or a generated name.
    pub async fn create_database(&self, name: Option<&str>) -> Result<ConnInfo, ProvisionError> {
        let name = name.map_or_else(|| self.generated_name("db"), str::to_string);
        let admin = self.admin().await?;
        self.track_database(&name);
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|e| self.sql_error(&format!("creating database {name}"), &e))?;
        self.mark_database(&admin, &name).await?;
        Ok(self.conn.clone().with_dbname(name))
    }

    /// Drops a database created through this handle, disconnecting its users.
    pub async fn drop_database(&self, name: &str) -> Result<(), ProvisionError> {
        let admin = self.admin().await?;
        let ident = quote_ident(name);
        let _ = admin
            .batch_execute(&format!("ALTER DATABASE {ident} WITH IS_TEMPLATE false"))
            .await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
            .await
            .map_err(|e| self.sql_error(&format!("dropping database {name}"), &e))?;
        self.untrack_database(name);
        Ok(())
    }

    /// Names of every role on the server. Roles are server-wide: one a
    /// migration creates in the race's database exists for the reference
    /// run's database too.
    pub async fn role_names(&self) -> Result<std::collections::BTreeSet<String>, ProvisionError> {
        let admin = self.admin().await?;
        let rows = admin
            .query(SQL_ROLE_NAMES, &[])
            .await
            .map_err(|e| self.sql_error("listing roles", &e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Renames the roles created since `before` (by the race's migrations)
    /// aside, so the serial reference run can create them again instead of
    /// failing with "role already exists" (42710) and reporting false
    /// drift. A rename keeps every grant and ownership of the race's
    /// database (they refer to the role's oid), and the race's schema was
    /// recorded already.
    ///
    /// On servers this process started the new name is `NAME_race` (the
    /// server goes away with the run). On a user's server (url backend) it
    /// is `NAME_rehearse_<run id>`, marked with a `COMMENT ON ROLE` naming
    /// the run, and dropped at cleanup (see [`Postgres::claim_new_roles`]).
    /// Roles in `before` are never touched. Returns the roles left in place
    /// (none at present).
    pub async fn set_aside_new_roles(
        &self,
        before: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<String>, ProvisionError> {
        let new: Vec<String> = self
            .role_names()
            .await?
            .into_iter()
            .filter(|name| !before.contains(name))
            .collect();
        if new.is_empty() {
            return Ok(new);
        }
        let suffix = if self.backend == Backend::Url {
            format!("_rehearse_{}", self.run_id)
        } else {
            "_race".to_string()
        };
        let admin = self.admin().await?;
        for name in &new {
            // NAMEDATALEN - 1 bytes at most, cut on a character boundary.
            let mut renamed = name.clone();
            while renamed.len() > 63 - suffix.len() {
                renamed.pop();
            }
            renamed.push_str(&suffix);
            admin
                .batch_execute(&format!(
                    "ALTER ROLE {} RENAME TO {}",
                    quote_ident(name),
                    quote_ident(&renamed)
                ))
                .await
                .map_err(|e| self.sql_error(&format!("setting role {name} aside"), &e))?;
            self.mark_role(&admin, &renamed).await?;
        }
        Ok(Vec::new())
    }

    /// On a user's server (url backend), marks the roles created since
    /// `before` as this run's and drops them at cleanup, after the run's
    /// databases: roles are server-wide and would outlive the run. Roles in
    /// `before` are never touched. Elsewhere the server goes away with the
    /// run, and this does nothing.
    pub async fn claim_new_roles(
        &self,
        before: &std::collections::BTreeSet<String>,
    ) -> Result<(), ProvisionError> {
        if self.backend != Backend::Url {
            return Ok(());
        }
        let new: Vec<String> = self
            .role_names()
            .await?
            .into_iter()
            .filter(|name| !before.contains(name))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let admin = self.admin().await?;
        for name in &new {
            self.mark_role(&admin, name).await?;
        }
        Ok(())
    }

    /// On a user's server, records `name` for the drop at cleanup and marks
    /// it (`COMMENT ON ROLE`, manual "COMMENT") for `rehearse gc
    /// --database-url` after a SIGKILL. Tracked first, so a failed comment
    /// cannot make it leak.
    async fn mark_role(
        &self,
        admin: &tokio_postgres::Client,
        name: &str,
    ) -> Result<(), ProvisionError> {
        if self.backend != Backend::Url {
            return Ok(());
        }
        self.track_role(name);
        admin
            .batch_execute(&super::server::mark_role_sql(name, &self.run_id))
            .await
            .map_err(|e| self.sql_error(&format!("marking role {name}"), &e))
    }

    /// On a shared server (url backend), marks a database as this run's,
    /// for `rehearse gc --database-url` after a SIGKILL. A rename keeps the
    /// comment (it belongs to the database's oid).
    async fn mark_database(
        &self,
        admin: &tokio_postgres::Client,
        name: &str,
    ) -> Result<(), ProvisionError> {
        if self.backend != Backend::Url {
            return Ok(());
        }
        admin
            .batch_execute(&super::server::mark_sql(name, &self.run_id))
            .await
            .map_err(|e| self.sql_error(&format!("marking database {name}"), &e))
    }

    fn generated_name(&self, kind: &str) -> String {
        let n = CLONE_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("rehearse_{}_{kind}{n}", self.run_id)
    }

    async fn admin(&self) -> Result<tokio_postgres::Client, ProvisionError> {
        // On a shared server the run's cleanup terminates sessions by this
        // name before dropping, so a CREATE DATABASE cut short cannot
        // commit after the drop.
        let client = self
            .conn
            .connect(&super::server::admin_application_name(&self.run_id))
            .await?;
        // CREATE DATABASE of a large template takes a while, but never
        // forever.
        client
            .batch_execute("SET statement_timeout = '600s'; SET lock_timeout = '60s'")
            .await
            .map_err(|e| self.sql_error("configuring the admin session", &e))?;
        Ok(client)
    }

    /// Runs DDL that fails with 55006 while another session is still in the
    /// source database, retrying briefly with a deadline.
    async fn retry_while_in_use(
        &self,
        admin: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<(), ProvisionError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match admin.batch_execute(sql).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(ProvisionError::Sql {
                        operation: sql.to_string(),
                        target: self.conn.display_url(),
                        message: describe_pg_error(&e),
                    });
                }
            }
        }
    }
}
