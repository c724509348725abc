//! Connection settings handed out by every backend.
//!
//! The password lives here and nowhere else: `Debug` and `Display` never show
//! it, and [`ConnInfo::display_url`] is what goes into output and reports.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::NoTls;

use super::ProvisionError;
use super::tls::{SslMode, TlsSettings, client_config};

/// Postgres keeps the first 63 bytes of `application_name` (NAMEDATALEN - 1).
const APPLICATION_NAME_MAX: usize = 63;

/// Where a throwaway database can be reached.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Always a loopback address for the local and Docker backends.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub(crate) password: Option<String>,
    pub dbname: String,
    /// The unix socket directory of a cluster this process started (local
    /// backend); `None` for Docker and user-named servers.
    pub(crate) socket_dir: Option<PathBuf>,
    /// `sslmode` / `sslrootcert` of a user-named server; `disable` for
    /// servers this process started.
    pub(crate) tls: TlsSettings,
    /// Other libpq parameters of a user-named server (`options`,
    /// `application_name`, `connect_timeout`, keepalives, ...), applied to
    /// every connection and passed on in URLs.
    pub(crate) params: Vec<(String, String)>,
}

impl ConnInfo {
    #[must_use]
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            password: None,
            dbname: "postgres".into(),
            socket_dir: None,
            tls: TlsSettings::default(),
            params: Vec::new(),
        }
    }

    /// The TLS settings (`sslmode` and friends).
    #[must_use]
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    #[must_use]
    pub(crate) fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    #[must_use]
    pub(crate) fn with_params(mut self, params: Vec<(String, String)>) -> Self {
        self.params = params;
        self
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[must_use]
    pub(crate) fn with_socket_dir(mut self, socket_dir: &Path) -> Self {
        self.socket_dir = Some(socket_dir.to_path_buf());
        self
    }

    #[must_use]
    pub fn with_password(mut self, password: Option<String>) -> Self {
        self.password = password;
        self
    }

    #[must_use]
    pub fn with_dbname(mut self, dbname: impl Into<String>) -> Self {
        self.dbname = dbname.into();
        self
    }

    /// The password, for callers that must hand it to another process
    /// (`DATABASE_URL` of a user's migration tool). Never print it.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// A `postgres://` URL including the password: for child processes only.
    #[must_use]
    pub fn url_with_password(&self) -> String {
        self.url(true)
    }

    /// A `postgres://` URL safe to print: the password is left out.
    #[must_use]
    pub fn display_url(&self) -> String {
        self.url(false)
    }

    fn url(&self, with_password: bool) -> String {
        let mut url = url::Url::parse("postgres://localhost").expect("static url parses");
        // Setting parts on a parsed URL percent-encodes them correctly, which
        // matters for passwords and database names with reserved characters.
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        if with_password {
            let _ = url.set_password(self.password.as_deref());
        }
        url.set_path(&self.dbname);
        let mut query: Vec<(&str, String)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if self.tls.explicit {
            query.push(("sslmode", self.tls.mode.as_str().to_string()));
        }
        if let Some(root) = &self.tls.root_cert {
            query.push(("sslrootcert", root.display().to_string()));
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url.to_string()
    }

    /// The `tokio_postgres` configuration, with a connect timeout so no
    /// connection attempt can hang.
    #[must_use]
    pub fn pg_config(&self, application_name: &str) -> tokio_postgres::Config {
        let mut config = self.base_config();
        config.host(&self.host);
        self.configure(config, application_name)
    }

    /// The user's parameters (validated by the same parser in
    /// `parse_url`), for ours to go on top.
    fn base_config(&self) -> tokio_postgres::Config {
        if self.params.is_empty() {
            return tokio_postgres::Config::new();
        }
        keyword_string(&self.params)
            .parse()
            .unwrap_or_else(|_| tokio_postgres::Config::new())
    }

    fn configure(
        &self,
        mut config: tokio_postgres::Config,
        application_name: &str,
    ) -> tokio_postgres::Config {
        if self.param("connect_timeout").is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(self.application_name(application_name))
            .ssl_mode(match self.tls.mode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                    tokio_postgres::config::SslMode::Require
                }
            });
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// Our name for a session (the run's cleanup finds its sessions by its
    /// start), followed by the user's `application_name` when the URL had
    /// one, within Postgres's 63 bytes.
    fn application_name(&self, ours: &str) -> String {
        let Some(user) = self.param("application_name") else {
            return ours.to_string();
        };
        let mut name = format!("{ours} {user}");
        while name.len() > APPLICATION_NAME_MAX {
            name.pop();
        }
        name
    }

    /// Opens a connection and drives it on a background task.
    pub async fn connect(
        &self,
        application_name: &str,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        self.connect_with(self.pg_config(application_name)).await
    }

    /// Like [`ConnInfo::connect`], through the cluster's unix socket when
    /// this process started the server (local backend), else over TCP.
    ///
    /// For the harness's own observers, such as the lock sampler, which
    /// make a round trip every few milliseconds: a unix socket round trip
    /// costs both ends less CPU than loopback TCP (8 % per sampler tick,
    /// measured), and that CPU comes out of the rehearsed workload.
    /// Application traffic keeps TCP, as in production.
    pub async fn connect_nearby(
        &self,
        application_name: &str,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        let Some(dir) = &self.socket_dir else {
            return self.connect(application_name).await;
        };
        let mut config = self.base_config();
        config.host_path(dir);
        self.connect_with(self.configure(config, application_name))
            .await
    }

    async fn connect_with(
        &self,
        config: tokio_postgres::Config,
    ) -> Result<tokio_postgres::Client, ProvisionError> {
        let error = |message: String| ProvisionError::Connect {
            target: self.display_url(),
            message,
        };
        let tls = client_config(&self.tls).map_err(error)?;
        let client = match tls {
            None => {
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| error(crate::provision::describe_pg_error(&e)))?;
                tokio::spawn(async move {
                    // Errors surface on the client side; the task only
                    // drives I/O.
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                    .await
                    .map_err(|e| {
                        error(format!(
                            "{} (sslmode={})",
                            crate::provision::describe_pg_error(&e),
                            self.tls.mode.as_str()
                        ))
                    })?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }
}

/// `key='value' ...` as `tokio_postgres::Config` parses it.
pub(crate) fn keyword_string(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("dbname", &self.dbname)
            .field("socket_dir", &self.socket_dir)
            .field("tls", &self.tls)
            .field("params", &self.params)
            .finish()
    }
}

impl fmt::Display for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_url())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_debug_never_show_the_password() {
        let info = ConnInfo::new("127.0.0.1", 5432, "rehearse")
            .with_password(Some("canary-Secret-42".into()))
            .with_dbname("app");
        assert!(!format!("{info}").contains("canary"));
        assert!(!format!("{info:?}").contains("canary"));
        assert!(!info.display_url().contains("canary"));
        assert_eq!(info.display_url(), "postgres://rehearse@127.0.0.1:5432/app");
        assert!(info.url_with_password().contains("canary-Secret-42"));
    }

    #[test]
    fn reserved_characters_are_percent_encoded() {
        let info = ConnInfo::new("127.0.0.1", 1, "u").with_password(Some("a@b/c".into()));
        assert_eq!(
            info.url_with_password(),
            "postgres://u:a%40b%2Fc@127.0.0.1:1/postgres"
        );
    }
}
