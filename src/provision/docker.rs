//! The Docker backend: a Postgres container through testcontainers.
//!
//! Ports are published on 127.0.0.1 only and we connect to 127.0.0.1, never
//! to testcontainers' `get_host()`, which returns the bridge gateway when the
//! process believes it runs in a container. Readiness is an authenticated
//! `SELECT 1`, not a log line, so any image honouring the official image's
//! contract works (including the offline one from `ci/`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::PortBinding;
use futures_util::StreamExt;
use testcontainers::core::IntoContainerPort;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ImageExt};
use testcontainers_modules::postgres::Postgres as PostgresImage;

use super::owner::Owner;
use super::{
    ConnInfo, ProvisionError, ProvisionOptions, ServerVersion, describe_pg_error, random_password,
};

/// Environment variable overriding the image (`name` or `name:tag`).
pub const DOCKER_IMAGE_ENV: &str = "REHEARSE_DOCKER_IMAGE";
/// The major version used when none is asked for.
pub const DEFAULT_MAJOR: u32 = 17;

/// Label keys on every container we start; `gc` selects on them.
pub(crate) const LABEL_MANAGED: &str = "dev.rehearse.managed";
pub(crate) const LABEL_RUN_ID: &str = "dev.rehearse.run-id";
pub(crate) const LABEL_OWNER: &str = "dev.rehearse.owner";
pub(crate) const LABEL_HOST: &str = "dev.rehearse.host";

const SUPERUSER: &str = "postgres";
/// The data directory inside the container. Set explicitly (every image
/// honouring the official contract reads `PGDATA`), outside the official
/// images' default paths, which changed in PostgreSQL 18.
const PGDATA: &str = "/var/lib/postgresql/rehearse-data";

/// Set once this process has asked Docker for a container, so the signal
/// path knows whether a sweep is worth a daemon round trip.
pub(crate) static WAS_USED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
/// Container starts in flight (see [`DockerInstance::start`]).
pub(crate) static STARTING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Runs `f` when dropped.
struct Guard<F: FnMut()>(F);

impl<F: FnMut()> Drop for Guard<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn scopeguard<F: FnMut()>(f: F) -> Guard<F> {
    Guard(f)
}

const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Official `postgres` tags pinned per major version, so a rehearsal runs
/// the same server every time.
const PINNED_TAGS: &[(u32, &str)] = &[
    (13, "13.22-bookworm"),
    (14, "14.19-bookworm"),
    (15, "15.14-bookworm"),
    (16, "16.10-bookworm"),
    (17, "17.6-bookworm"),
    (18, "18.0-bookworm"),
];

/// The image `ci/build-postgres-image.sh` builds, tagged by major version:
/// used before the official tag when present, so an offline machine that
/// built it needs no registry and no setting.
pub const LOCAL_IMAGE: &str = "rehearse-postgres";

/// An image reference, `name:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerImage {
    pub name: String,
    pub tag: String,
}

impl DockerImage {
    /// The image for these options: the explicit override, then
    /// `$REHEARSE_DOCKER_IMAGE`, then the pinned official tag.
    pub fn resolve(options: &ProvisionOptions) -> Result<DockerImage, ProvisionError> {
        Self::resolve_with(options, std::env::var(DOCKER_IMAGE_ENV).ok())
    }

    /// The image to run, as [`DockerImage::resolve`] says, except that with
    /// no override a locally built `rehearse-postgres:<major>` wins over the
    /// official tag (said once on stderr). With no major version asked for,
    /// the default major's local image, else the newest local one.
    pub async fn choose(
        docker: &Docker,
        options: &ProvisionOptions,
    ) -> Result<DockerImage, ProvisionError> {
        let from_env = std::env::var(DOCKER_IMAGE_ENV)
            .ok()
            .filter(|s| !s.is_empty());
        if options.docker_image.is_none()
            && from_env.is_none()
            && let Some(local) = local_image(docker, options.pg_major).await
        {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                eprintln!(
                    "rehearse: docker: using the locally built image {local} (set \
                     {DOCKER_IMAGE_ENV} or --docker-image to choose another)"
                );
            });
            return Ok(local);
        }
        Self::resolve_with(options, from_env)
    }

    /// [`DockerImage::resolve`] with the environment's override passed in.
    fn resolve_with(
        options: &ProvisionOptions,
        from_env: Option<String>,
    ) -> Result<DockerImage, ProvisionError> {
        let explicit = options
            .docker_image
            .clone()
            .or_else(|| from_env.filter(|s| !s.is_empty()));
        if let Some(reference) = explicit {
            return Ok(Self::parse(&reference));
        }
        let major = options.pg_major.unwrap_or(DEFAULT_MAJOR);
        let tag = PINNED_TAGS
            .iter()
            .find(|(m, _)| *m == major)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                ProvisionError::DockerUnavailable(format!(
                    "no pinned postgres image for major version {major} (known: 13-18); set \
                 {DOCKER_IMAGE_ENV} to an image of that version"
                ))
            })?;
        Ok(DockerImage {
            name: "postgres".into(),
            tag: tag.into(),
        })
    }

    fn parse(reference: &str) -> DockerImage {
        // A ':' after the last '/' separates the tag (a registry port comes
        // before a '/').
        let slash = reference.rfind('/').map_or(0, |i| i + 1);
        match reference[slash..].rfind(':') {
            Some(i) => DockerImage {
                name: reference[..slash + i].to_string(),
                tag: reference[slash + i + 1..].to_string(),
            },
            None => DockerImage {
                name: reference.to_string(),
                tag: "latest".into(),
            },
        }
    }
}

/// The locally built image for `major` (or, with none asked for, for
/// [`DEFAULT_MAJOR`], else the newest present), if the daemon has it. Never
/// pulls; a slow or failing daemon means no local image.
async fn local_image(docker: &Docker, major: Option<u32>) -> Option<DockerImage> {
    let wanted = DockerImage {
        name: LOCAL_IMAGE.into(),
        tag: major.unwrap_or(DEFAULT_MAJOR).to_string(),
    };
    let present = tokio::time::timeout(PING_TIMEOUT, docker.inspect_image(&wanted.to_string()))
        .await
        .is_ok_and(|r| r.is_ok());
    if present {
        return Some(wanted);
    }
    if major.is_some() {
        return None;
    }
    let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&HashMap::from([(
            "reference".to_string(),
            vec![LOCAL_IMAGE.to_string()],
        )]))
        .build();
    let images = tokio::time::timeout(PING_TIMEOUT, docker.list_images(Some(options)))
        .await
        .ok()?
        .ok()?;
    newest_local_major(
        images
            .iter()
            .flat_map(|i| i.repo_tags.iter().map(String::as_str)),
    )
    .map(|major| DockerImage {
        name: LOCAL_IMAGE.into(),
        tag: major.to_string(),
    })
}

/// The highest major version among `rehearse-postgres:<major>` references.
fn newest_local_major<'a>(references: impl Iterator<Item = &'a str>) -> Option<u32> {
    references
        .filter_map(|r| r.strip_prefix(LOCAL_IMAGE)?.strip_prefix(':')?.parse().ok())
        .max()
}

impl std::fmt::Display for DockerImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// A Docker client for the daemon testcontainers will use (DOCKER_HOST or
/// the local socket), checked with a bounded ping.
pub(crate) async fn client() -> Result<Docker, ProvisionError> {
    let docker = Docker::connect_with_defaults()
        .map_err(|e| ProvisionError::DockerUnavailable(format!("no docker client: {e}")))?;
    match tokio::time::timeout(PING_TIMEOUT, docker.ping()).await {
        Ok(Ok(_)) => Ok(docker),
        Ok(Err(e)) => Err(ProvisionError::DockerUnavailable(format!(
            "the daemon at {} does not answer: {e}",
            docker_host()
        ))),
        Err(_) => Err(ProvisionError::DockerUnavailable(format!(
            "the daemon at {} did not answer within {} s",
            docker_host(),
            PING_TIMEOUT.as_secs()
        ))),
    }
}

fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// Auto's question: does a daemon answer, and is the image present or
/// pullable? Pulls it when missing, so the answer is true when it says yes.
pub(crate) async fn probe(options: &ProvisionOptions) -> Result<(), ProvisionError> {
    let docker = client().await?;
    let image = DockerImage::choose(&docker, options).await?;
    ensure_image(&docker, &image, options.pull_timeout).await
}

async fn ensure_image(
    docker: &Docker,
    image: &DockerImage,
    timeout: Duration,
) -> Result<(), ProvisionError> {
    let reference = image.to_string();
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(());
    }
    let unavailable = |reason: String| ProvisionError::ImageUnavailable {
        image: reference.clone(),
        reason,
    };
    let options = bollard::query_parameters::CreateImageOptionsBuilder::default()
        .from_image(&image.name)
        .tag(&image.tag)
        .build();
    let pull = async {
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(step) = stream.next().await {
            step.map_err(|e| unavailable(e.to_string()))?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, pull).await.map_err(|_| {
        unavailable(format!(
            "pull did not finish within {} s",
            timeout.as_secs()
        ))
    })?
}

/// A running container; removed on drop (testcontainers' own drop blocks
/// until the container is gone).
pub(crate) struct DockerInstance {
    container: Option<ContainerAsync<PostgresImage>>,
    image: DockerImage,
    conn: ConnInfo,
    version: ServerVersion,
}

impl DockerInstance {
    pub(crate) async fn start(
        options: &ProvisionOptions,
    ) -> Result<DockerInstance, ProvisionError> {
        let docker = client().await?;
        let image = DockerImage::choose(&docker, options).await?;
        ensure_image(&docker, &image, options.pull_timeout).await?;
        let deadline = Instant::now() + options.startup_timeout;
        WAS_USED.store(true, std::sync::atomic::Ordering::Relaxed);
        let password = random_password();
        let owner = Owner::current(&options.run_id);
        let image_name = image.to_string();
        let failed = |reason: String| ProvisionError::Container {
            image: image_name.clone(),
            reason,
        };

        let durable = options.durable;
        let mut args: Vec<String> = Vec::new();
        for setting in super::common_settings(options) {
            args.push("-c".into());
            args.push(setting);
        }
        let request = PostgresImage::default()
            .with_user(SUPERUSER)
            .with_password(&password)
            .with_db_name("postgres")
            .with_name(&image.name)
            .with_tag(&image.tag)
            .with_cmd(args)
            .with_labels([
                (LABEL_MANAGED, "true".to_string()),
                (LABEL_RUN_ID, options.run_id.to_string()),
                (
                    LABEL_OWNER,
                    serde_json::to_string(&owner).unwrap_or_default(),
                ),
                (LABEL_HOST, hostname()),
            ])
            // Port 0: Docker picks a free host port; the modifier below pins
            // the binding to loopback.
            .with_mapped_port(0, 5432.tcp())
            .with_env_var("PGDATA", PGDATA)
            .with_host_config_modifier(move |host_config| {
                host_config.publish_all_ports = Some(false);
                let binding = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                };
                host_config.port_bindings = Some(HashMap::from([(
                    "5432/tcp".to_string(),
                    Some(vec![binding]),
                )]));
                // Like the local backend's cluster on /dev/shm: the data
                // directory in memory, unless durability was asked for (a
                // copy-on-write storage driver such as fuse-overlayfs makes
                // every write to the container's own layer slow).
                if !durable {
                    host_config.tmpfs = Some(HashMap::from([(
                        PGDATA.to_string(),
                        "rw,mode=0700".to_string(),
                    )]));
                }
            })
            // Readiness is our authenticated query below, not a log line.
            .with_ready_conditions(Vec::new())
            .with_startup_timeout(options.startup_timeout);
        // Counted while the create request may be in flight: a signal
        // then drops this future before the daemon answers, and the
        // container appears only after the signal path's first sweep.
        STARTING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _starting = scopeguard(|| {
            STARTING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
        let container = tokio::time::timeout(options.startup_timeout, request.start())
            .await
            .map_err(|_| {
                failed(format!(
                    "not started within {} s",
                    options.startup_timeout.as_secs()
                ))
            })?
            .map_err(|e| failed(e.to_string()))?;
        // Owned by `instance` from here: an early return removes it.
        let port = container.get_host_port_ipv4(5432).await;
        let mut instance = DockerInstance {
            container: Some(container),
            image,
            conn: ConnInfo::new("127.0.0.1", 0, SUPERUSER),
            version: ServerVersion::default(),
        };
        let port = port.map_err(|e| failed(format!("no port published for 5432: {e}")))?;
        instance.conn = ConnInfo::new("127.0.0.1", port, SUPERUSER).with_password(Some(password));
        instance.version = wait_ready(&instance.conn, deadline).await?;
        Ok(instance)
    }

    pub(crate) fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub(crate) fn resources(&self) -> Vec<super::Resource> {
        self.container
            .iter()
            .map(|c| super::Resource::Container(c.id().to_string()))
            .collect()
    }

    pub(crate) fn version(&self) -> &ServerVersion {
        &self.version
    }

    pub(crate) fn image(&self) -> &DockerImage {
        &self.image
    }

    pub(crate) async fn stop(mut self) -> Result<(), ProvisionError> {
        match self.container.take() {
            Some(container) => container.rm().await.map_err(|e| ProvisionError::Container {
                image: self.image.to_string(),
                reason: format!("removing the container: {e}"),
            }),
            None => Ok(()),
        }
    }
}

/// Polls an authenticated `SELECT 1` until it answers or the deadline passes.
/// The official image first runs a temporary server on the unix socket only,
/// so a TCP answer means the final server is up.
async fn wait_ready(conn: &ConnInfo, deadline: Instant) -> Result<ServerVersion, ProvisionError> {
    let started = Instant::now();
    let mut config = conn.pg_config("rehearse-ready");
    config.connect_timeout(Duration::from_secs(2));
    let mut last_error;
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                let driver = tokio::spawn(connection);
                let result = ServerVersion::read(&client, "").await;
                drop(client);
                let _ = driver.await;
                match result {
                    Ok(version) => return Ok(version),
                    Err(e) => last_error = describe_pg_error(&e),
                }
            }
            Err(e) => last_error = describe_pg_error(&e),
        }
        if Instant::now() >= deadline {
            return Err(ProvisionError::NotReady {
                target: conn.display_url(),
                seconds: started.elapsed().as_secs(),
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_name_and_tag() {
        assert_eq!(
            DockerImage::parse("rehearse-postgres:15"),
            DockerImage {
                name: "rehearse-postgres".into(),
                tag: "15".into()
            }
        );
        assert_eq!(
            DockerImage::parse("registry:5000/pg"),
            DockerImage {
                name: "registry:5000/pg".into(),
                tag: "latest".into()
            }
        );
        assert_eq!(DockerImage::parse("a/b:1.2").tag, "1.2");
    }

    #[test]
    fn the_newest_locally_built_major_is_found_by_its_tag() {
        let tags = [
            "rehearse-postgres:15",
            "rehearse-postgres:16",
            "rehearse-postgres:latest",
            "rehearse-postgres-old:18",
            "postgres:17",
        ];
        assert_eq!(newest_local_major(tags.into_iter()), Some(16));
        assert_eq!(newest_local_major(["postgres:17"].into_iter()), None);
    }

    #[test]
    fn a_major_version_selects_a_pinned_official_tag() {
        let options = ProvisionOptions {
            pg_major: Some(15),
            ..ProvisionOptions::default()
        };
        let image = DockerImage::resolve_with(&options, None).unwrap();
        assert_eq!(image.to_string(), "postgres:15.14-bookworm");
        let old = ProvisionOptions {
            pg_major: Some(9),
            ..ProvisionOptions::default()
        };
        assert!(
            DockerImage::resolve_with(&old, None)
                .unwrap_err()
                .to_string()
                .contains("9")
        );
        // The environment's override beats the pinned tag; the option beats both.
        let from_env = DockerImage::resolve_with(&options, Some("offline:15".into())).unwrap();
        assert_eq!(from_env.to_string(), "offline:15");
        let explicit = ProvisionOptions {
            docker_image: Some("mine:7".into()),
            ..ProvisionOptions::default()
        };
        let image = DockerImage::resolve_with(&explicit, Some("offline:15".into())).unwrap();
        assert_eq!(image.to_string(), "mine:7");
    }
}
