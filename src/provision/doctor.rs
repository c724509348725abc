//! What each backend needs and whether this machine has it.

use super::docker::{DockerImage, client};
use super::local::{PgBinaries, tmp_root};
use super::server::parse_url;
use super::{Backend, ProvisionOptions};

/// One backend's state on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendStatus {
    pub backend: Backend,
    pub ok: bool,
    /// Versions when it works, the reason and the remedy when not.
    pub detail: String,
}

/// Checks docker, local and url without starting anything.
pub async fn check_all(options: &ProvisionOptions) -> Vec<BackendStatus> {
    vec![
        check_docker(options).await,
        check_local(options),
        check_url(options).await,
    ]
}

async fn check_docker(options: &ProvisionOptions) -> BackendStatus {
    let status = |ok, detail| BackendStatus {
        backend: Backend::Docker,
        ok,
        detail,
    };
    let docker = match client().await {
        Ok(docker) => docker,
        Err(e) => return status(false, e.to_string()),
    };
    let version = docker
        .version()
        .await
        .ok()
        .and_then(|v| v.version)
        .unwrap_or_default();
    let image = match DockerImage::resolve(options) {
        Ok(image) => image,
        Err(e) => return status(false, e.to_string()),
    };
    if docker.inspect_image(&image.to_string()).await.is_ok() {
        status(true, format!("daemon {version}, image {image} present"))
    } else {
        status(
            true,
            format!(
                "daemon {version}, image {image} not present (pulled on first use; offline: \
                 ci/build-postgres-image.sh and {}=rehearse-postgres:15)",
                super::DOCKER_IMAGE_ENV
            ),
        )
    }
}

fn check_local(options: &ProvisionOptions) -> BackendStatus {
    let status = |ok, detail| BackendStatus {
        backend: Backend::Local,
        ok,
        detail,
    };
    let bins = match PgBinaries::find(options.pg_bin_dir.as_deref(), options.pg_major) {
        Ok(bins) => bins,
        Err(e) => return status(false, e.to_string()),
    };
    if nix::unistd::geteuid().is_root()
        && !matches!(nix::unistd::User::from_name("postgres"), Ok(Some(_)))
    {
        return status(
            false,
            "running as root needs a `postgres` system user".into(),
        );
    }
    match tmp_root(options.tmp_dir.as_deref()) {
        Ok(root) => status(
            true,
            format!(
                "postgres {} in {}, clusters in {}",
                bins.version,
                bins.dir.display(),
                root.display()
            ),
        ),
        Err(e) => status(false, e.to_string()),
    }
}

async fn check_url(options: &ProvisionOptions) -> BackendStatus {
    let status = |ok, detail| BackendStatus {
        backend: Backend::Url,
        ok,
        detail,
    };
    let Some(url) = options
        .database_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
    else {
        return status(false, "no --database-url or DATABASE_URL given".into());
    };
    let conn = match parse_url(&url) {
        Ok(conn) => conn,
        Err(e) => return status(false, e.to_string()),
    };
    let connected =
        tokio::time::timeout(options.startup_timeout, conn.connect("rehearse-doctor")).await;
    let client = match connected {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return status(false, e.to_string()),
        Err(_) => {
            return status(
                false,
                format!("{} did not answer in time", conn.display_url()),
            );
        }
    };
    match client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
    {
        Ok(row) => status(
            true,
            format!(
                "postgres {} at {}",
                row.get::<_, String>(0),
                conn.display_url()
            ),
        ),
        Err(e) => status(false, super::describe_pg_error(&e)),
    }
}
